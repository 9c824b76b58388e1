"""`bornfield run` end to end on the shipped BaTiO3 models (tiny cell, short runs, real Dask),
then a rerun that skips finished stages and `bornfield report` that redraws everything."""

import json

import pytest
from helpers import BATIO3, ROOT, run_cli

from bornfield.report.html import FIGURES


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    if not (ROOT / "models/batio3/ff").exists():
        pytest.skip("shipped BaTiO3 force field missing")
    d = tmp_path_factory.mktemp("run")
    parity = ""
    if BATIO3.is_file():
        from bornfield.data import io

        io.write(d / "parity.xyz", io.read(BATIO3)[-2:])
        parity = "parity.xyz"
    (d / "c.toml").write_text(f"""
out = "out"
[system]
supercell = [1, 1, 1]
[static]
fields_V_per_m = [0, 2e7, 4e7]
directions = ["x", "-x"]
[dielectric]
temperatures = [300]
directions = ["z"]
steps = 60
[phases]
t_start = 100
t_end = 400
rate_K_per_ps = 2500
traj_interval = 3
window = 3
[report]
parity_data = "{parity}"
parity_indices = []
baselines = []
""")
    r = run_cli("run", str(d / "c.toml"))
    assert r.returncode == 0, r.stderr[-3000:]
    return d, r


def test_report_has_every_figure(pipeline_run):
    d, r = pipeline_run
    out = d / "out"
    missing = [f for f in FIGURES if not (out / f).exists()]
    if not BATIO3.is_file():
        missing.remove("fig2a_force_parity.png")
    assert not missing, [(out / f"{m}.error.txt").read_text()[-500:] for m in missing]
    html = (out / "report.html").read_text()
    assert html.count("<img ") == len(FIGURES) - (not BATIO3.is_file())
    res = json.loads((out / "results.json").read_text())
    assert set(res) >= {"static", "phonon", "dielectric", "phases", "md_runs", "models"}
    eps = res["dielectric"]["300"]
    assert "finite_field" in eps and "fluctuation" in eps
    # 60 steps cannot average P: the verdict says so in the log, results.json and the report
    assert eps["assessment"]["converged"] is False and eps["assessment"]["reasons"]
    assert "300 K: ε_ion diagonal" in r.stdout and "NOT converged" in r.stdout
    assert "<th>converged</th>" in html and "run longer" in html
    assert len(res["phases"]["frame_T_K"]) == len(res["phases"]["frame_pseudocubic_A"]) > 3
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
