"""`bornfield dielectric static|md` and `bornfield phases` as a user runs them."""

import json
from dataclasses import asdict

import numpy as np
import pytest
from ase.io import write
from helpers import (
    ROOT,
    TC,
    HarmonicCrystal,
    cubic_catio3,
    random_born_charges,
    run_cli,
    synthetic_heating,
)

from bornfield.calculators.field_calculator import FieldCalculator
from bornfield.md.run import MDConfig, run_md

FF, BEC = ROOT / "models/batio3/ff", ROOT / "models/batio3/bec"


@pytest.mark.slow
def test_dielectric_static_cli_with_shipped_models(tmp_path):
    r = run_cli("dielectric", "static", "--structure", "cubic:BaTiO3", "--ff", str(FF),
                "--bec", str(BEC), "--fields", "0,1e7,2e7", "--directions", "z,-z",
                "--phonons", "--out", str(tmp_path))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    st = json.loads((tmp_path / "static.json").read_text())
    ph = json.loads((tmp_path / "phonon.json").read_text())
    assert (tmp_path / "fig3_polarization.png").stat().st_size > 1000
    # the cubic 5-atom cell is a saddle (unstable polar modes): phonons list them; the z
    # response along ±z is odd in E
    assert len(ph["frequencies_THz"]) == 15 and len(ph["unstable_modes_w2"]) >= 1
    assert all(w2 < 0 for w2 in ph["unstable_modes_w2"])
    p = np.asarray(st["polarization_C_per_m2"]["z"])[:, 2]
    q = np.asarray(st["polarization_C_per_m2"]["-z"])[:, 2]
    assert p[0] == 0 and p[-1] > 0 and q[-1] < 0
    # off the saddle (rattled, cell relaxed at zero field) the ground state is stable
    r = run_cli("dielectric", "static", "--structure", "cubic:BaTiO3", "--supercell", "1x1x1",
                "--ff", str(FF), "--bec", str(BEC), "--fields", "0,1e7,2e7", "--directions",
                "z", "--rattle", "0.03", "--relax-cell-at-zero", "--phonons",
                "--out", str(tmp_path / "r"))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    st = json.loads((tmp_path / "r" / "static.json").read_text())
    assert st["relax_cell_at_zero"] and not st["relax_cell"]
    assert json.loads((tmp_path / "r" / "phonon.json").read_text())["unstable_modes_w2"] == []


def test_dielectric_md_cli(tmp_path):
    atoms = cubic_catio3().repeat((2, 1, 1))
    calc = HarmonicCrystal(atoms)
    z = np.tile(random_born_charges(5, seed=2), (2, 1, 1))
    cfg = MDConfig(temperature=100, steps=400, log_interval=2, traj_interval=10**6)
    for name, f in [("E0", (0, 0, 0)), ("Ex", (0.02, 0, 0))]:
        run_md(atoms, FieldCalculator(calc, z, field=f), cfg, tmp_path / name, log=lambda s: None)
    out = tmp_path / "eps.json"
    r = run_cli("dielectric", "md", "--zero", str(tmp_path / "E0"), str(tmp_path / "Ex"),
                "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["finite_field"]["runs"]["x"][0]["paired"] is True
    assert np.isfinite(res["finite_field"]["epsilon_ionic"][0][0])
    r = run_cli("dielectric", "md", "--zero", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "no observables" in r.stderr
    # a field run measured from another structure cannot be paired with the zero-field one
    moved = atoms.copy()
    moved.positions[0, 0] += 0.05
    short = MDConfig(temperature=100, steps=20, log_interval=2, traj_interval=10**6)
    fc = FieldCalculator(calc, z, field=(0.02, 0, 0))
    run_md(moved, fc, short, tmp_path / "Ex_moved", log=lambda s: None)
    r = run_cli("dielectric", "md", "--zero", str(tmp_path / "E0"), str(tmp_path / "Ex_moved"))
    assert r.returncode == 2 and "another reference structure" in r.stderr


def test_phases_cli_on_a_planted_transition(tmp_path):
    frames, temps = synthetic_heating(40)
    md = MDConfig(ramp=(300.0, 1800.0, 1.0), steps=10**6, traj_interval=int(1500e3 / 39 / 2))
    # frame i sits at step i·traj_interval, i.e. T = 300 + i·1500/39 K, as synthetic_heating
    assert abs(md.target(39 * md.traj_interval) - temps[-1]) < 2
    run = tmp_path / "run"
    run.mkdir()
    # as `run_md` writes it for a field calculator: the MD settings and the calculator's keys
    calc_keys = {"field_V_per_A": [0.0, 0.0, 0.0], "reference_sha256": "0" * 16,
                 "bec_interval": 10, "bec_extrapolate": False}  # fmt: skip
    (run / "config.json").write_text(json.dumps(asdict(md) | calc_keys))
    write(run / "trajectory.xyz", frames, format="extxyz")
    # 4 frames of 38.5 ps per window
    r = run_cli("phases", "--run", str(run), "--window-ps", "154", "--out", str(tmp_path / "ph"))
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "ph" / "phases.json").read_text())
    assert abs(res["transition"]["Tc_K"] - TC) < 100
    assert (tmp_path / "ph" / "fig4_phases.png").exists()
    assert "Pnma (62)" in r.stdout and "Tc = " in r.stdout
