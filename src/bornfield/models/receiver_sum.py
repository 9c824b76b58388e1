"""Sums over the edges of each receiving atom as one batched matmul (CPU message passing).

A message ``y_e ⊗ a_e`` (edge features of two kinds, e.g. spherical harmonics and per-channel
weights) summed over the edges ``e`` that end on atom ``i`` is ``Σ_e y_e a_eᵀ``: with the edges
grouped by receiver and padded to the largest in-degree ``K``, that is ``bmm(Yᵀ, A)`` on
``[n, K, ·]`` tensors. Nothing of size ``edges × dim(y) × dim(a)`` is built, forward or
backward, which on CPU is what costs (memory traffic, not FLOPs).

The padding copies each edge row to its slot (``index_copy``), whose backward is a gather of the
slots. Written as a gather of the table's rows, its backward was a scatter-add, which
``torch.compile`` with 2 threads made parallel atomic adds into shared rows (every gap of the
table adds into one zero row): the compiled backward was slower on 2 threads than on one.

The matmul has a backward of its own (``_OuterSum``): autograd's formula for ``bmm(Yᵀ, A)``
computes ``dY`` as ``G Aᵀ`` into ``[n, p, K]``, which MKL ran 2.5–4× slower than the same
numbers as ``A Gᵀ`` into ``[n, K, p]`` (p = 9, q = 96, K = 42: 1.0 against 0.33–0.41 ms at 160
atoms on one thread); the compiled 1280-atom field-MD step is 12 % faster for it (no change
measured at 20–160 atoms, bench/results/fieldmd_catio3.md). A custom
``torch.library`` operator would be cleaner, but inductor (torch 2.13) failed on it with the
table's unbacked size; an ``autograd.Function`` needs ``mace_compile`` to let AOT autograd
cache it.
"""

from __future__ import annotations

import torch

#: ``receiver_table``'s result: edge ids ``[n, K]`` by receiver, and each edge's slot ``[E]``
Table = tuple[torch.Tensor, torch.Tensor]


@torch.library.custom_op("bornfield::receiver_table", mutates_args=())
def receiver_table(receiver: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge ids grouped by receiver, ``[n, K]`` (gaps hold ``E``; ``padded`` uses only its
    shape), and the slot of each edge in that table flattened, ``[E]``. An opaque operator to
    ``torch.compile`` (``K`` depends on the data), so that a compiled model stays one graph."""
    e = receiver.numel()
    order = torch.argsort(receiver, stable=True)
    sorted_r = receiver[order]
    counts = torch.bincount(receiver, minlength=n)
    k = max(int(counts.max()) if e else 0, 2)  # >= 2: a compiled bmm may not branch on K = 1
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(e, device=receiver.device) - first[sorted_r]
    table = torch.full((n, k), e, dtype=torch.long, device=receiver.device)
    table[sorted_r, slot] = order
    position = torch.empty_like(receiver)
    position[order] = sorted_r * k + slot
    return table, position


@receiver_table.register_fake
def _(receiver: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.library.get_ctx().new_dynamic_size(min=2)
    return receiver.new_empty((n, k)), torch.empty_like(receiver)


def padded(x: torch.Tensor, table: Table) -> torch.Tensor:
    """Edge rows ``x: [E, ...]`` laid out as ``[n, K, ...]``, zeros in the gaps: each row copied
    to its slot, so that the backward is a gather of the slots (``index_copy``'s)."""
    ids, position = table
    out = x.new_zeros((ids.numel(),) + x.shape[1:]).index_copy(0, position, x)
    return out.view(ids.shape + x.shape[1:])


class _OuterSum(torch.autograd.Function):
    """``bmm(yᵀ, a)`` for ``y: [n, K, p]``, ``a: [n, K, q]``; ``dy`` as ``a gᵀ`` into
    ``[n, K, p]`` (see the module doc). The backward is made of differentiable operations:
    force training differentiates it again."""

    @staticmethod
    def forward(y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return torch.bmm(y.transpose(1, 2), a)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, a = ctx.saved_tensors
        return torch.bmm(a, grad.transpose(1, 2).contiguous()), torch.bmm(y, grad)


def receiver_sum(y: torch.Tensor, a: torch.Tensor, table: Table) -> torch.Tensor:
    """``out[i] = Σ_{e → i} y_e a_eᵀ`` for ``y: [E, p]``, ``a: [E, q]``; returns ``[n, p, q]``."""
    return _OuterSum.apply(padded(y, table), padded(a, table))


def receiver_sum_padded(y: torch.Tensor, a: torch.Tensor, table: Table) -> torch.Tensor:
    """:func:`receiver_sum` with ``y`` already laid out by receiver (``padded(y, table)``), for a
    ``y`` shared by several sums."""
    return _OuterSum.apply(y, padded(a, table))
