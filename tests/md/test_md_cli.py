"""`bornfield md` end to end with real (tiny) MACE and Z* models: field MD, resume, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_cli

from bornfield.data import io
from bornfield.label.generators import cubic_perovskite


@pytest.mark.slow
def test_field_md_runs_and_resumes(tiny_ff, tiny_bec, tmp_path):
    s = tmp_path / "bto.xyz"
    io.write(s, cubic_perovskite("BaTiO3"))
    args = ["md", "--structure", str(s), "--supercell", "2x2x2", "--ff", str(tiny_ff[0]),
            "--bec", str(tiny_bec), "--field", "0,0,0.005", "--steps", "20", "--timestep", "1",
            "--log-interval", "5", "--traj-interval", "10", "--checkpoint-interval", "10",
            "--out", str(tmp_path / "run")]  # fmt: skip
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    o = np.genfromtxt(tmp_path / "run" / "observables.csv", delimiter=",", names=True)
    assert len(o) == 5 and np.isfinite(o["Pz_C_m2"]).all() and np.isfinite(o["Pz_path_C_m2"]).all()
    assert len(io.read(tmp_path / "run" / "trajectory.xyz", check=False)) == 3
    r = run_cli(*args[:-6], "--steps", "30", "--log-interval", "5", "--traj-interval", "10",
                "--checkpoint-interval", "10", "--out", str(tmp_path / "run"))  # fmt: skip
    assert r.returncode == 0 and "resuming at step 20" in r.stdout + r.stderr
    assert len(np.genfromtxt(tmp_path / "run" / "observables.csv", delimiter=",", names=True)) == 7
    r = run_cli(*args, "--no-bec-extrapolate")  # another Z* schedule: not this continuation
    assert r.returncode == 2 and "bec_extrapolate True -> False" in r.stderr
    assert len(np.genfromtxt(tmp_path / "run" / "observables.csv", delimiter=",", names=True)) == 7


@pytest.mark.slow
def test_md_bad_input(tiny_ff, tiny_bec, tmp_path):
    s = tmp_path / "bto.xyz"
    io.write(s, cubic_perovskite("BaTiO3"))
    base = [
        "md",
        "--structure",
        str(s),
        "--ff",
        str(tiny_ff[0]),
        "--steps",
        "2",
        "--out",
        str(tmp_path / "r"),
    ]
    r = run_cli(*base, "--bec", str(tiny_bec), "--field", "0,nan,0")
    assert r.returncode == 2 and "--field must be three finite numbers" in r.stderr
    r = run_cli(*base, "--field", "0,0,0.01")
    assert r.returncode == 2 and "a field needs a Born-charge model" in r.stderr
    r = run_cli(*base, "--temperature", "0")
    assert r.returncode == 2 and "needs a temperature above 0 K" in r.stderr
    io.write(s, cubic_perovskite("CaTiO3"))
    r = run_cli(*base)
    assert r.returncode == 2 and "Ca unknown to the force field" in r.stderr
    assert "Traceback" not in r.stderr
