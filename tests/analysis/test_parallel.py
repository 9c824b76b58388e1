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
