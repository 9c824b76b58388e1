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
