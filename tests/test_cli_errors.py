"""A user's mistakes on the command line: one line naming the file or option and the problem,
exit status 2, no traceback (in-process `bornfield.cli.main`, so each costs milliseconds)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import ROOT, Springs, cubic_catio3, random_born_charges

from bornfield.calculators.field_calculator import FieldCalculator
from bornfield.cli import EXIT_USER_ERROR, main
from bornfield.md.run import MDConfig, run_md

EXAMPLE = str(ROOT / "data/examples/CaTiO3_cubic_dfpt.xyz")


def _fails(capsys, argv: list[str], words: str) -> None:
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("bornfield: error:") and "\n" not in err, err
    assert words in err, err


def test_option_mistakes(tmp_path, capsys):
    out = str(tmp_path / "out")
    md = ["md", "--structure", "cubic:CaTiO3", "--ff", str(tmp_path / "none"), "--out", out]
    cases = [
        (["data", "validate", EXAMPLE, "--fix-asr"], "--fix-asr needs --out FILE"),
        (["structures", "pnma", "--out", out, "--md", "chgnet"], "--md needs -n"),
        ([*md, "--ramp", "300:900"], "--ramp must be T0:T1:K_per_ps, got '300:900'"),
        ([*md, "--supercell", "2xbx2"], "--supercell must look like 2x2x2, got '2xbx2'"),
        ([*md, "--field", "0,0,nan"], "--field must be three finite numbers"),
        (["phases", "--run", str(tmp_path), "--out", out], f"{tmp_path}: no trajectory.xyz"),
    ]
    for argv, words in cases:
        _fails(capsys, argv, words)


def test_file_mistakes(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "a_file").write_text("")
    cases = [
        (["data", "inspect", str(tmp_path / "missing.xyz")], "missing.xyz: no such file"),
        (["data", "inspect", str(tmp_path / "notes.txt")], "notes.txt: unknown format"),
        # an OSError (here: a file where a folder should be) is one line too
        (["data", "convert", EXAMPLE, str(tmp_path / "a_file" / "out.xyz")], "a_file"),
    ]
    for argv, words in cases:
        _fails(capsys, argv, words)


def test_dielectric_md_run_mistakes(tmp_path, capsys):
    atoms = cubic_catio3()
    cfg = MDConfig(temperature=100, steps=20, log_interval=1, traj_interval=10**6)
    calc = FieldCalculator(Springs(atoms), random_born_charges(5, seed=1), field=(0, 0, 0))
    run_md(atoms, calc, cfg, tmp_path / "E0", log=lambda m: None)
    shutil.copytree(tmp_path / "E0", tmp_path / "nofield")
    meta = json.loads((tmp_path / "nofield" / "config.json").read_text())
    del meta["field_V_per_A"]
    (tmp_path / "nofield" / "config.json").write_text(json.dumps(meta))
    (tmp_path / "empty").mkdir()
    zero = ["dielectric", "md", "--zero", str(tmp_path / "E0")]
    _fails(capsys, [*zero, str(tmp_path / "nofield")], "run has no field recorded")
    _fails(capsys, ["dielectric", "md", "--zero", str(tmp_path / "empty")], "no observables")
    assert np.isfinite(
        json.loads((tmp_path / "E0" / "config.json").read_text())["field_V_per_A"]
    ).all()


@pytest.mark.parametrize("argv", [["md", "--structure", "cubic:CaTiO3"], ["data", "frobnicate"]])
def test_argparse_mistakes_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == EXIT_USER_ERROR
