"""The labelling queue's bookkeeping, with ABINIT replaced by a function that labels or fails:
a structure whose output cannot be read is recorded as failed and the queue goes on."""

import json
import os
import socket

import numpy as np
import pytest
from ase.build import make_supercell
from helpers import ROOT, run_cli

from bornfield.data import io
from bornfield.errors import DataError
from bornfield.label import label_structures, preset
from bornfield.label import queue as Q
from bornfield.label.abinit import EXIT_REQUESTED
from bornfield.label.generators import cubic_perovskite, perturbed


def test_unreadable_output_is_a_failure_and_retry_runs_it_again(tmp_path, monkeypatch):
    structures = perturbed(cubic_perovskite(), 3, rattle=0.05, seed=1)
    broken = {1}

    def fake_abinit(atoms, settings, workdir, **kw):
        if any(np.allclose(atoms.positions, structures[i].positions) for i in broken):
            raise DataError(f"{workdir}/gs/run.abo", "no total energy (truncated?)")
        out = atoms.copy()
        out.info["energy"], out.info["stress"] = -1.0, np.zeros(6)
        out.arrays["forces"] = np.zeros((len(atoms), 3))
        return out

    monkeypatch.setattr(Q, "run_abinit", fake_abinit)
    monkeypatch.setattr(Q, "tidy", lambda workdir: None)
    out, job = tmp_path / "l.xyz", tmp_path / "l.xyz.job"
    settings = preset("test", bec=False)
    report = label_structures(structures, out, settings, log=lambda m: None)
    assert report.done == [0, 2] and report.failed_here == [1]
    assert "truncated" in json.loads((job / "failed.json").read_text())["1"]
    assert not list((job / "claims").iterdir())  # the failed structure's claim is released
    assert not list(job.glob("*.tmp"))
    report = label_structures(structures, out, settings, log=lambda m: None)
    assert report.done == [] and list(report.failed) == [1]  # skipped, not rerun
    broken.clear()
    report = label_structures(structures, out, settings, log=lambda m: None, retry_failed=True)
    assert report.done == [1] and not report.failed
    assert json.loads((job / "failed.json").read_text()) == {}
    assert sorted(a.info["label_id"] for a in io.read(out)) == [0, 1, 2]


@pytest.mark.parametrize("ids", [[2], None])
def test_retry_failed_only_touches_the_ids_given(tmp_path, ids):
    job = tmp_path / "l.xyz.job"
    structures = perturbed(cubic_perovskite(), 3, rattle=0.05, seed=1)
    settings = preset("test", bec=False)
    label_structures(
        structures, tmp_path / "l.xyz", settings, max_structures=0, log=lambda m: None
    )  # fmt: skip  (sets the job up, labels nothing)
    (job / "failed.json").write_text(json.dumps({"1": "x", "2": "y"}))
    label_structures(structures, tmp_path / "l.xyz", settings, ids=ids, retry_failed=True,
                     max_structures=0, log=lambda m: None)  # fmt: skip
    left = json.loads((job / "failed.json").read_text())
    assert left == ({"1": "x"} if ids else {})


def test_a_claim_whose_pid_was_reused_is_taken_over(tmp_path):
    """A claim names its process by pid and start time: a live process with the claimant's pid
    but another start time (the pid was reused after the claimant died) does not hold it."""
    claim = tmp_path / "claims" / "s00000.json"
    claim.parent.mkdir()
    other = {"host": socket.gethostname(), "pid": os.getppid()}
    claim.write_text(json.dumps({**other, "start": Q._start_time(os.getppid())}))
    assert not Q._claim(claim)  # the live claimant keeps it
    claim.write_text(json.dumps({**other, "start": "another-boot:1"}))
    assert Q._claim(claim)  # same pid, another process: taken over
    assert json.loads(claim.read_text())["pid"] == os.getpid()
    claim.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    assert Q._claim(claim)  # a claim of this pid from before start times were kept


def test_mixed_k_meshes_are_reported():
    """The k-mesh follows each cell's lengths, so a cell 20 % larger than the others gets a
    coarser mesh; the queue says so before labelling. The shipped CaZrO3 batch has one mesh."""
    a = cubic_perovskite()
    big = a.copy()
    big.set_cell(a.cell * 1.2, scale_atoms=True)
    settings = preset("production")
    warning = Q._mixed_meshes([a, big, a, make_supercell(a, np.diag([1, 1, 2]))], settings)
    assert warning.startswith("WARNING") and (
        "(5 atoms: 5×5×5 for ids [0, 2], 4×4×4 for ids [1])" in warning
    )
    assert "10 atoms" not in warning  # another size may have another mesh
    batch = io.read(ROOT / "data/cazro3/structures_5atom_batch1.xyz")
    assert Q._mixed_meshes(batch, settings) is None


def test_status_reads_the_queue_without_changing_it(tmp_path, monkeypatch):
    """`bornfield label ... --status`: done, failed, running (a live claim, with its finished
    stages) and pending structures, from the output and the job directory alone."""
    structures = perturbed(cubic_perovskite(), 5, rattle=0.05, seed=2)

    def fake_abinit(atoms, settings, workdir, **kw):
        if np.allclose(atoms.positions, structures[1].positions):
            raise DataError(f"{workdir}/gs/run.abo", "no total energy")
        out = atoms.copy()
        out.info["energy"], out.info["stress"] = -1.0, np.zeros(6)
        out.arrays["forces"] = np.zeros((len(atoms), 3))
        prov = {"wall_time_s": 600.0, "cpu_time_s": 480.0, "nprocs": 2}  # beside another job
        out.info["provenance"] = json.dumps(prov)
        return out

    monkeypatch.setattr(Q, "run_abinit", fake_abinit)
    monkeypatch.setattr(Q, "tidy", lambda workdir: None)
    out, job = tmp_path / "l.xyz", tmp_path / "l.xyz.job"
    label_structures(structures, out, preset("test", bec=False), max_structures=3,
                     log=lambda m: None)  # fmt: skip
    (job / "s00003" / "gs").mkdir(parents=True)
    (job / "s00003" / "gs" / "done.json").write_text("{}")
    claim = {
        "host": socket.gethostname(),
        "pid": os.getppid(),
        "start": Q._start_time(os.getppid()),
    }
    (job / "claims" / "s00003.json").write_text(json.dumps(claim))
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    s = Q.queue_status(len(structures), out)
    assert (s.done, list(s.failed), s.running, s.pending) == (
        [0, 2], [1], {3: "1 of 1 stages finished"}, [4],
    )  # fmt: skip
    assert "about 0.3 h left on one worker" in str(s)  # 2 frames left at 10 min each
    assert s.quiet_s == [240.0, 240.0]  # CPU over 2 ranks: 4 min each on quiet cores
    assert "4 min per frame on quiet cores" in str(s) and "about 0.1 h left" in str(s)
    io.write(tmp_path / "s.xyz", structures)
    r = run_cli("label", str(tmp_path / "s.xyz"), "--out", str(out), "--status", "--ids", "4,3")
    assert r.returncode == 0, r.stderr
    assert "0 of 2 done" in r.stdout and "structure 3, 1 of 1 stages" in r.stdout
    after = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.name != "s.xyz")
    assert after == before
    # a stage in flight: its steps, counting those before the checkpoint it resumed from
    flight = job / "s00003" / "ddk1"
    flight.mkdir()
    (flight / "run.abo").write_text("".join(f" ETOT  {k}  -27.8  1e-3\n" for k in (1, 2, 3)))
    (flight / "checkpoint.json").write_text(json.dumps({"scf_steps": 8}))
    s = Q.queue_status(len(structures), out)
    assert s.running == {3: "1 of 1 stages finished, ddk1 at step 11 (8 before its checkpoint)"}
    # stopped for that checkpoint: the output's steps are in the record already
    with open(flight / "run.abo", "a") as f:
        f.write(f"  {EXIT_REQUESTED}\n")
    s = Q.queue_status(len(structures), out)
    assert s.running == {3: "1 of 1 stages finished, ddk1 at step 8 (8 before its checkpoint)"}
