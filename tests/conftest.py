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


@pytest.fixture(scope="session")
def tiny_ff(tmp_path_factory):
    """A real MACE model trained for 2 epochs on 5 shared BaTiO3 frames: (directory, ff.model)."""
    from bornfield.data import io
    from bornfield.models.force_field import ff_preset, train_ff

    if not BATIO3.is_file():
        pytest.skip("shared BaTiO3 data missing")
    out = tmp_path_factory.mktemp("ff")
    cfg = ff_preset("fast", max_num_epochs=2, r_max=4.0)
    return out, train_ff(io.read(BATIO3)[:5], out, cfg, seed=0, log=lambda m: None)


@pytest.fixture(scope="session")
def tiny_bec(tmp_path_factory):
    """A Z* model trained for 2 epochs on 4 shared BaTiO3 frames: its directory."""
    from bornfield.data import io
    from bornfield.models.bec_train import BECTrainConfig, train_bec

    if not BATIO3.is_file():
        pytest.skip("shared BaTiO3 data missing")
    out = tmp_path_factory.mktemp("bec")
    frames = io.read(BATIO3)[:4]
    train_bec(frames[:3], out, {"channels": 4}, BECTrainConfig(max_epochs=2), valid=frames[3:],
              log=lambda m: None)  # fmt: skip
    return out
