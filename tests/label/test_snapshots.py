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


def test_cli_md_snapshots_equilibration_and_strain(tmp_path):
    """--equilibration sets the steps before the first snapshot; --strain gives every snapshot
    its own strain with the atoms' fractional coordinates kept (to the file's 1e-8 Å)."""
    args = ["structures", "cubic", "--formula", "BaTiO3", "--md", str(SHIPPED_FF), "-n", "2",
            "--temperatures", "300", "--interval", "2", "--equilibration", "4"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a.xyz")]) == 0
    assert main([*args, "--strain", "0.03", "--out", str(tmp_path / "b.xyz")]) == 0
    plain, strained = io.read(tmp_path / "a.xyz"), io.read(tmp_path / "b.xyz")
    assert [int(f.info["md_step"]) for f in plain] == [6, 8]
    base = cubic_perovskite("BaTiO3").cell[:]
    assert all(np.allclose(f.cell[:], base) for f in plain)
    for p, q in zip(plain, strained, strict=True):
        e = np.linalg.solve(base, q.cell[:]) - np.eye(3)  # cell' = cell (1 + e)
        assert 1e-4 < np.abs(e).max() <= 0.03 and np.allclose(e, e.T)
        np.testing.assert_allclose(
            q.get_scaled_positions(wrap=False), p.get_scaled_positions(wrap=False), atol=1e-7
        )
    assert not np.allclose(strained[0].cell[:], strained[1].cell[:])


def test_cli_sparsify_against_reference_structures(tmp_path):
    """--reference: the kept snapshots are the farthest from an earlier batch too; with
    --strain they are strained before the selection (compared strained with strained)."""
    args = ["structures", "cubic", "--formula", "BaTiO3", "--md", str(SHIPPED_FF), "-n", "3",
            "--temperatures", "300", "--interval", "2", "--equilibration", "4",
            "--strain", "0.02"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "all.xyz")]) == 0
    every = io.read(tmp_path / "all.xyz")
    io.write(tmp_path / "ref.xyz", every[:2])
    out = tmp_path / "new.xyz"
    ref = ["--reference", str(tmp_path / "ref.xyz")]
    assert main([*args, "--sparsify", "1", *ref, "--out", str(out)]) == 0
    (picked,) = io.read(out)
    np.testing.assert_allclose(picked.positions, every[2].positions, atol=1e-7)
    np.testing.assert_allclose(picked.cell[:], every[2].cell[:], atol=1e-7)
