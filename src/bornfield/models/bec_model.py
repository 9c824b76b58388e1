"""An E(3)-equivariant Born-charge network (the paper's "Equivar" model), built with e3nn.

Per atom it predicts a 0e + 1e + 2e feature, turned into the Cartesian 3×3 tensor
``Z[atom, field dir, displacement dir]`` (Z* = 1o ⊗ 1o is not symmetric: the 1e part is its
antisymmetric half). The acoustic sum rule holds exactly: the per-structure mean is subtracted.

Design, chosen for CPU speed (see bench/): messages carry only scalar features, so every
per-edge operation is an outer product radial(r) · s_j · Y_lm(r̂) — no per-edge tensor product;
the equivariant coupling (1o × 1o → 1e, 2e × 2e → 2e, ...) happens once per atom in a
channel-wise ("uuu") tensor product of two linear mixes of the aggregated features, as in
MACE's product basis. Positions enter differentiably, so dZ*/dR is available by autograd.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from e3nn import o3
from e3nn.io import CartesianTensor

import bornfield.models  # noqa: F401  (e3nn defaults: no TorchScript, weights-only loading off)


def spherical_harmonics_l2(vec: torch.Tensor) -> list[torch.Tensor]:
    """Real spherical harmonics l = 0, 1, 2 of unit(vec), e3nn's basis and 'component' norm.

    The same polynomials as e3nn's ``_spherical_harmonics`` (which is TorchScript-compiled and
    slow on CPU here); a test checks them against e3nn.
    """
    x, y, z = torch.nn.functional.normalize(vec, dim=-1).unbind(-1)
    s3 = math.sqrt(3.0)
    y0 = torch.ones_like(x)[:, None]
    y1 = torch.stack([x, y, z], dim=-1) * s3
    x2z2 = x * x + z * z
    y2 = torch.stack(
        [s3 * x * z, s3 * x * y, y * y - 0.5 * x2z2, s3 * y * z, s3 / 2 * (z * z - x * x)], dim=-1
    ) * math.sqrt(5.0)
    return [y0, y1, y2]


@dataclass(frozen=True)
class BECConfig:
    """Architecture of the Z* network."""

    elements: tuple[str, ...]
    r_max: float = 4.5
    channels: int = 16
    l_max: int = 2
    n_basis: int = 8
    n_layers: int = 3
    radial_hidden: int = 32
    avg_num_neighbors: float = 30.0
    # layers after the first also pass the neighbours' 1o and 2e features (radial weights times
    # the features, channel-wise, as PaiNN does for vectors): neighbour directions beyond the
    # bond vector reach each atom; False gives the scalar-only messages of the first models.
    # 16 channels, 3 layers and vector messages: bench/results/bec_architecture.md
    vector_messages: bool = True
    # each element has its own weights in the per-layer output mix and in the readout (as MACE's
    # element-dependent product weights): bench/results/bec_training.md
    element_linear: bool = True


class BesselBasis(torch.nn.Module):
    """sin(nπr/r_c)/r Bessel functions times a smooth polynomial cutoff (p = 6)."""

    def __init__(self, r_max: float, n_basis: int):
        super().__init__()
        self.r_max = r_max
        self.register_buffer("freq", torch.arange(1, n_basis + 1) * math.pi / r_max)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x = r / self.r_max
        p = 6.0
        env = (
            1.0
            - (p + 1) * (p + 2) / 2 * x**p
            + p * (p + 2) * x ** (p + 1)
            - p * (p + 1) / 2 * x ** (p + 2)
        ) * (x < 1)
        return (
            math.sqrt(2.0 / self.r_max)
            * torch.sin(self.freq * r[:, None])
            / r[:, None]
            * env[:, None]
        )


class ElementLinear(torch.nn.Module):
    """An e3nn ``Linear`` with its own weights for each element (still equivariant)."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, n_elements: int):
        super().__init__()
        self.lins = torch.nn.ModuleList(o3.Linear(irreps_in, irreps_out) for _ in range(n_elements))
        self.dim_out = o3.Irreps(irreps_out).dim

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(x.shape[0], self.dim_out)
        for e, lin in enumerate(self.lins):
            mask = species == e
            out = out.index_put((mask,), lin(x[mask]))
        return out


def _linear(irreps_in: o3.Irreps, irreps_out: o3.Irreps, cfg: BECConfig) -> torch.nn.Module:
    if cfg.element_linear:
        return ElementLinear(irreps_in, irreps_out, len(cfg.elements))
    return o3.Linear(irreps_in, irreps_out)


def _apply(lin: torch.nn.Module, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
    return lin(x, species) if isinstance(lin, ElementLinear) else lin(x)


class Interaction(torch.nn.Module):
    """Scalar messages expanded in spherical harmonics, then a per-atom channel-wise product."""

    def __init__(
        self, cfg: BECConfig, irreps_a: o3.Irreps, wanted: list[o3.Irrep], first: bool = False
    ):
        super().__init__()
        c, self.l_max = cfg.channels, cfg.l_max
        self.c = c
        self.norm = 1.0 / cfg.avg_num_neighbors
        self.radial = torch.nn.Sequential(
            torch.nn.Linear(cfg.n_basis, cfg.radial_hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(cfg.radial_hidden, c * (cfg.l_max + 1)),
        )
        self.vector_messages = cfg.vector_messages and not first  # layer 1 has no vectors yet
        if self.vector_messages:
            self.radial_v = torch.nn.Sequential(
                torch.nn.Linear(cfg.n_basis, cfg.radial_hidden),
                torch.nn.SiLU(),
                torch.nn.Linear(cfg.radial_hidden, 2 * c),
            )
        self.mix1 = o3.Linear(irreps_a, irreps_a)
        self.mix2 = o3.Linear(irreps_a, irreps_a)
        irreps_p, instructions = [], []
        for i1, (_, ir1) in enumerate(irreps_a):
            for i2, (_, ir2) in enumerate(irreps_a):
                for ir in ir1 * ir2:
                    if ir in wanted:
                        instructions.append((i1, i2, len(irreps_p), "uuu", True))
                        irreps_p.append((c, ir))
        self.product = o3.TensorProduct(irreps_a, irreps_a, o3.Irreps(irreps_p), instructions)
        self.irreps_out = o3.Irreps([(c, ir) for ir in wanted])
        self.post = _linear(o3.Irreps(irreps_p) + irreps_a, self.irreps_out, cfg)

    def forward(
        self,
        s: torch.Tensor,
        species: torch.Tensor,
        sh: list[torch.Tensor],
        basis: torch.Tensor,
        edge_index: torch.Tensor,
        prev: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``prev``: the previous layer's output (c×0e + c×1o + c×1e + c×2e), or None."""
        i, j = edge_index
        c = self.c
        w = self.radial(basis).view(-1, c, self.l_max + 1) * s[j][:, :, None]
        parts = [w[:, :, k, None] * sh[k][:, None, :] for k in range(self.l_max + 1)]
        if self.vector_messages:
            assert prev is not None  # layers after the first get the previous output
            wv = self.radial_v(basis).view(-1, c, 2)
            v1 = prev[:, c : 4 * c].view(-1, c, 3)[j]  # 1o
            v2 = prev[:, 7 * c :].view(-1, c, 5)[j]  # 2e
            parts[1] = parts[1] + wv[:, :, 0, None] * v1
            parts[2] = parts[2] + wv[:, :, 1, None] * v2
        msg = torch.cat([p.reshape(len(j), -1) for p in parts], dim=1)
        a = torch.zeros(s.shape[0], msg.shape[1], dtype=msg.dtype, device=msg.device)
        a = a.index_add_(0, i, msg) * self.norm
        prod = self.product(self.mix1(a), self.mix2(a))
        return _apply(self.post, torch.cat([prod, a], dim=1), species)


class BECModel(torch.nn.Module):
    """Z* for every atom of a batch of structures; ASR exact per structure."""

    def __init__(self, cfg: BECConfig, isotropic_mean: dict[str, float] | None = None):
        super().__init__()
        self.cfg = cfg
        from ase.data import atomic_numbers

        self.register_buffer(
            "z_table", torch.tensor([atomic_numbers[e] for e in cfg.elements], dtype=torch.long)
        )
        c = cfg.channels
        self.embed = torch.nn.Embedding(len(cfg.elements), c)
        self.basis = BesselBasis(cfg.r_max, cfg.n_basis)
        if cfg.l_max != 2:
            raise ValueError("the Born-charge model is built for l_max = 2")
        irreps_a = o3.Irreps([(c, (k, (-1) ** k)) for k in range(cfg.l_max + 1)])
        cart = CartesianTensor("ij")  # 1x0e + 1x1e + 1x2e (not kept: it cannot be deep-copied)
        # change of basis (9 irrep components -> 3x3), computed once: e3nn's to_cartesian
        # rebuilds it on every call (117 of 173 ms of a 160-atom prediction)
        self.register_buffer("cart_q", cart.to_cartesian(torch.eye(9)), persistent=False)
        wanted = [o3.Irrep(s) for s in ("0e", "1o", "1e", "2e")]
        self.layers = torch.nn.ModuleList(
            [Interaction(cfg, irreps_a, wanted, first=k == 0) for k in range(cfg.n_layers)]
        )
        irreps_feat = self.layers[0].irreps_out
        self.readout = _linear(irreps_feat * cfg.n_layers, o3.Irreps(cart), cfg)
        iso = [float((isotropic_mean or {}).get(e, 0.0)) for e in cfg.elements]
        self.register_buffer("iso", torch.tensor(iso))
        self.register_buffer("scale", torch.tensor(1.0))

    def species_index(self, numbers: torch.Tensor) -> torch.Tensor:
        """Map atomic numbers to model species indices; -1 for unknown elements."""
        match = numbers[:, None] == self.z_table[None, :]
        idx = match.int().argmax(dim=1)
        return torch.where(match.any(dim=1), idx, torch.full_like(idx, -1))

    def forward(
        self,
        species: torch.Tensor,
        pos: torch.Tensor,
        edge_index: torch.Tensor,
        shifts: torch.Tensor,
        batch: torch.Tensor,
        n_structures: int,
    ) -> torch.Tensor:
        """Z* of shape (N, 3, 3). ``shifts`` are Cartesian lattice translations of the edges."""
        i, j = edge_index
        vec = pos[j] - pos[i] + shifts
        r = vec.norm(dim=1)
        basis = self.basis(r)
        sh = spherical_harmonics_l2(vec)
        s = self.embed(species)
        feats = []
        c = self.cfg.channels
        f = None
        for layer in self.layers:
            f = layer(s, species, sh, basis, edge_index, f)
            feats.append(f)
            s = s + torch.nn.functional.silu(f[:, :c])  # scalars for the next messages
        irr = _apply(self.readout, torch.cat(feats, dim=1), species)
        z = torch.einsum("ni,ijk->njk", irr, self.cart_q)
        z = z * self.scale
        z = z + self.iso[species][:, None, None] * torch.eye(3, dtype=z.dtype, device=z.device)
        # acoustic sum rule: subtract the per-structure mean, in float64 so that it holds to
        # ~1e-12 e even for a float32 model and thousands of atoms
        z = z.double()
        counts = torch.zeros(n_structures, dtype=z.dtype, device=z.device).index_add_(
            0, batch, torch.ones_like(batch, dtype=z.dtype)
        )
        mean = torch.zeros(n_structures, 3, 3, dtype=z.dtype, device=z.device).index_add_(
            0, batch, z
        )
        return z - (mean / counts[:, None, None])[batch]


def config_dict(cfg: BECConfig) -> dict:
    d = asdict(cfg)
    d["elements"] = list(cfg.elements)
    return d
