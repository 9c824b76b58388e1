"""`--device cuda`: the shipped models on a GPU give the CPU's results, and `bornfield md`
runs and resumes there. Skipped without CUDA (CI has none); run on a GPU machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli

from bornfield.calculators import FieldCalculator
from bornfield.label.generators import cubic_perovskite
from bornfield.models.bec import load_model
from bornfield.models.force_field import load_calculator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
ROOT = Path(__file__).resolve().parents[2]
FF, BEC = ROOT / "models/batio3/ff", ROOT / "models/batio3/bec"


def test_field_calculator_on_cuda_equals_cpu():
    atoms = cubic_perovskite("BaTiO3").repeat((4, 4, 2))
    atoms.rattle(0.05, seed=1)
    out = {}
    for device in ("cpu", "cuda"):
        calc = FieldCalculator(
            load_calculator(FF, device=device, dtype="float64"),
            load_model(BEC, dtype=torch.float64, device=device),
            (0.0, 0.0, 0.01),
            reference=cubic_perovskite("BaTiO3").repeat((4, 4, 2)),
        )
        a = atoms.copy()
        a.calc = calc
        out[device] = [
            a.get_potential_energy(),
            a.get_forces(),
            a.get_stress(),
            calc.get_property("born_charges", a),
            calc.get_property("polarization", a),
        ]
    for cpu, gpu in zip(out["cpu"], out["cuda"], strict=True):
        # the CPU path uses the spline table of the radial MLP, CUDA the MLP: 5e-8 eV/Å apart
        np.testing.assert_allclose(gpu, cpu, atol=1e-6, rtol=1e-7)


def test_md_cli_on_cuda_runs_and_resumes(tmp_path):
    args = ["md", "--structure", "cubic:BaTiO3", "--supercell", "4x4x2", "--ff", str(FF),
            "--bec", str(BEC), "--field", "0,0,0.005", "--temperature", "300",
            "--device", "cuda", "--checkpoint-interval", "10", "--traj-interval", "10",
            "--out", str(tmp_path / "md")]  # fmt: skip
    r = run_cli(*args, "--steps", "20")
    assert r.returncode == 0, r.stderr
    r = run_cli(*args, "--steps", "40")  # continues from the checkpoint at step 20
    assert r.returncode == 0, r.stderr
    rows = (tmp_path / "md" / "observables.csv").read_text().splitlines()
    steps = [int(float(line.split(",")[0])) for line in rows[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 40
