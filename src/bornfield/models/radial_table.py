"""Tabulated radial weights for MACE models: r → tensor-product weights as a cubic spline.

Each MACE interaction turns an edge length into the weights of its convolution with an MLP on
a Bessel basis: ``w(r) = MLP(bessel(r) * cutoff(r))`` (``[edges, 8] → 64 → 64 → 64 → weights``).
On CPU its matmuls and their backward pass are about half of a force call of a small model.
The weights are a smooth function of one variable, so ``RadialTable`` replaces it by a piecewise
cubic Hermite interpolant on a uniform grid (values and derivatives from the model itself): per
edge one row gather and a Horner step, forward and backward. The interpolant is C¹, so forces
stay the exact gradient of the (interpolated) energy. With the default 2048 intervals on
[0.1 Å, r_max] the shipped BaTiO3 model's float64 results move by 2e-10 eV (energy), 3e-8 eV/Å
(forces, of up to 1.6) and 3e-10 eV/Å³ (stress), below float32 round-off (tested).
``tabulate_radial`` swaps it in where it applies and leaves other models as they are.
"""

from __future__ import annotations

import copy

import torch

#: interaction blocks whose forward uses ``edge_feats`` only through ``conv_tp_weights``
#: (and an optional ``cutoff`` factor): tabulating is exact up to interpolation for them
SUPPORTED = ("RealAgnosticInteractionBlock", "RealAgnosticResidualInteractionBlock")


class EdgeLengths(torch.nn.Module):
    """Stands in for mace-torch's ``RadialEmbeddingBlock``: passes the edge lengths on (the
    tables hold the basis, its cutoff and the MLP) and no separate cutoff factor."""

    def __init__(self, embedding: torch.nn.Module) -> None:
        super().__init__()
        self.out_dim = embedding.out_dim
        self.embedding = embedding  # what the tables were built from (its r_max and basis)

    def forward(self, edge_lengths, node_attrs=None, edge_index=None, atomic_numbers=None):
        return edge_lengths, None


class RadialTable(torch.nn.Module):
    """w(r) of one interaction as cubic polynomials on ``n`` equal intervals of [r_min, r_max].

    ``coef[k]`` holds the four coefficients (in t ∈ [0, 1) of interval k) of every weight; the
    lengths enter differentiably, so forces and stress flow through t.
    """

    def __init__(self, embedding, mlp, r_max: float, n: int = 2048, r_min: float = 0.1) -> None:
        super().__init__()
        self.r_min, self.n = float(r_min), int(n)
        self.h = (float(r_max) - self.r_min) / self.n
        dtype = next(mlp.parameters()).dtype
        r = torch.linspace(self.r_min, float(r_max), self.n + 1, dtype=torch.float64)[:, None]
        emb, mlp64 = _copy64(embedding), _copy64(mlp)
        r.requires_grad_(True)
        with torch.enable_grad():
            feats, cutoff = emb(r, None, None, None)
            w = mlp64(feats)
            if cutoff is not None:
                w = w * cutoff
            # each row depends on its own r only: the gradient of a column sum is dw/dr per row
            dw = torch.stack(
                [torch.autograd.grad(w[:, k].sum(), r, retain_graph=True)[0][:, 0]
                 for k in range(w.shape[1])],
                dim=1,
            )  # fmt: skip
        y, d = w.detach(), dw * self.h
        y0, y1, d0, d1 = y[:-1], y[1:], d[:-1], d[1:]
        coef = torch.stack([y0, d0, 3 * (y1 - y0) - 2 * d0 - d1, 2 * (y0 - y1) + d0 + d1], dim=1)
        self.register_buffer("coef", coef.to(dtype))  # [n, 4, weights]

    def forward(self, edge_lengths: torch.Tensor) -> torch.Tensor:
        x = (edge_lengths - self.r_min) / self.h  # [edges, 1]
        k = x.detach().floor().clamp(0, self.n - 1)
        t = x - k  # outside the grid: the end polynomials, extrapolated
        c = self.coef.index_select(0, k.long().view(-1))  # [edges, 4, weights]
        return c[:, 0] + t * (c[:, 1] + t * (c[:, 2] + t * c[:, 3]))


def _copy64(module: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(module).to(torch.float64)


def tabulate_radial(model: torch.nn.Module, n: int = 2048) -> int:
    """Replace every interaction's radial MLP by a :class:`RadialTable`, in place.

    Applies only when all interactions are of the ``SUPPORTED`` kinds (the lengths then reach
    nothing else); returns the number of tables (0: the model is left unchanged).
    """
    embedding = getattr(model, "radial_embedding", None)
    interactions = list(getattr(model, "interactions", []))
    if (
        embedding is None
        or isinstance(embedding, EdgeLengths)
        or not interactions
        or any(type(i).__name__ not in SUPPORTED for i in interactions)
        or hasattr(model, "pair_repulsion")
        or hasattr(embedding, "distance_transform")  # element-dependent lengths
    ):
        return 0
    r_max = float(model.r_max)
    for block in interactions:
        block.conv_tp_weights = RadialTable(embedding, block.conv_tp_weights, r_max, n)
    model.radial_embedding = EdgeLengths(embedding)
    return len(interactions)
