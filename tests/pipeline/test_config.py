"""The typed pipeline configuration: presets, TOML overrides, and errors that name the problem."""

import pytest
from helpers import run_cli

from bornfield.config import load_config
from bornfield.errors import BornfieldError


def test_defaults_and_overrides(tmp_path):
    cfg = load_config()
    assert cfg.system.structure == "pnma" and cfg.dielectric.field_V_per_m == (5e7,)
    assert cfg.models.ff == "models/catio3/ff" and cfg.phases.order_parameter == "tilt"
    bto = load_config(None, "batio3")
    assert bto.system.structure == "cubic:BaTiO3" and bto.models.bec == "models/batio3/bec"
    assert bto.phases.order_parameter == "polar" and bto.report.softmode_ff == ""
    f = tmp_path / "c.toml"
    f.write_text('out = "x"\n[dielectric]\ntemperatures = [200, 400]\nsteps = 10\n'
                 '[system]\nsupercell = [1, 1, 2]\n')  # fmt: skip
    cfg = load_config(f)
    assert cfg.dielectric.temperatures == (200.0, 400.0) and cfg.dielectric.steps == 10
    assert cfg.system.supercell == (1, 1, 2) and cfg.base_dir == str(tmp_path)
    paper = load_config(None, "paper")
    assert paper.system.structure == "pnma" and paper.phases.rate_K_per_ps == 1.0
    assert paper.system.supercell == (4, 2, 4) and paper.models.ff == "models/catio3/ff"
    assert paper.phases.steps == 750000  # 1500 K at 1 K/ps with 2 fs steps


@pytest.mark.parametrize(
    "text, match",
    [
        ("[dielectric]\nstep = 5\n", r"\[dielectric\]: unknown key\(s\) step"),
        ("[dynamics]\nsteps = 5\n", "unknown config section 'dynamics'"),
        ("[dielectric]\nsteps = 'many'\n", "steps: expected int"),
        ("[dielectric\n", "invalid TOML"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(BornfieldError, match=match):
        load_config(f)
    r = run_cli("run", str(f))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and str(f) in r.stderr


def test_paper_preset_prints_its_cost_first():
    r = run_cli("run", "--preset", "paper", "--estimate")
    assert r.returncode == 0, r.stderr
    assert "640 atoms" in r.stdout and " h on 2 workers" in r.stdout


def test_default_fig2a_frames_are_the_held_out_dft_frames():
    from pathlib import Path

    from bornfield.data import io
    from bornfield.data.splits import held_out_ids

    ROOT = Path(__file__).resolve().parents[2]

    cfg = load_config()
    frames = io.read(cfg.path(cfg.report.parity_data))
    # data/catio3/CARD.md: the 20-atom validation split no model sees
    held_out = held_out_ids(ROOT / "data/catio3/splits.json")[
        ROOT / "data/catio3/catio3_20atom_md.xyz"
    ]
    assert {int(frames[i].info["label_id"]) for i in cfg.report.parity_indices} == set(held_out)


def test_md_tasks_carry_the_z_schedule(tmp_path):
    """``[dielectric] bec_extrapolate`` (default on, with k = 15) reaches each field task and
    renames its run folder (no resume of a held-Z* checkpoint); the heating run and, with it
    off, every folder keep their names."""
    from dataclasses import replace

    from bornfield.label.generators import cubic_perovskite
    from bornfield.pipeline import md_tasks

    ff, bec = tmp_path / "ff.model", tmp_path / "bec.pt"
    ff.write_bytes(b"ff")
    bec.write_bytes(b"bec")
    cfg = load_config()
    assert (cfg.dielectric.bec_interval, cfg.dielectric.bec_extrapolate) == (15, True)
    start = cubic_perovskite()
    off = replace(cfg, dielectric=replace(cfg.dielectric, bec_extrapolate=False))
    held = md_tasks(off, start, ff, bec, tmp_path)
    extrapolated = md_tasks(cfg, start, ff, bec, tmp_path)
    assert [t.name for t in held] == [t.name for t in extrapolated]
    for a, b in zip(held, extrapolated, strict=True):
        assert not a.bec_extrapolate
        assert b.bec_extrapolate == (b.name != "heating")
        assert (a.out == b.out) == (b.name == "heating")


def test_phase_windows_are_times():
    """``[phases] window_ps`` and ``order_window_ps`` become frames of the heating run's
    trajectory: 1 ps in the default (2 fs, a frame every 20 steps: 25 frames) and 10 ps in
    the paper preset (a frame every 500 steps: 10 frames)."""
    from bornfield.md.run import MDConfig
    from bornfield.pipeline import frames_in

    cfg, paper = load_config(), load_config(None, "paper")
    md = MDConfig(timestep=cfg.phases.timestep, traj_interval=cfg.phases.traj_interval)
    assert frames_in(cfg.phases.window_ps, md) == 25
    assert frames_in(cfg.phases.order_window_ps, md) == 25
    md = MDConfig(timestep=paper.phases.timestep, traj_interval=paper.phases.traj_interval)
    assert frames_in(paper.phases.window_ps, md) == 10
    assert frames_in(0.0, md) == 1  # at least one frame
    with pytest.raises(BornfieldError, match="order window must be >= 0 ps"):
        frames_in(float("nan"), md, "order window")
