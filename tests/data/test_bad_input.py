"""A corpus of broken files: one clear line each, exit status 2, no traceback, no overwrite."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import cubic_catio3, run_cli

from bornfield.data import io


def _good_text(tmp_path, labelled_frame) -> str:
    p = tmp_path / "good.xyz"
    io.write(p, [labelled_frame, labelled_frame])
    return p.read_text()


def _make_corpus(tmp_path, labelled_frame) -> dict[str, tuple[bytes, str]]:
    """name -> (file content, expected words in the error)."""
    good = _good_text(tmp_path, labelled_frame)
    lines = good.splitlines(keepends=True)
    nan_force = labelled_frame.copy()
    nan_force.arrays["forces"][2, 1] = np.nan
    p = tmp_path / "nan.xyz"
    io.write(p, [labelled_frame, nan_force])
    six = lines[:]
    six[1] = six[1].replace("born_charges:R:9", "born_charges:R:6")
    for i in range(2, 7):  # drop 3 of the 9 Z* numbers on every atom of frame 0
        cols = six[i].split()
        six[i] = " ".join(cols[:-3]) + "\n"
    no_lattice = lines[:]
    no_lattice[1] = (
        no_lattice[1].split('pbc="T T T"')[0].split("Lattice=")[0] + no_lattice[1].split('" ', 1)[1]
    )
    no_lattice[1] = no_lattice[1].replace('pbc="T T T"', 'pbc="F F F"')
    return {
        "truncated.xyz": ("".join(lines[:-3]).encode(), "not valid extxyz"),
        "nan_force.xyz": (p.read_bytes(), "frame 1: forces contains NaN"),
        "zstar6.xyz": ("".join(six).encode(), "born_charges"),
        "no_lattice.xyz": ("".join(no_lattice).encode(), "periodic"),
        "empty.xyz": (b"", "empty file"),
        "garbage.xyz": (bytes(range(256)) * 4, "not"),
    }


@pytest.mark.parametrize(
    "name",
    ["truncated.xyz", "nan_force.xyz", "zstar6.xyz", "no_lattice.xyz", "empty.xyz", "garbage.xyz"],
)
def test_broken_file_gives_one_line_and_keeps_output(tmp_path, labelled_frame, name):
    content, words = _make_corpus(tmp_path, labelled_frame)[name]
    bad = tmp_path / name
    bad.write_bytes(content)
    out = tmp_path / "existing_output.xyz"
    out.write_text("precious\n")
    for cmd in (
        ["data", "inspect", str(bad)],
        ["data", "validate", str(bad), "--out", str(out)],
        ["data", "convert", str(bad), str(out)],
    ):
        r = run_cli(*cmd)
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        err = r.stderr.strip()
        assert "Traceback" not in r.stderr
        assert len(err.splitlines()) == 1, err
        assert name in err and words in err, err
        assert out.read_text() == "precious\n"


def test_out_of_range_and_too_close(tmp_path, labelled_frame):
    big = labelled_frame.copy()
    big.arrays["born_charges"][0, 0, 0] = 40.0
    close = cubic_catio3()
    close.positions[1] = close.positions[0] + [0.2, 0, 0]
    for frames, words in (
        ([labelled_frame, big], "frame 1: born_charges outside physical range"),
        ([close], "frame 0: atoms closer than"),
    ):
        p = tmp_path / "f.xyz"
        io.write(p, frames)
        r = run_cli("data", "validate", str(p), "--asr-tol", "100")
        assert r.returncode == 2 and words in r.stderr, r.stderr


def test_asr_check_and_fix(tmp_path, labelled_frame):
    shifted = labelled_frame.copy()
    shifted.arrays["born_charges"] = shifted.arrays["born_charges"] + 0.15  # residual 5 * 0.15
    p = tmp_path / "asr.xyz"
    io.write(p, [labelled_frame, shifted])
    r = run_cli("data", "validate", str(p))
    assert r.returncode == 2 and "frame 1: acoustic sum rule violated: residual 0.75" in r.stderr
    out = tmp_path / "fixed.xyz"
    r = run_cli("data", "validate", str(p), "--fix-asr", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "per-atom shift max 0.15 e" in r.stdout
    fixed = io.read(out)
    assert np.abs(fixed[1].arrays["born_charges"].sum(axis=0)).max() < 1e-6
    np.testing.assert_allclose(
        fixed[1].arrays["born_charges"], labelled_frame.arrays["born_charges"], atol=1e-7
    )


def test_missing_and_unknown_required_keys(tmp_path, labelled_frame):
    bare = labelled_frame.copy()
    del bare.arrays["born_charges"]
    p = tmp_path / "bare.xyz"
    io.write(p, [labelled_frame, bare])
    r = run_cli("data", "validate", str(p), "--require", "energy,born_charges")
    assert r.returncode == 2 and "frame 1: missing label 'born_charges'" in r.stderr
    r = run_cli("data", "validate", str(p), "--require", "becs")
    assert r.returncode == 2 and "unknown key 'becs'" in r.stderr
