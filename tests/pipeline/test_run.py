"""`bornfield run` end to end on its default, the shipped CaTiO3 models, here on the 20-atom Pnma
cell (short runs, real Dask), then a rerun that skips finished stages and `bornfield report` that
redraws everything."""

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from helpers import ROOT, run_cli

from bornfield.report.html import FIGURES

pytestmark = pytest.mark.slow  # one `bornfield run`, 2-3 min


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    if not (ROOT / "models/catio3/ff").exists():
        pytest.skip("shipped CaTiO3 force field missing")
    d = tmp_path_factory.mktemp("run")
    (d / "c.toml").write_text("""
out = "out"
[system]
supercell = [1, 1, 1]
[static]
fields_V_per_m = [0, 2.5e6, 5e6, 2e7]
directions = ["x", "-x"]
[dielectric]
temperatures = [300]
directions = ["z", "-z"]
field_V_per_m = [5e7, 1e8]
steps = 60
npt_steps = 40
npt_average_ps = 0.04
[phases]
t_end = 1000
rate_K_per_ps = 5000
traj_interval = 3
window_ps = 0.018
[report]
baselines = []
[models]
compile = false
""")  # compile (the default) doubles this test's 90 s; covered by test_mace_calculator and
    # test_sweep_worker_loss's compiled sweep task
    r = run_cli("run", str(d / "c.toml"))
    assert r.returncode == 0, r.stderr[-3000:]
    return d, r


def test_report_has_every_figure(pipeline_run):
    d, r = pipeline_run
    out = d / "out"
    missing = [f for f in FIGURES if not (out / f).exists()]
    assert not missing, [(out / f"{m}.error.txt").read_text()[-500:] for m in missing]
    html = (out / "report.html").read_text()
    assert html.count("<img ") == len(FIGURES)
    res = json.loads((out / "results.json").read_text())
    assert set(res) >= {"static", "phonon", "dielectric", "phases", "md_runs", "models", "eps_inf"}
    assert res["system"] == {"formula": "Ca4O12Ti4", "atoms": 20}
    # ε∞ from the Born-charge model's head (DFT ≈ 6.1), added to both zero-temperature routes
    eps_inf = np.diag(res["eps_inf"]["tensor"])
    assert np.all((eps_inf > 5) & (eps_inf < 7)) and "ε∞ head" in res["eps_inf"]["source"]
    # the static slope, its cubic term extrapolated away, equals the Γ mode sum (0 K, same model)
    st, ph = np.asarray(res["static"]["epsilon_ionic"]), np.asarray(res["phonon"]["epsilon_ionic"])
    assert st[0, 0] == pytest.approx(ph[0, 0], rel=0.05)
    assert np.allclose(np.diag(res["phonon"]["epsilon"]), np.diag(ph) + eps_inf)
    figs = json.loads((out / "figures.json").read_text())
    # Fig 2a: the held-out tilted DFT frames; Fig 2b: BaTiO3's DFT soft mode under its own model
    assert figs["fig2a"]["bornfield MACE"]["n_frames"] == 2
    assert figs["fig2b"]["model"].endswith("models/batio3/ff") and "mae_vs_dft_meV" in figs["fig2b"]
    assert "tilt" in res["phases"]["order_parameter"]
    eps = res["dielectric"]["300"]
    assert "finite_field" in eps and "fluctuation" in eps
    # ±z at two strengths: four runs for the linearity check of the z column
    fields = sorted(r["field_V_per_m"] for r in eps["finite_field"]["runs"]["z"])
    assert fields == pytest.approx([-1e8, -5e7, 5e7, 1e8])
    # 60 steps cannot average P: the verdict says so in the log, results.json and the report
    assert eps["assessment"]["converged"] is False and eps["assessment"]["reasons"]
    assert "300 K: ε_ion diagonal" in r.stdout and "NOT converged" in r.stdout
    assert "<th>converged</th>" in html and "run longer" in html
    assert len(res["phases"]["frame_T_K"]) == len(res["phases"]["frame_pseudocubic_A"]) > 3
    # the 300 K runs start in the mean cell of the last two frames (40 fs) of a zero-field NpT
    # run from the relaxed cell, with the relaxed fractional coordinates
    cell = eps["cell"]
    npt = read(Path(cell["npt_run"]) / "trajectory.xyz", index=":")
    mean_cell = np.mean([f.cell[:] for f in npt[-2:]], axis=0)
    relaxed = read(out / "static" / "relaxed.xyz")
    assert cell["cell"] == "thermal" and np.linalg.det(mean_cell) != relaxed.get_volume()
    assert cell["volume_A3"] == pytest.approx(np.linalg.det(mean_cell), rel=1e-9)
    zero = next(m for m in res["md_runs"] if m["name"] == "T300_E0")
    first = read(Path(zero["out"]) / "trajectory.xyz", index=0)
    assert np.allclose(first.cell[:], mean_cell, atol=1e-6)
    assert np.allclose(first.get_scaled_positions(), relaxed.get_scaled_positions(), atol=1e-6)
    assert [m["name"] for m in res["md_runs"]][:2] == ["T300_npt", "heating"]
    assert "<th>cell (Å³)</th>" in html
    # the heating run needs no thermal cell: it runs beside the NpT run, not after the field runs
    assert "1 NpT runs of 40 steps, beside the heating run" in r.stdout
    sweeps = r.stdout.split("MD sweep:")
    assert "heating:" in sweeps[0] and "heating:" not in sweeps[1]
    assert all("error" not in m for m in res["md_runs"])


def test_rerun_skips_finished_stages_and_report_redraws(pipeline_run):
    d, _ = pipeline_run
    r = run_cli("run", str(d / "c.toml"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "static: up to date" in r.stdout
    res = json.loads((d / "out" / "results.json").read_text())
    assert all(m.get("steps_this_call") == 0 for m in res["md_runs"]), res["md_runs"]  # resumed
    (d / "out" / "fig3_polarization.png").unlink()
    r = run_cli("report", str(d / "out"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (d / "out" / "fig3_polarization.png").exists()
    r = run_cli("report", str(d / "nowhere"))
    assert r.returncode == 2 and "no results.json" in r.stderr
