"""Structures to label: cubic and Pnma perovskites, strained and rattled copies, scans."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

#: pseudo-cubic lattice constants (Å) near the PBEsol values
CUBIC_A = {"CaTiO3": 3.84, "BaTiO3": 4.00, "CaZrO3": 4.12}
#: experimental Pnma CaTiO3 (Sasaki et al. 1987, Pnma setting): a, b, c in Å
PNMA_CELL = (5.4423, 7.6401, 5.3796)


def cubic_perovskite(formula: str = "CaTiO3", a: float | None = None) -> Atoms:
    """5-atom cubic ABO3: A at the origin, B at the body centre, O at the face centres."""
    a = a if a is not None else CUBIC_A[formula]
    sym = Atoms(formula).get_chemical_symbols()  # e.g. Ca Ti O O O
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Atoms(sym, scaled_positions=frac, cell=np.eye(3) * a, pbc=True)


#: Sasaki et al. (1987) Pnma Wyckoff positions and the ideal cubic (aristotype) positions
PNMA_BASIS = [
    (0.0351, 0.25, -0.0065),
    (0.0, 0.0, 0.5),
    (0.4831, 0.25, 0.0713),
    (0.2891, 0.0370, 0.7106),
]
CUBIC_BASIS = [(0.0, 0.25, 0.0), (0.0, 0.0, 0.5), (0.5, 0.25, 0.0), (0.25, 0.0, 0.75)]


def pnma_catio3(scale: float = 1.0, amplitude: float = 1.0) -> Atoms:
    """20-atom orthorhombic Pnma CaTiO3 (a⁻a⁻c⁺ tilts) from the experimental structure.

    Sasaki, Prewitt, Bass & Schulze, Acta Cryst. C43, 1668 (1987), given in Pbnm and turned to
    the standard Pnma setting (x, y, z)_Pnma = (y, z, x)_Pbnm. ``scale`` multiplies the cell.
    ``amplitude`` η scales the distortion from the cubic aristotype: positions by η and the
    cell's deviation from (√2·a₀, 2·a₀, √2·a₀) by η² (spontaneous strain is quadratic in the
    tilt order parameter), at fixed volume: 1 is the experiment, 0 cubic Pm-3m.
    """
    from ase.spacegroup import crystal

    a0 = (np.prod(PNMA_CELL) / 4) ** (1 / 3)
    ideal = np.array([np.sqrt(2) * a0, 2 * a0, np.sqrt(2) * a0])
    cell = ideal + amplitude**2 * (np.asarray(PNMA_CELL) - ideal)
    cell *= scale * (np.prod(PNMA_CELL) / np.prod(cell)) ** (1 / 3)
    basis = np.asarray(CUBIC_BASIS) + amplitude * (np.subtract(PNMA_BASIS, CUBIC_BASIS))
    return crystal(
        ["Ca", "Ti", "O", "O"],
        basis=basis,
        spacegroup=62,
        cellpar=[*cell, 90, 90, 90],
        primitive_cell=False,
    )


def named_structure(spec: str, check: bool = False) -> Atoms:
    """``"pnma"`` (CaTiO3), ``"cubic:<ABO3>"`` or the last frame of a structure file."""
    if spec == "pnma":
        return pnma_catio3()
    if spec.startswith("cubic:"):
        return cubic_perovskite(spec.split(":", 1)[1])
    from bornfield.data import io

    return io.read(spec, check=check)[-1]


def _strain(a: Atoms, strain: float, rng: np.random.Generator) -> None:
    """Random symmetric strain (components uniform in ±``strain``), atoms moved with the cell."""
    e = rng.uniform(-strain, strain, (3, 3))
    e = 0.5 * (e + e.T)
    a.set_cell(a.cell[:] @ (np.eye(3) + e), scale_atoms=True)


def perturbed(
    atoms: Atoms, n: int, rattle: float = 0.05, strain: float = 0.02, seed: int = 0
) -> list[Atoms]:
    """n copies with Gaussian displacements (std ``rattle`` Å) and random symmetric strain."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = atoms.copy()
        _strain(a, strain, rng)
        a.positions += rng.normal(0, rattle, a.positions.shape)
        out.append(a)
    return out


def strained(frames: Sequence[Atoms], strain: float, seed: int = 0) -> list[Atoms]:
    """Copies of ``frames`` (e.g. MD snapshots), each with its own random symmetric strain
    (components uniform in ±``strain``); the atoms keep their fractional coordinates."""
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        a = f.copy()
        _strain(a, strain, rng)
        out.append(a)
    return out


def displacement_scan(
    atoms: Atoms, index: int, direction: Sequence[float] | str, amplitudes: Sequence[float]
) -> list[Atoms]:
    """Copies with atom ``index`` moved by each amplitude (Å) along ``direction``."""
    d = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}.get(direction, direction)  # type: ignore[arg-type]
    d = np.asarray(d, dtype=float)
    d /= np.linalg.norm(d)
    out = []
    for amp in amplitudes:
        a = atoms.copy()
        a.positions[index] += amp * d
        a.info["scan"] = f"atom {index} ({a[index].symbol}) {amp:+.4f} A"
        out.append(a)
    return out


def softmode_frames(cell: Atoms, amplitudes: Sequence[float], pattern: np.ndarray) -> list[Atoms]:
    """Copies of ``cell`` displaced by u · pattern (Å) for each amplitude u (Fig 2b)."""
    out = []
    for u in amplitudes:
        a = cell.copy()
        a.positions += u * pattern
        a.info["softmode_u"] = float(u)
        out.append(a)
    return out
