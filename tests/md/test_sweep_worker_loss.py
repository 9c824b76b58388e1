"""A Dask worker killed mid-task: only that task is repeated, from its own checkpoint."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from helpers import ROOT

from bornfield.analysis.dielectric import read_observables
from bornfield.label.generators import cubic_perovskite
from bornfield.md.run import MDConfig
from bornfield.md.sweep import MDTask, run_sweep, run_task

FF = ROOT / "models/batio3/ff"
BEC = ROOT / "models/batio3/bec"


def _tasks(root, steps=400):
    atoms = cubic_perovskite("BaTiO3")
    atoms.rattle(0.02, seed=0)
    md = MDConfig(temperature=300, steps=steps, log_interval=10, traj_interval=100,
                  checkpoint_interval=50, seed=3)  # fmt: skip
    return [
        MDTask(
            f"E{ax}",
            atoms,
            str(FF),
            str(BEC),
            tuple(0.005 * (np.arange(3) == i)),
            md,
            str(root / f"E{ax}"),
        )  # fmt: skip
        for i, ax in enumerate("xz")
    ]


def _rows(path) -> int:
    p = path / "observables.csv"
    return sum(1 for _ in open(p)) - 1 if p.exists() else 0


@pytest.mark.slow
def test_killed_worker_repeats_only_its_own_task_from_checkpoint(tmp_path):
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    if not FF.exists():
        pytest.skip("shipped models missing")
    tasks = _tasks(tmp_path / "sweep")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    client = Client(cluster)
    results: list = []
    sweep = threading.Thread(
        target=lambda: results.extend(
            run_sweep(tasks, scheduler=cluster.scheduler_address, log=lambda m: None)
        )
    )
    try:
        sweep.start()
        victim = tasks[0]
        deadline = time.time() + 300
        while _rows(tmp_path / "sweep" / victim.name) < 12:  # past the step-50 checkpoint
            assert time.time() < deadline and sweep.is_alive(), "task never got going"
            time.sleep(0.2)
        busy = {w: keys for w, keys in client.processing().items() if keys}
        addr = next(w for w, keys in busy.items() if any(victim.name in str(k) for k in keys))
        pid = client.run(os.getpid, workers=[addr])[addr]
        os.kill(pid, signal.SIGKILL)
        killed_at = _rows(tmp_path / "sweep" / victim.name)
        sweep.join(timeout=600)
        assert not sweep.is_alive()
    finally:
        client.close()
        cluster.close()
    assert [r.get("error") for r in results] == [None, None], results
    assert all(r["steps_done"] == 400 for r in results)
    assert results[1]["steps_this_call"] == 400  # the other task ran once, untouched
    assert 400 - 10 * killed_at <= results[0]["steps_this_call"] < 400  # resumed, not restarted
    obs = read_observables(tmp_path / "sweep" / victim.name, discard=0.0)
    assert 0 < killed_at < len(obs["step"]) and np.all(np.diff(obs["step"]) == 10)
    # the resumed run equals an uninterrupted one (same seed, CPU)
    ref_task = _tasks(tmp_path / "ref")[0]
    run_task(ref_task)
    ref = read_observables(tmp_path / "ref" / victim.name, discard=0.0)
    np.testing.assert_allclose(obs["epot_eV"], ref["epot_eV"], rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("error:torch.compile failed")  # a fallback would compare eager twice
def test_compiled_task_follows_the_eager_one(tmp_path):
    """`bornfield run`'s default: a sweep task with the force field torch.compile-d gives the
    eager task's trajectory (same seed; float32 rounding only), through the Dask task path
    (`run_sweep`, serial) and its task pickling."""
    import pickle
    from dataclasses import replace

    eager = [replace(t, md=replace(t.md, log_interval=2)) for t in _tasks(tmp_path, steps=40)[:1]]
    compiled = [pickle.loads(pickle.dumps(replace(t, out=str(tmp_path / "c"), compile=True)))
                for t in eager]  # fmt: skip
    results = run_sweep(eager + compiled, scheduler="serial", log=lambda m: None)
    assert [r.get("error") for r in results] == [None, None], results
    a = read_observables(tmp_path / "Ex", discard=0.0)
    b = read_observables(tmp_path / "c", discard=0.0)
    assert len(a["step"]) == len(b["step"]) == 21
    np.testing.assert_allclose(b["epot_eV"], a["epot_eV"], rtol=1e-6)
    np.testing.assert_allclose(b["temperature_K"], a["temperature_K"], rtol=1e-4)
    assert np.ptp(a["temperature_K"]) > 1  # the atoms did move


def test_a_failed_task_does_not_stop_the_sweep(tmp_path):
    """One task blows up (a force limit no step keeps), one names a model file that is not
    there: each reports its error, and the task after them still runs to the end."""
    from dataclasses import replace

    ok, bad = _tasks(tmp_path, steps=20)
    bad = replace(bad, md=replace(bad.md, max_force=1e-3))
    missing = replace(ok, name="missing", ff=str(tmp_path / "no_model"), out=str(tmp_path / "m"))
    logs: list[str] = []
    results = run_sweep([bad, missing, ok], scheduler="serial", log=logs.append)
    assert "blow-up at step 10: force runaway" in results[0]["error"]
    assert "no_model" in results[1]["error"]
    assert "error" not in results[2] and results[2]["steps_done"] == 20
    assert logs[0].startswith("[1/3] Ez: failed: ") and logs[2].startswith("[3/3] Ex: 20 steps")
