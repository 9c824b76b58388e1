"""Thermal MD snapshots for labelling, and their sparsification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from bornfield.cli import main
from bornfield.data import io
from bornfield.errors import BornfieldError
from bornfield.label.generators import cubic_perovskite
from bornfield.label.snapshots import md_snapshots, sparsify


def _lj():
    return LennardJones(sigma=1.5, epsilon=0.01, rc=3.5, smooth=True)


def test_md_snapshots_and_sparsify():
    base = cubic_perovskite("CaTiO3").repeat(2)
    frames = md_snapshots(base, _lj(), [300, 900], 3, interval=5, equilibration=10, seed=1)
    assert len(frames) == 6
    assert [f.info["md_temperature"] for f in frames] == [300] * 3 + [900] * 3
    assert all(f.calc is None and "forces" not in f.arrays for f in frames)
    np.testing.assert_allclose(frames[0].cell[:], base.cell[:])
    assert not np.allclose(frames[0].positions, frames[1].positions)
    again = md_snapshots(base, _lj(), [300, 900], 3, interval=5, equilibration=10, seed=1)
    np.testing.assert_allclose(again[4].positions, frames[4].positions)  # seeded

    picked = sparsify(frames, 4)
    assert len(picked) == 4 and len({id(f) for f in picked}) == 4
    assert sparsify(frames, 10) == frames
    with pytest.raises(BornfieldError, match="positive"):
        md_snapshots(base, _lj(), [0.0], 1)


SHIPPED_FF = Path(__file__).resolve().parents[2] / "models/batio3/ff/ff_float32.model"


def test_cli_md_snapshots(tmp_path):
    out = tmp_path / "snaps.xyz"
    rc = main(
        [
            "structures",
            "cubic",
            "--formula",
            "BaTiO3",
            "--md",
            str(SHIPPED_FF),
            "-n",
            "2",
            "--temperatures",
            "300,600",
            "--interval",
            "2",
            "--sparsify",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    frames = io.read(out)
    assert len(frames) == 3 and {f.info["md_temperature"] for f in frames} <= {300.0, 600.0}
