"""A fused message-passing convolution for MACE models with scalar node features, for CPU MD.

With scalar hidden features (the ``fast`` preset: ``32x0e``) each interaction's convolution
``conv_tp`` is e3nn's ``uvu`` tensor product of a channel ``u`` of the sender's features with the
edge's spherical harmonics ``Y_lm`` and a per-edge weight ``w_lu``:

    m_i[u, lm] = sum_{j -> i} c_l w_{ij,lu} x_j[u] Y_{ij,lm},   c_l = path_weight_l / sqrt(2l + 1).

e3nn evaluates it per edge with broadcasts over size-one axes (slow on CPU) and mace-torch then
scatters ``[edges, channels * (lmax + 1)^2]`` to the receivers. ``ScalarConvolution`` computes the
same sum as one batched matmul per receiver (see the class). It plugs into mace-torch's own
``conv_fusion`` hook of the interaction blocks, so the rest of the model is untouched;
``fuse_scalar_convolutions`` swaps it in where it applies (equal results are tested) and leaves
every other model as it is. The fused model's ``state_dict`` is mace-torch's, and it is as
differentiable (forces, stress and their parameter gradients), so ``bornfield train ff`` trains
the fused model and ``unfuse_scalar_convolutions`` restores mace-torch's layers before saving.
"""

from __future__ import annotations

import inspect
import math

import torch

from bornfield.models.receiver_sum import Table, receiver_sum, receiver_table


class ScalarConvolution(torch.nn.Module):
    """Gather, ``uvu`` tensor product with scalar inputs and receiver sum, in one module.

    The receiver sum is ``receiver_sum`` of ``c Y`` and ``w x``: one batched matmul
    ``[n, lm, K] @ [n, K, paths * channels]`` (the blocks with another l's path are computed and
    dropped: a few MFLOP), so nothing of size ``edges * channels * (lmax + 1)^2`` is built.
    """

    def __init__(self, tp, tables: dict | None = None) -> None:
        super().__init__()
        ((mul_in, _),) = tp.irreps_in1
        self.channels = mul_in
        self.n_paths = len(tp.instructions)
        comp_c, blocks = [], []
        offset = 0
        for k, (_, ir) in enumerate(tp.irreps_in2):
            ins = next(i for i in tp.instructions if i.i_in2 == k)
            comp_c += [ins.path_weight / math.sqrt(ir.dim)] * ir.dim
            blocks.append((ins.i_out, offset, ir.dim, tp.instructions.index(ins)))
            offset += ir.dim
        # not in the state_dict, which keeps mace-torch's keys (the tp's only state, two buffers)
        self.register_buffer(
            "comp_c", torch.tensor(comp_c, dtype=torch.get_default_dtype()), persistent=False
        )
        self.register_buffer("weight", tp.weight)
        self.register_buffer("output_mask", tp.output_mask)
        self._tp = (tp,)  # mace-torch's module, for unfusing (a tuple: not a submodule)
        self.blocks = [b[1:] for b in sorted(blocks)]  # (offset in Y, dim, path), output order
        #: the last receiver table, shared by the interactions of one model (same edges)
        self._tables = {} if tables is None else tables

    def _table(self, receiver: torch.Tensor, n: int) -> Table:
        if torch.compiler.is_compiling():  # a cache is Python state: not in a compiled graph
            return receiver_table(receiver, n)
        if self._tables.get("receiver") is not receiver:
            self._tables.update(receiver=receiver, table=receiver_table(receiver, n))
        return self._tables["table"]

    def forward(self, node_feats, edge_attrs, tp_weights, edge_index):
        n, u, p = node_feats.shape[0], self.channels, self.n_paths
        a = tp_weights.view(-1, p, u) * node_feats.index_select(0, edge_index[0]).unsqueeze(1)
        y = edge_attrs * self.comp_c.to(edge_attrs.dtype)
        m = receiver_sum(y, a.view(-1, p * u), self._table(edge_index[1], n))
        return torch.cat(  # m: [n, (lmax + 1)^2, paths * channels]; keep l's own path
            [
                m[:, o : o + d, q * u : (q + 1) * u].transpose(1, 2).reshape(n, u * d)
                for o, d, q in self.blocks
            ],
            dim=1,
        )


def _applies(tp) -> bool:
    if len(tp.irreps_in1) != 1 or not tp.irreps_in1[0].ir.is_scalar():
        return False
    if tp.internal_weights or tp.shared_weights or len(tp.instructions) != len(tp.irreps_in2):
        return False
    mul = tp.irreps_in1[0].mul
    for ins in tp.instructions:
        mul2, ir2 = tp.irreps_in2[ins.i_in2]
        mul_out, ir_out = tp.irreps_out[ins.i_out]
        if ins.connection_mode != "uvu" or not ins.has_weight or mul2 != 1:
            return False
        if ir_out != ir2 or mul_out != mul or ins.path_shape != (mul, 1):
            return False
    return sorted(i.i_in2 for i in tp.instructions) == list(range(len(tp.irreps_in2)))


def _has_fusion_hook(cls) -> bool:
    """Whether mace-torch's ``forward`` of this block calls ``conv_tp`` fused when asked."""
    try:
        return "conv_fusion" in inspect.getsource(cls.forward)
    except (OSError, TypeError):  # no source: do not guess
        return False


def fuse_scalar_convolutions(model: torch.nn.Module) -> int:
    """Replace every applicable ``conv_tp`` of ``model`` in place; return how many were."""
    n, tables = 0, {}
    for block in getattr(model, "interactions", []):
        tp = getattr(block, "conv_tp", None)
        if tp is None or hasattr(block, "conv_fusion") or not _applies(tp):
            continue
        if not _has_fusion_hook(type(block)):
            continue
        fused = ScalarConvolution(tp, tables)
        fused.comp_c = fused.comp_c.to(next(model.parameters()).dtype)
        block.conv_tp = fused
        block.conv_fusion = True
        n += 1
    return n


def unfuse_scalar_convolutions(model: torch.nn.Module) -> int:
    """Put mace-torch's ``conv_tp`` back where ``fuse_scalar_convolutions`` replaced it (with
    the fused module's current buffers); return how many were."""
    n = 0
    for block in getattr(model, "interactions", []):
        fused = getattr(block, "conv_tp", None)
        if not isinstance(fused, ScalarConvolution):
            continue
        (tp,) = fused._tp
        tp.weight, tp.output_mask = fused.weight, fused.output_mask
        block.conv_tp = tp
        del block.conv_fusion
        n += 1
    return n
