"""The padded receiver sum equals the edge-by-edge scatter, values and gradients."""

from __future__ import annotations

import torch

from bornfield.models.receiver_sum import receiver_sum, receiver_table


def test_receiver_sum_equals_scatter():
    g = torch.Generator().manual_seed(0)
    n, e = 7, 40
    receiver = torch.randint(0, n - 1, (e,), generator=g)  # atom n - 1 receives nothing
    y = torch.randn(e, 4, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.randn(e, 6, generator=g, dtype=torch.float64, requires_grad=True)
    outer = y[:, :, None] * a[:, None]
    ref = torch.zeros(n, 4, 6, dtype=torch.float64).index_add_(0, receiver, outer)
    table = receiver_table(receiver, n)
    k = int(torch.bincount(receiver).max())
    assert table[0].shape == (n, k)
    # each edge sits in its receiver's row, at the slot ``position`` names
    assert torch.equal(table[0].reshape(-1)[table[1]], torch.arange(e))
    assert torch.equal(table[1] // k, receiver)
    out = receiver_sum(y, a, table)
    torch.testing.assert_close(out, ref)
    assert out[n - 1].abs().max() == 0
    w = torch.randn(n, 4, 6, generator=g, dtype=torch.float64)
    g_ref = torch.autograd.grad((ref * w).sum(), (y, a))
    g_out = torch.autograd.grad((out * w).sum(), (y, a))
    for x1, x2 in zip(g_out, g_ref, strict=True):
        torch.testing.assert_close(x1, x2)
    empty = receiver_table(receiver[:0], n)
    assert receiver_sum(y[:0], a[:0], empty).shape == (n, 4, 6)


def test_receiver_sum_second_derivatives():
    """Second derivatives through the padding (``index_copy``) are right: force training
    differentiates the forces, themselves a gradient."""
    g = torch.Generator().manual_seed(1)
    n, e = 4, 11
    receiver = torch.randint(0, n, (e,), generator=g)
    table = receiver_table(receiver, n)
    y = torch.randn(e, 3, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.randn(e, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda y, a: receiver_sum(y, a, table), (y, a))
