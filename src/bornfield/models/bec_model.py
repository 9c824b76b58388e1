"""An E(3)-equivariant Born-charge network (the paper's "Equivar" model), built with e3nn.

Per atom it predicts a 0e + 1e + 2e feature, turned into the Cartesian 3×3 tensor
``Z[atom, field dir, displacement dir]`` (Z* = 1o ⊗ 1o is not symmetric: the 1e part is its
antisymmetric half). The acoustic sum rule holds exactly: the per-structure mean is subtracted.

Design, chosen for CPU speed (see bench/): messages are outer products radial(r) · s_j · Y_lm(r̂)
(plus, after the first layer, radial-weighted neighbour vectors) — no per-edge tensor product;
the equivariant coupling (1o × 1o → 1e, 2e × 2e → 2e, ...) happens once per atom in a
channel-wise ("uuu") tensor product of two linear mixes of the aggregated features, as in
MACE's product basis. Features are kept as a few (N, 2l+1, channels) tensors and every layer is
a handful of einsums (e3nn supplies the Wigner 3j symbols and the Cartesian change of basis):
e3nn's ``Linear``/``TensorProduct`` modules issue hundreds of tiny ops per call, which made the
network dispatch-bound on CPU. Channels are innermost, so that the per-edge products run along
contiguous memory: 15–22 % faster than channels first (bench/results/fieldmd_catio3.md).
Positions enter differentiably, so dZ*/dR is available by autograd.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from e3nn import o3
from e3nn.io import CartesianTensor

import bornfield.models  # noqa: F401  (e3nn defaults: no TorchScript, weights-only loading off)
from bornfield.models.receiver_sum import Table, padded, receiver_sum_padded, receiver_table


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
    # a second readout for the electronic dielectric tensor ε∞ (symmetric: 0e + 2e): the mean
    # over a structure's atoms of per-atom contributions, so it is intensive
    epsilon_head: bool = False
    # the radial weights are multiplied by the cutoff envelope, so that an edge reaching r_max
    # contributes nothing. Without it (models before 2026-11-27 load with False) the radial
    # MLP's biases give an edge at r_max a finite weight and Z* jumps when it leaves: by 0.12 e
    # for Ca in Pnma CaTiO3 at one displacement of 0.08 Å
    smooth_cutoff: bool = True


def cutoff_envelope(r: torch.Tensor, r_max: float, p: float = 6.0) -> torch.Tensor:
    """Polynomial cutoff: 1 at r = 0, zero with its first two derivatives at r_max and beyond."""
    x = r / r_max
    env = 1.0 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1)
    return (env - p * (p + 1) / 2 * x ** (p + 2)) * (x < 1)


class BesselBasis(torch.nn.Module):
    """sin(nπr/r_c)/r Bessel functions times the cutoff envelope (:func:`cutoff_envelope`)."""

    def __init__(self, r_max: float, n_basis: int):
        super().__init__()
        self.r_max = r_max
        self.register_buffer("freq", torch.arange(1, n_basis + 1) * math.pi / r_max)

    def forward(self, r: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
        return (
            math.sqrt(2.0 / self.r_max)
            * torch.sin(self.freq * r[:, None])
            / r[:, None]
            * env[:, None]
        )


#: irreps of the per-atom features, c channels each; a feature is a dict irrep → (N, c, 2l+1)
IRREPS_A = ("0e", "1o", "2e")  # the aggregated messages (spherical harmonics l = 0, 1, 2)
IRREPS_OUT = ("0e", "1o", "1e", "2e")  # each layer's output
IRREPS_Z = ("0e", "1e", "2e")  # Z* = 1o ⊗ 1o in e3nn's CartesianTensor("ij") order
IRREPS_EPS = ("0e", "2e")  # ε∞, symmetric: CartesianTensor("ij=ji")


def _dim(ir: str) -> int:
    return 2 * int(ir[0]) + 1


def _offsets(irreps: tuple[str, ...]) -> dict[str, slice]:
    out, k = {}, 0
    for ir in irreps:
        out[ir] = slice(k, k + _dim(ir))
        k += _dim(ir)
    return out


class IrrepsLinear(torch.nn.Module):
    """Channel mixing within each irrep (equivariant), optionally with one weight set per element.

    ``x`` maps irrep → (N, 2l+1, channels_in); weights are N(0, 1) and scaled by 1/√fan-in in
    the forward pass, as e3nn's ``Linear``. One matmul per output irrep (and element): e3nn's
    ``Linear`` issues several small ops per path, and per element, which made the model
    dispatch-bound on CPU. With per-element weights the atoms must come grouped by element,
    ``groups[e]`` atoms of element ``e`` in turn (:class:`BECModel` sorts them), and each group
    gets one matmul with its own weights.
    """

    def __init__(self, irreps_in: dict[str, int], irreps_out: dict[str, int], n_elements: int = 0):
        super().__init__()
        self.per_element = n_elements > 0
        lead = (n_elements,) if self.per_element else ()
        self.weights = torch.nn.ParameterDict(
            {
                ir: torch.nn.Parameter(torch.randn(*lead, irreps_in[ir], c_out))
                for ir, c_out in irreps_out.items()
                if ir in irreps_in
            }
        )
        self.scale = {ir: irreps_in[ir] ** -0.5 for ir in self.weights}

    def forward(self, x: dict[str, torch.Tensor], groups: list[int]) -> dict[str, torch.Tensor]:
        out = {}
        for ir, w in self.weights.items():
            w = w * self.scale[ir]  # on the weights: fewer numbers than the features
            if self.per_element:
                parts = zip(x[ir].split(groups), w, strict=True)
                out[ir] = torch.cat([xe @ we for xe, we in parts])
            else:
                out[ir] = x[ir] @ w
        return out


class ChannelProduct(torch.nn.Module):
    """Channel-wise ("uuu") tensor product x1 ⊗ x2 of two (N, 9, c) features (0e + 1o + 2e) into
    every wanted irrep, by all paths: one outer product and one matmul with the stacked Wigner 3j
    symbols. Paths carry no weights: the linear layer after the product mixes them per channel.

    Takes and returns features as (N, 2l+1, channels): irrep → (N, 2l+1, c · n_paths), channel
    index ``u · n_paths + path``.
    """

    def __init__(self, wanted: tuple[str, ...]):
        super().__init__()
        off = _offsets(IRREPS_A)
        blocks: dict[str, list[torch.Tensor]] = {ir: [] for ir in wanted}
        for ir1 in IRREPS_A:
            for ir2 in IRREPS_A:
                l1, l2 = int(ir1[0]), int(ir2[0])
                parity = "e" if (ir1[1] == ir2[1]) else "o"
                for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                    ir = f"{l3}{parity}"
                    if ir not in blocks:
                        continue
                    c = torch.zeros(9, 9, 2 * l3 + 1)
                    w3j = o3.wigner_3j(l1, l2, l3).to(torch.get_default_dtype())
                    c[off[ir1], off[ir2]] = w3j * math.sqrt(2 * l3 + 1)
                    blocks[ir].append(c.reshape(81, 2 * l3 + 1))
        self.n_paths = {ir: len(b) for ir, b in blocks.items()}
        self.register_buffer("coupling", torch.cat([t for b in blocks.values() for t in b], 1))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        n, _, c = x1.shape
        x1, x2 = x1.transpose(1, 2), x2.transpose(1, 2)  # (N, c, 9) views
        outer = (x1[:, :, :, None] * x2[:, :, None, :]).reshape(n, c, 81)
        y = outer @ self.coupling  # (N, c, Σ paths (2l+1))
        out, k = {}, 0
        for ir, n_paths in self.n_paths.items():
            d = _dim(ir)
            out[ir] = y[:, :, k : k + n_paths * d].reshape(n, c * n_paths, d).transpose(1, 2)
            k += n_paths * d
        return out


class Interaction(torch.nn.Module):
    """Scalar messages expanded in spherical harmonics, then a per-atom channel-wise product."""

    def __init__(self, cfg: BECConfig, first: bool = False):
        super().__init__()
        c = self.c = cfg.channels
        self.norm = 1.0 / cfg.avg_num_neighbors
        self.vector_messages = cfg.vector_messages and not first  # layer 1 has no vectors yet
        # one radial net: c weights for each l of the spherical harmonics, and for vector
        # messages c more for each of the neighbours' 1o and 2e features
        n_out = c * (cfg.l_max + 1 + 2 * self.vector_messages)
        self.radial = torch.nn.Sequential(
            torch.nn.Linear(cfg.n_basis, cfg.radial_hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(cfg.radial_hidden, n_out),
        )
        irreps_a = dict.fromkeys(IRREPS_A, c)
        self.mix1 = IrrepsLinear(irreps_a, irreps_a)
        self.mix2 = IrrepsLinear(irreps_a, irreps_a)
        self.product = ChannelProduct(IRREPS_OUT)
        fan_in = {ir: c * (n + (ir in irreps_a)) for ir, n in self.product.n_paths.items()}
        n_el = len(cfg.elements) if cfg.element_linear else 0
        self.post = IrrepsLinear(fan_in, dict.fromkeys(IRREPS_OUT, c), n_el)

    def forward(
        self,
        s: torch.Tensor,
        groups: list[int],
        sh: torch.Tensor,
        basis: torch.Tensor,
        edge_index: torch.Tensor,
        table: Table,
        prev: dict[str, torch.Tensor] | None = None,
        envelope: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``groups``: atoms per element (grouped in that order); ``sh``: (N, K, 9) spherical
        harmonics of the edges laid out by receiver (``padded`` by ``table``, the edges'
        ``receiver_table``); ``prev``: the previous layer's output, or None; ``envelope``:
        per-edge cutoff factor of the radial weights, or None. Features are irrep →
        (N, 2l+1, c): every per-edge product runs along contiguous channels."""
        i, j = edge_index
        c, n_w = self.c, 5 if self.vector_messages else 3
        lin1, act, lin2 = self.radial
        # the radial weights as (E, n_w, c): lin2's output rows, trained in (c, n_w) order,
        # taken in (n_w, c) order
        weight = lin2.weight.view(c, n_w, -1).transpose(0, 1).reshape(n_w * c, -1)
        bias = lin2.bias.view(c, n_w).T.reshape(-1)
        w = torch.nn.functional.linear(act(lin1(basis)), weight, bias).view(-1, n_w, c)
        # gathers by index_select: the backward of x[j] is an accumulating index_put, several
        # times slower on CPU than index_select's index_add
        s_j = s.index_select(0, j)
        if envelope is not None:  # on the narrower factor of each product
            s_j = s_j * envelope[:, None]
        ws = w[:, :3] * s_j[:, None, :]  # (E, l, c)
        # Σ_j ws[l, u] Y_lm for all l at once, as a batched matmul per receiver: (N, lm, l, c)
        m = receiver_sum_padded(sh, ws.view(-1, 3 * c), table).view(-1, 9, 3, c)
        if self.vector_messages:
            wv = w[:, 3:]
            if envelope is not None:
                wv = wv * envelope[:, None, None]
        a_irr = {}  # aggregated messages: irrep -> (N, 2l+1, c)
        for ir, sl in _offsets(IRREPS_A).items():
            deg = int(ir[0])
            a = m[:, sl, deg]
            if self.vector_messages and deg > 0:
                assert prev is not None  # layers after the first get the previous output
                msg = wv[:, deg - 1, None, :] * prev[ir].index_select(0, j)
                a = a + a.new_zeros(a.shape).index_add_(0, i, msg)  # contiguous target
            a_irr[ir] = a * self.norm
        x1 = torch.cat(list(self.mix1(a_irr, groups).values()), dim=1)
        x2 = torch.cat(list(self.mix2(a_irr, groups).values()), dim=1)
        prod = self.product(x1, x2)
        inputs = {
            ir: torch.cat([p, a_irr[ir]], dim=2) if ir in a_irr else p for ir, p in prod.items()
        }
        return self.post(inputs, groups)


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
        # change of basis (9 irrep components 0e + 1e + 2e -> 3x3), computed once: e3nn's
        # to_cartesian rebuilds it on every call (117 of 173 ms of a 160-atom prediction);
        # the CartesianTensor is not kept: it cannot be deep-copied
        self.register_buffer(
            "cart_q", CartesianTensor("ij").to_cartesian(torch.eye(9)), persistent=False
        )
        self.layers = torch.nn.ModuleList(
            [Interaction(cfg, first=k == 0) for k in range(cfg.n_layers)]
        )
        n_el = len(cfg.elements) if cfg.element_linear else 0
        self.readout = IrrepsLinear(
            dict.fromkeys(IRREPS_Z, c * cfg.n_layers), dict.fromkeys(IRREPS_Z, 1), n_el
        )
        iso = [float((isotropic_mean or {}).get(e, 0.0)) for e in cfg.elements]
        self.register_buffer("iso", torch.tensor(iso))
        self.register_buffer("scale", torch.tensor(1.0))
        if cfg.epsilon_head:
            self.eps_readout = IrrepsLinear(
                dict.fromkeys(IRREPS_EPS, c * cfg.n_layers), dict.fromkeys(IRREPS_EPS, 1), n_el
            )
            self.register_buffer(
                "eps_q", CartesianTensor("ij=ji").to_cartesian(torch.eye(6)), persistent=False
            )
            self.register_buffer("eps_iso", torch.tensor(1.0))  # set from the data in training
            self.register_buffer("eps_scale", torch.tensor(1.0))

    def species_index(self, numbers: torch.Tensor) -> torch.Tensor:
        """Map atomic numbers to model species indices; -1 for unknown elements."""
        match = numbers[:, None] == self.z_table[None, :].to(numbers.device)
        idx = match.int().argmax(dim=1)
        return torch.where(match.any(dim=1), idx, torch.full_like(idx, -1))

    def features(
        self,
        species: torch.Tensor,
        groups: list[int],
        vec: torch.Tensor,
        edge_index: torch.Tensor,
        table: Table,
    ) -> dict[str, torch.Tensor]:
        """The layers' outputs for the readouts, irrep → (N, 2l+1, c · layers), of atoms grouped
        by element (``groups``); ``vec``: edge vectors, ``table``: the edges' receiver table."""
        r = vec.norm(dim=1)
        env = cutoff_envelope(r, self.cfg.r_max)
        basis = self.basis(r, env)
        envelope = env if self.cfg.smooth_cutoff else None  # for the radial weights too
        s = self.embed(species)
        sh = padded(torch.cat(spherical_harmonics_l2(vec), dim=1), table)  # once for all layers
        feats = []
        f = None
        for layer in self.layers:
            f = layer(s, groups, sh, basis, edge_index, table, f, envelope)
            feats.append(f)
            s = s + torch.nn.functional.silu(f["0e"][:, 0])  # scalars for the next messages
        return {ir: torch.cat([f[ir] for f in feats], dim=2) for ir in IRREPS_Z}

    def forward(
        self,
        species: torch.Tensor,
        pos: torch.Tensor,
        edge_index: torch.Tensor,
        shifts: torch.Tensor,
        batch: torch.Tensor,
        n_structures: int,
        with_epsilon: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Z* of shape (N, 3, 3); with ``with_epsilon`` also ε∞ per structure, (S, 3, 3) (the
        model needs its ε∞ head). ``shifts`` are Cartesian lattice translations of the edges.

        Inside, the atoms are grouped by element (per-element weights: one matmul per group);
        Z* come back in the input order.
        """
        if with_epsilon and not self.cfg.epsilon_head:
            raise ValueError("this Born-charge model has no ε∞ head")
        perm = torch.argsort(species, stable=True)
        rank = torch.empty_like(perm)
        rank[perm] = torch.arange(len(perm), device=perm.device)
        edge_index = rank[edge_index]
        species, pos, batch = species[perm], pos[perm], batch[perm]
        groups = torch.bincount(species, minlength=len(self.cfg.elements)).tolist()
        i, j = edge_index
        vec = pos.index_select(0, j) - pos.index_select(0, i) + shifts
        table = receiver_table(i, len(species))
        z_in = self.features(species, groups, vec, edge_index, table)
        irr = torch.cat(list(self.readout(z_in, groups).values()), dim=1)[:, :, 0]  # (N, 9)
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
        z = z - (mean / counts[:, None, None])[batch]
        z = z.index_select(0, rank)  # back to the input order
        if not with_epsilon:
            return z
        e_irr = torch.cat(list(self.eps_readout(z_in, groups).values()), dim=1)[:, :, 0]  # (N, 6)
        e_sum = torch.zeros(n_structures, 6, dtype=e_irr.dtype, device=e_irr.device)
        e_mean = e_sum.index_add_(0, batch, e_irr) / counts[:, None].to(e_irr.dtype)
        eps = torch.einsum("si,ijk->sjk", e_mean, self.eps_q) * self.eps_scale
        return z, eps + self.eps_iso * torch.eye(3, dtype=eps.dtype, device=eps.device)


def config_dict(cfg: BECConfig) -> dict:
    d = asdict(cfg)
    d["elements"] = list(cfg.elements)
    return d
