"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from helpers import BATIO3, cubic_catio3


@pytest.fixture
def batio3_path() -> Path:
    if not BATIO3.is_file():
        pytest.skip(f"shared BaTiO3 data not found at {BATIO3}")
    return BATIO3


@pytest.fixture
def labelled_frame() -> Atoms:
    """A cubic CaTiO3 frame with every registry label, values deliberately non-symmetric."""
    rng = np.random.default_rng(0)
    atoms = cubic_catio3()
    atoms.rattle(0.05, seed=1)
    z = (
        rng.normal(0, 0.3, (5, 3, 3))
        + np.diag([1.0, 1, 1])[None] * np.array([2.6, 7.1, -2, -2, -5.6])[:, None, None]
    )
    z -= z.mean(axis=0)
    atoms.info.update(
        energy=-40.5,
        stress=(lambda s: s + s.T)(rng.normal(0, 0.01, (3, 3))),  # stress is symmetric
        epsilon_inf=np.diag([6.1, 6.2, 6.3]) + 0.01,
        polarization=np.array([0.01, -0.02, 0.3]),
        dipole=np.array([0.1, 0.2, 0.3]),
        polarizability=rng.normal(0, 1, (3, 3)),
        provenance='{"code": "test", "ecut": 35}',
    )
    atoms.new_array("forces", rng.normal(0, 0.5, (5, 3)))
    atoms.new_array("born_charges", z)
    return atoms
