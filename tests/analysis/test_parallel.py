"""Trainings on Dask: same models, same order as in one process."""

from __future__ import annotations

from pathlib import Path

from ase import Atoms

from bornfield.parallel import train_all


def test_train_all_parallel_equals_serial(tmp_path):
    def train(frames: list[Atoms], out_dir: Path) -> Path:
        import os

        import torch

        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "model.txt"
        path.write_text(f"{len(frames)} {torch.get_num_threads()} {os.getpid()}")
        return path

    jobs = [([Atoms("H")] * n, tmp_path / f"n{n}") for n in (1, 2, 3)]
    serial = train_all(jobs, train, workers=1)
    pids = {p.read_text().split()[2] for p in serial}
    parallel = train_all(jobs, train, workers=2)
    assert parallel == serial
    texts = [p.read_text().split() for p in parallel]
    assert [t[0] for t in texts] == ["1", "2", "3"] and {t[1] for t in texts} == {"1"}
    assert pids.isdisjoint(t[2] for t in texts)  # the parallel ones ran in worker processes


def test_children_die_with_a_killed_parent(tmp_path):
    """A SIGKILLed bornfield process leaves no orphan (training or ABINIT) writing on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess, time\n"
        "from bornfield.parallel import die_with_parent\n"
        "p = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent)\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.05)
    child = int(pidfile.read_text())
    os.kill(child, 0)  # running
    parent.kill()
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the child outlived its parent")
