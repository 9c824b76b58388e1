"""Sums over the edges of each receiving atom as one batched matmul (CPU message passing).

A message ``y_e ⊗ a_e`` (edge features of two kinds, e.g. spherical harmonics and per-channel
weights) summed over the edges ``e`` that end on atom ``i`` is ``Σ_e y_e a_eᵀ``: with the edges
grouped by receiver and padded to the largest in-degree ``K``, that is ``bmm(Yᵀ, A)`` on
``[n, K, ·]`` tensors. Nothing of size ``edges × dim(y) × dim(a)`` is built, forward or
backward, which on CPU is what costs (memory traffic, not FLOPs).

The padding is a gather of edge rows; its backward is the inverse gather (each edge has one
slot), not the scatter-add autograd would derive. A scatter runs serially in eager mode, and
under ``torch.compile`` with 2 threads as atomic adds into shared rows (the padding slots all
add into one row), which made the compiled backward slower on 2 threads than on one.
"""

from __future__ import annotations

import torch

#: ``receiver_table``'s result: edge ids ``[n, K]`` by receiver, and each edge's slot ``[E]``
Table = tuple[torch.Tensor, torch.Tensor]


@torch.library.custom_op("bornfield::receiver_table", mutates_args=())
def receiver_table(receiver: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge ids grouped by receiver, ``[n, K]`` (gaps hold ``E``, the index of a zero row), and
    the slot of each edge in that table flattened, ``[E]``. An opaque operator to
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


class _Padded(torch.autograd.Function):
    """``x: [E, ...]`` -> ``[n, K, ...]``; backward: gather each edge's slot back."""

    @staticmethod
    def forward(x: torch.Tensor, table: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, x.new_zeros((1,) + x.shape[1:])])
        return x.index_select(0, table.reshape(-1)).view(table.shape + x.shape[1:])

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[2])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (position,) = ctx.saved_tensors
        return grad.reshape((-1,) + grad.shape[2:]).index_select(0, position), None, None


def padded(x: torch.Tensor, table: Table) -> torch.Tensor:
    """Edge rows ``x: [E, ...]`` laid out as ``[n, K, ...]``, zeros in the gaps."""
    return _Padded.apply(x, *table)


def receiver_sum(y: torch.Tensor, a: torch.Tensor, table: Table) -> torch.Tensor:
    """``out[i] = Σ_{e → i} y_e a_eᵀ`` for ``y: [E, p]``, ``a: [E, q]``; returns ``[n, p, q]``."""
    return torch.bmm(padded(y, table).transpose(1, 2), padded(a, table))
