"""Test helpers shared across test modules (imported as ``helpers``; tests/ is on pythonpath)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from ase import Atoms

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"
BATIO3 = SHARED / "data" / "batio3-allegro-pol" / "BaTiO3.xyz"


def cubic_catio3(a: float = 3.84) -> Atoms:
    """5-atom cubic perovskite CaTiO3 (Ca at the origin, Ti at the body centre)."""
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Atoms("CaTiO3", scaled_positions=frac, cell=np.eye(3) * a, pbc=True)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``bornfield`` in a subprocess (as a user would) and capture everything."""
    return subprocess.run(
        [sys.executable, "-m", "bornfield.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


class Springs:
    """Harmonic springs to reference positions, E = k/2 Σ |u|² (an ASE calculator for tests)."""

    def __new__(cls, reference: Atoms, k: float = 5.0):
        from ase.calculators.calculator import Calculator, all_changes

        ref = reference.get_scaled_positions(wrap=False)

        class _Springs(Calculator):
            implemented_properties = ["energy", "free_energy", "forces", "stress"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                ds = self.atoms.get_scaled_positions(wrap=False) - ref
                u = (ds - np.round(ds)) @ self.atoms.cell[:]
                e = 0.5 * k * float((u**2).sum())
                g = k * np.einsum("kb,kc->bc", u, u) / self.atoms.get_volume()
                voigt = np.array([g[0, 0], g[1, 1], g[2, 2], g[1, 2], g[0, 2], g[0, 1]])
                self.results = {"energy": e, "free_energy": e, "forces": -k * u, "stress": voigt}

        return _Springs()


class HarmonicCrystal:
    """Exactly harmonic crystal, E = ½ uᵀ Φ u, with translation-invariant pair springs
    (isotropic ``k_iso`` plus central ``k_central``, eV/Å²) between atoms closer than ``cutoff``
    in ``reference``. ``phi`` is the 3N×3N Γ force-constant matrix (an ASE calculator for tests).
    """

    def __new__(cls, reference: Atoms, k_iso: float = 2.0, k_central: float = 6.0,
                cutoff: float = 3.0):  # fmt: skip
        from ase.calculators.calculator import Calculator, all_changes
        from ase.neighborlist import neighbor_list

        n = len(reference)
        phi = np.zeros((n, 3, n, 3))
        for i, j, d in zip(*neighbor_list("ijD", reference, cutoff), strict=True):
            if i == j:
                continue
            e = d / np.linalg.norm(d)
            k = 0.5 * (k_iso * np.eye(3) + k_central * np.outer(e, e))  # pair seen twice
            phi[i, :, i] += k
            phi[j, :, j] += k
            phi[i, :, j] -= k
            phi[j, :, i] -= k
        phi = phi.reshape(3 * n, 3 * n)
        ref = reference.get_scaled_positions(wrap=False)

        class _Harmonic(Calculator):
            implemented_properties = ["energy", "free_energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                ds = self.atoms.get_scaled_positions(wrap=False) - ref
                u = ((ds - np.round(ds)) @ self.atoms.cell[:]).ravel()
                f = -phi @ u
                e = -0.5 * float(u @ f)
                self.results = {"energy": e, "free_energy": e, "forces": f.reshape(-1, 3)}

        calc = _Harmonic()
        calc.phi = phi
        return calc


def random_born_charges(n: int, seed: int = 0, scale: float = 2.0) -> np.ndarray:
    """Random, non-symmetric N×3×3 Born charges that obey the acoustic sum rule."""
    z = (
        np.random.default_rng(seed).normal(0, scale, (n, 3, 3))
        + 2 * np.eye(3) * np.where(np.arange(n) % 2, 1, -1)[:, None, None]
    )
    return z - z.mean(axis=0)


def analytic_epsilon_ionic(atoms: Atoms, phi: np.ndarray, z: np.ndarray) -> np.ndarray:
    """ε_ion = e²/(ε0 Ω) Z Φ⁺ Zᵀ for a harmonic crystal with fixed charges."""
    from bornfield.analysis.dielectric import MODE_SUM_FACTOR

    zf = z.transpose(1, 0, 2).reshape(3, -1)  # [α, 3κ+β]
    return MODE_SUM_FACTOR / atoms.get_volume() * zf @ np.linalg.pinv(phi, rcond=1e-8) @ zf.T


TC = 1250.0


def synthetic_heating(n: int = 60, seed: int = 0):
    """Frames whose distortion amplitude follows √(1 − T/Tc), with thermal rattle."""
    from bornfield.label.generators import pnma_catio3

    rng = np.random.default_rng(seed)
    temps = np.linspace(300, 1800, n)
    frames = []
    for t in temps:
        a = pnma_catio3(amplitude=np.sqrt(max(0.0, 1 - t / TC))).repeat((2, 1, 2))
        a.set_cell(a.cell[:] * (1 + rng.normal(0, 0.002, 3))[:, None], scale_atoms=True)
        a.positions += rng.normal(0, 0.015, a.positions.shape)
        frames.append(a)
    return frames, temps
