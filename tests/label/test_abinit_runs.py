"""Real ABINIT runs (test preset): cubic CaTiO3 Z*, forces vs energy, resume, failures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from helpers import run_cli

from bornfield.data import io
from bornfield.data.importers import read_abinit_output
from bornfield.label import abinit, label_structures, preset, run_abinit
from bornfield.label.abinit import (
    CHECKPOINT,
    CHECKPOINT_RECORD,
    DONE,
    LabelError,
    LabelStopped,
    _scf_steps,
    request_stop,
    write_input,
)
from bornfield.label.generators import cubic_perovskite, perturbed
from bornfield.units import EV_PER_A3_TO_GPA

pytestmark = pytest.mark.abinit

#: Zhong, King-Smith & Vanderbilt, PRL 72, 3618 (1994): cubic CaTiO3
LITERATURE = {"Ca": 2.58, "Ti": 7.08, "O_par": -5.65, "O_perp": -2.00}


def test_cubic_catio3_born_charges(tmp_path):
    atoms = run_abinit(cubic_perovskite("CaTiO3"), preset("test"), tmp_path / "run")
    z = atoms.arrays["born_charges"]
    assert np.abs(z.sum(axis=0)).max() < 0.5  # raw DFPT ASR residual of a coarse setting
    z = z - z.mean(axis=0)
    # O at (1/2, 1/2, 0) sits between Ti along z
    got = {"Ca": z[0, 0, 0], "Ti": z[1, 0, 0], "O_par": z[2, 2, 2], "O_perp": z[2, 0, 0]}
    for name, ref in LITERATURE.items():
        assert got[name] == pytest.approx(ref, abs=0.3), (name, got[name])
    offdiag = z - np.einsum("kaa,ab->kab", z, np.eye(3))
    assert np.abs(offdiag).max() < 1e-6  # cubic symmetry
    assert 4.5 < atoms.info["epsilon_inf"][0, 0] < 7.5
    prov = json.loads(atoms.info["provenance"])
    assert prov["kmesh"] == [4, 4, 4] and "9.6" in prov["code_version"]
    assert prov["pseudopotential_note"].startswith("Ca PBE, Ti LDA, O PBE: generated with")


def test_forces_are_minus_energy_gradient(tmp_path):
    """Central difference of the DFT energy along one Cartesian coordinate vs the DFT force."""
    settings = preset("test", bec=False, kpt_length=6.0, tolvrs_scf=1e-12)
    (atoms,) = perturbed(cubic_perovskite(), 1, rattle=0.06, strain=0.0, seed=3)
    h, k, c = 0.01, 1, 2  # displace Ti along z
    f0 = run_abinit(atoms, settings, tmp_path / "0").arrays["forces"][k, c]
    energies = []
    for sign in (+1, -1):
        a = atoms.copy()
        a.positions[k, c] += sign * h
        energies.append(run_abinit(a, settings, tmp_path / f"{sign}").info["energy"])
    fd = -(energies[0] - energies[1]) / (2 * h)
    assert abs(f0) > 0.05
    assert fd == pytest.approx(f0, abs=5e-3)


def test_scf_stopped_on_forces_matches_the_tight_density(tmp_path):
    """toldff (force changes < 1e-5 Ha/Bohr twice) vs tolvrs 1e-12: same labels, fewer steps."""
    tight = preset("test", bec=False, kpt_length=6.0, tolvrs_scf=1e-12)
    (atoms,) = perturbed(cubic_perovskite(), 1, rattle=0.06, strain=0.01, seed=3)
    ref = run_abinit(atoms, tight, tmp_path / "tolvrs")
    fast = run_abinit(atoms, replace(tight, toldff_scf=1e-5), tmp_path / "toldff")
    steps = [_scf_steps((tmp_path / d / "gs/run.abo").read_text()) for d in ("tolvrs", "toldff")]
    assert steps[1] < steps[0]
    assert np.abs(fast.arrays["forces"] - ref.arrays["forces"]).max() < 2e-3  # eV/Å
    assert np.abs(fast.info["stress"] - ref.info["stress"]).max() * EV_PER_A3_TO_GPA < 0.01
    assert abs(fast.info["energy"] - ref.info["energy"]) < 1e-4  # eV


def test_interrupted_scf_resumes_from_its_checkpoint(tmp_path):
    """A kill mid-SCF loses at most one checkpoint interval; the result is the uninterrupted one."""
    settings = preset("test", bec=False, kpt_length=6.0, tolvrs_scf=1e-12)
    (atoms,) = perturbed(cubic_perovskite(), 1, rattle=0.06, strain=0.0, seed=3)
    ref = run_abinit(atoms, settings, tmp_path / "ref", nprocs=1)
    t_ref = json.loads(ref.info["provenance"])["wall_time_s"]
    every = t_ref / 4
    with pytest.raises(LabelError, match="exceeded"):  # a kill after at least one checkpoint
        run_abinit(atoms, settings, tmp_path / "run", 1, timeout=0.7 * t_ref, checkpoint_s=every,
                   checkpoint_steps=1)  # fmt: skip
    assert (tmp_path / "run" / "gs" / CHECKPOINT).exists()
    assert (tmp_path / "run" / "input.abi").read_text().startswith("# bornfield")
    got = run_abinit(atoms, settings, tmp_path / "run", nprocs=1)
    assert json.loads(got.info["provenance"])["resumed_from_checkpoint"]
    assert not (tmp_path / "run" / "gs" / CHECKPOINT).exists()
    np.testing.assert_allclose(got.arrays["forces"], ref.arrays["forces"], atol=1e-4)
    assert got.info["energy"] == pytest.approx(ref.info["energy"], abs=1e-5)


def test_checkpoints_wait_for_scf_steps(tmp_path):
    """A checkpoint restarts the density mixer, so one comes only after ``checkpoint_steps``
    SCF steps of the run, however short ``checkpoint_s``."""
    settings = preset("test", bec=False, kpt_length=6.0, tolvrs_scf=1e-12)
    (atoms,) = perturbed(cubic_perovskite(), 1, rattle=0.06, strain=0.0, seed=3)
    got = run_abinit(atoms, settings, tmp_path / "run", 1, checkpoint_s=0.0, checkpoint_steps=6)
    steps = json.loads((tmp_path / "run" / "gs" / DONE).read_text())["scf_steps"]
    restarts = json.loads(got.info["provenance"])["scf_restarts"]
    assert restarts >= 1 and steps >= 6 * restarts, (steps, restarts)


def test_checkpoints_wait_for_an_scf_about_to_converge(tmp_path):
    """A restart costs the density mixer's history, so a periodic checkpoint waits (and says
    so in the provenance) while an SCF that stops on forces is about to: its last force change
    within 10× toldff. Checkpoints due every 2 steps; the labels are the uninterrupted ones."""
    settings = preset("test", bec=False, kpt_length=6.0, toldff_scf=1e-5)
    (atoms,) = perturbed(cubic_perovskite(), 1, rattle=0.06, strain=0.0, seed=3)
    ref = run_abinit(atoms, settings, tmp_path / "ref", 1)
    got = run_abinit(atoms, settings, tmp_path / "run", 1, checkpoint_s=0.0, checkpoint_steps=2)
    prov = json.loads(got.info["provenance"])
    assert prov["scf_restarts"] >= 1 and prov["scf_checkpoints_postponed"] >= 1
    last = (tmp_path / "run" / "gs" / "run.abo").read_text()
    assert _scf_steps(last) > 2  # the last run went on past its checkpoint to convergence
    np.testing.assert_allclose(got.arrays["forces"], ref.arrays["forces"], atol=2e-3)


def test_cli_checkpoint_interval(tmp_path):
    """`--checkpoint-min 0`: a checkpoint as soon as the run has done 8 SCF steps."""
    structures = tmp_path / "s.xyz"
    io.write(structures, perturbed(cubic_perovskite(), 1, rattle=0.05, seed=2))
    out = tmp_path / "l.xyz"
    r = run_cli("label", str(structures), "--out", str(out), "--preset", "test", "--no-bec",
                "--np", "1", "--kpt-length", "6", "--checkpoint-min", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (frame,) = io.read(out)
    assert json.loads(frame.info["provenance"])["scf_restarts"] >= 1


def test_sigterm_checkpoints_the_scf_and_the_rerun_continues(tmp_path):
    """SIGTERM to `bornfield label` (a batch system's warning): the SCF in flight writes its
    checkpoint at the end of its step, the command stops with a one-line message, and the same
    command continues from the checkpoint. Before 8 SCF steps a stop writes no checkpoint (the
    wavefunctions of the first steps restart an SCF worse than atomic densities). Z* and ε∞ the
    input carries (a labelled set labelled again) do not pass into a --no-bec label."""
    structures = tmp_path / "s.xyz"
    (start,) = perturbed(cubic_perovskite(), 1, rattle=0.05, seed=2)
    start.arrays["born_charges"] = np.zeros((len(start), 3, 3))
    start.info["epsilon_inf"] = np.eye(3)
    io.write(structures, [start])
    out = tmp_path / "l.xyz"
    args = ["label", str(structures), "--out", str(out), "--preset", "test", "--no-bec",
            "--np", "1", "--kpt-length", "6"]  # fmt: skip
    abo = tmp_path / "l.xyz.job" / "s00000" / "gs" / "run.abo"

    def stop_at(step: int) -> None:
        cmd = [sys.executable, "-m", "bornfield.cli", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        while not (abo.exists() and f"ETOT{step:3d}" in abo.read_text(errors="replace")):
            assert proc.poll() is None and time.monotonic() - t0 < 300
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2 and "stopped on request" in err, err
        assert "Traceback" not in err and not out.exists(), err

    stop_at(2)
    assert not (abo.parent / CHECKPOINT).exists()
    stop_at(8)
    assert (abo.parent / CHECKPOINT).exists()
    before = json.loads((abo.parent / CHECKPOINT_RECORD).read_text())
    assert before["scf_steps"] >= 8 and before["restarts"] == 1
    assert before["cpu_s"] > 0 and before["wall_s"] > 0
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    (frame,) = io.read(out)
    prov = json.loads(frame.info["provenance"])
    assert prov["resumed_from_checkpoint"] and prov["scf_restarts"] == 1
    # the frame's cost includes the run before the stop: steps, wall and CPU time
    done = json.loads((abo.parent / DONE).read_text())
    assert done["scf_steps"] == before["scf_steps"] + _scf_steps(abo.read_text())
    assert prov["stage_wall_s"]["gs"] > before["wall_s"]
    assert prov["stage_cpu_s"]["gs"] > before["cpu_s"]
    assert not (abo.parent / CHECKPOINT_RECORD).exists()
    assert "born_charges" not in frame.arrays and "epsilon_inf" not in frame.info
    assert not (tmp_path / "l.xyz.job" / "failed.json").exists()


@pytest.fixture(autouse=True)
def _no_stop_left():
    """A stop request of one test does not reach the next."""
    yield
    abinit._STOP.clear()


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A strained, rattled (symmetry-free) cubic CaTiO3 labelled with Z* in stages, uninterrupted:
    its settings, structure, job directory (which a test may change: use the labels) and
    labels."""
    settings = preset("test", kpt_length=6.0, ecut=12.0)
    (atoms,) = perturbed(cubic_perovskite(), 1, rattle=0.06, strain=0.01, seed=3)
    workdir = tmp_path_factory.mktemp("staged")
    return settings, atoms, workdir, run_abinit(atoms, settings, workdir, nprocs=1)


def test_stages_equal_one_run_and_a_kill_repeats_one_perturbation(tmp_path, staged):
    """Ground state, ddk and field response per direction as separate runs give the Z* and ε∞
    that ABINIT prints for the single multi-dataset run; a stage in flight is all that reruns."""
    settings, atoms, workdir, got = staged
    one = tmp_path / "one"
    one.mkdir()
    (one / "run.abi").write_text(write_input(atoms, settings))
    subprocess.run(["abinit", "run.abi"], cwd=one, check=True, capture_output=True)
    ref = read_abinit_output(one / "run.abo")
    np.testing.assert_allclose(got.arrays["born_charges"], ref.arrays["born_charges"], atol=1e-6)
    np.testing.assert_allclose(got.info["epsilon_inf"], ref.info["epsilon_inf"], atol=1e-5)
    np.testing.assert_allclose(got.arrays["forces"], ref.arrays["forces"], atol=1e-8)
    assert got.info["energy"] == pytest.approx(ref.info["energy"], abs=1e-8)
    stages = ["gs", "ddk1", "ddk2", "ddk3", "efield1", "efield2", "efield3"]
    prov = json.loads(got.info["provenance"])
    assert list(prov["stage_wall_s"]) == stages and list(prov["stage_cpu_s"]) == stages
    assert prov["cpu_time_s"] == pytest.approx(sum(prov["stage_cpu_s"].values()), abs=0.5)
    assert 0 < prov["cpu_time_s"] < 1.5 * prov["wall_time_s"]  # one rank: CPU ≤ wall
    done = {s: (workdir / s / DONE).stat().st_mtime_ns for s in stages}
    # killed during the field response along y: its record half-written, the next stage's
    # directory not made yet (its inputs are found all the same)
    (workdir / "efield2" / DONE).write_text('{"wall_s": 1')
    shutil.rmtree(workdir / "efield3")
    again = run_abinit(atoms, settings, workdir, nprocs=1)
    redone = [s for s in stages if (workdir / s / DONE).stat().st_mtime_ns != done[s]]
    assert redone == ["efield2", "efield3"]
    np.testing.assert_allclose(again.arrays["born_charges"], got.arrays["born_charges"], atol=1e-8)
    other = preset("test", kpt_length=6.0, ecut=13.0)  # other settings: nothing is reused
    run_abinit(atoms, replace(other, bec=False), workdir, nprocs=1)
    assert not (workdir / "ddk1").exists()


def test_stopped_dfpt_stage_resumes_from_its_first_order_wavefunctions(
    tmp_path, staged, monkeypatch
):
    """A stop request during a DFPT stage (the scans' field responses take about an hour each):
    in its first steps the run is killed, later it writes its first-order wavefunctions at the
    end of its step, and the rerun goes on from them to the uninterrupted Z* and ε∞, its
    record holding both runs."""
    settings, atoms, _, ref = staged
    run = tmp_path / "run"

    def stop_at(stage: str, step: int) -> None:
        """Run until ``stage`` has done ``step`` steps, then ask for a stop."""
        abo = run / stage / "run.abo"

        def watch() -> None:
            t0 = time.monotonic()
            while not (abo.exists() and _scf_steps(abo.read_text(errors="replace")) >= step):
                if time.monotonic() - t0 > 300:
                    return
                time.sleep(0.02)
            request_stop()

        threading.Thread(target=watch, daemon=True).start()
        with pytest.raises(LabelStopped):
            run_abinit(atoms, settings, run, nprocs=1)

    monkeypatch.setattr(abinit, "DFPT_CHECKPOINT_STEPS", 10**6)
    stop_at("ddk1", 1)  # too early to be worth a checkpoint: killed
    monkeypatch.setattr(abinit, "DFPT_CHECKPOINT_STEPS", 1)  # stop well before convergence
    assert not any((run / "ddk1").glob("in_1WF*")) and not (run / "ddk1" / DONE).exists()
    stop_at("efield1", 3)
    pert = 3 * len(atoms) + 4  # the field along x
    assert (run / "efield1" / f"in_1WF{pert}").exists()
    assert all((run / f"ddk{j}" / DONE).exists() for j in (1, 2, 3))
    before = json.loads((run / "efield1" / CHECKPOINT_RECORD).read_text())
    assert before["scf_steps"] >= 3 and before["restarts"] == 1
    got = run_abinit(atoms, settings, run, nprocs=1)
    np.testing.assert_allclose(got.arrays["born_charges"], ref.arrays["born_charges"], atol=2e-3)
    np.testing.assert_allclose(got.info["epsilon_inf"], ref.info["epsilon_inf"], atol=2e-3)
    prov = json.loads(got.info["provenance"])
    assert prov["resumed_from_checkpoint"] and prov["stage_restarts"]["efield1"] == 1
    assert prov["stage_wall_s"]["efield1"] > before["wall_s"]
    assert "ird1wf 1" in (run / "efield1" / "run.abi").read_text()
    # it went on from the checkpoint: its first energy is near the converged one (a start
    # from scratch is 4-5 Ha away in this cell)
    rows = [r.split() for r in (run / "efield1" / "run.abo").read_text().splitlines()
            if r[1:5] == "ETOT"]  # fmt: skip
    assert abs(float(rows[0][2]) - float(rows[-1][2])) < 1.0
    assert not (run / "efield1" / f"in_1WF{pert}").exists()


def test_resume_after_interruption_and_failure_is_recorded(tmp_path):
    settings = preset("test", bec=False, kpt_length=6.0)
    structures = perturbed(cubic_perovskite(), 3, rattle=0.03, seed=0)
    out = tmp_path / "labelled.xyz"

    class Killed(Exception):
        pass

    def kill_after_first(msg: str) -> None:
        if msg.startswith("[1/"):
            raise Killed

    with pytest.raises(Killed):
        label_structures(structures, out, settings, log=kill_after_first)
    assert [a.info["label_id"] for a in io.read(out)] == [0]
    (tmp_path / "labelled.xyz.job" / "s00001").mkdir()  # debris of a run in flight
    report = label_structures(structures, out, settings, log=lambda m: None, max_structures=1)
    assert report.skipped == [0] and report.done == [1] and not report.failed  # --max 1
    with pytest.raises(Exception, match=r"ids \[3\] out of range: 3 structures"):
        label_structures(structures, out, settings, log=lambda m: None, ids=[2, 3])
    report = label_structures(structures, out, settings, log=lambda m: None, ids=[2, 0])
    assert report.skipped == [0, 1] and report.done == [2] and not report.failed  # --ids 2,0
    frames = io.read(out)
    assert [a.info["label_id"] for a in frames] == [0, 1, 2]
    np.testing.assert_allclose(frames[2].positions, structures[2].positions, atol=1e-7)
    # a different structure list must not reuse this job directory
    with pytest.raises(Exception, match="job directory belongs to other structures"):
        label_structures(structures[:2], out, settings, log=lambda m: None)


def test_two_workers_share_a_job_and_dead_claims_are_taken_over(tmp_path):
    """Two `bornfield label` processes on one job label each structure once; a claim left by a
    dead process is taken over, one held by a live process is respected."""
    structures = tmp_path / "s.xyz"
    io.write(structures, perturbed(cubic_perovskite(), 4, rattle=0.04, seed=5))
    out = tmp_path / "l.xyz"
    args = [sys.executable, "-m", "bornfield.cli", "label", str(structures), "--out", str(out),
            "--preset", "test", "--no-bec", "--np", "1", "--kpt-length", "6"]  # fmt: skip
    claims = tmp_path / "l.xyz.job" / "claims"
    claims.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    host = socket.gethostname()
    (claims / "s00000.json").write_text(json.dumps({"host": host, "pid": int(dead)}))
    (claims / "s00003.json").write_text(json.dumps({"host": host, "pid": os.getpid()}))
    workers = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), logs
    assert sorted(a.info["label_id"] for a in io.read(out)) == [0, 1, 2]  # each once
    assert all("structure 3: being labelled by" in log for log in logs)
    assert sum(log.count("atoms):") for log in logs) == 3
    assert sorted(p.name for p in claims.iterdir()) == ["s00003.json"]


def test_unconverged_scf_is_reported_and_skipped(tmp_path):
    structures = tmp_path / "s.xyz"
    io.write(structures, perturbed(cubic_perovskite(), 1, rattle=0.05, seed=2))
    out = tmp_path / "l.xyz"
    args = ["label", str(structures), "--out", str(out), "--preset", "test", "--no-bec",
            "--kpt-length", "6"]  # fmt: skip
    r = run_cli(*args, "--nstep", "2")
    assert r.returncode == 2
    assert "structure 0: SCF not converged in nstep=2" in r.stderr
    assert "1 of 1 structures failed" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    failed = json.loads((tmp_path / "l.xyz.job" / "failed.json").read_text())
    assert "SCF not converged" in failed["0"]
    r = run_cli(*args, "--nstep", "2")  # rerun: reported again, not retried silently
    assert r.returncode == 2 and "failed earlier" in r.stdout
    r = run_cli(*args, "--nstep", "2", "--retry-failed")  # asked to: it runs (and fails) again
    assert r.returncode == 2 and "failed earlier" not in r.stdout
    assert "structure 0: SCF not converged in nstep=2" in r.stderr
