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
