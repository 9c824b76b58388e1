"""Independent MD runs (temperatures × field directions) as tasks on Dask.

A LocalCluster by default (``workers`` processes × ``threads_per_worker`` torch threads, so
tasks do not fight over cores), an existing cluster by scheduler address, or ``serial`` to run
in this process. Each task writes its own run directory and checkpoints, so a lost worker or a
killed sweep only repeats the unfinished part of its own task when submitted again.

SLURM: start a cluster with dask-jobqueue and pass its address, e.g.::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=4, processes=2, memory="16GB", walltime="24:00:00")
    cluster.scale(jobs=8)
    print(cluster.scheduler_address)   # -> [sweep] scheduler = "tcp://..."
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from bornfield.md.run import MDConfig


@dataclass(frozen=True)
class MDTask:
    """One MD run: structure, model files, field (V/Å), MD settings and its run directory."""

    name: str
    atoms: Atoms
    ff: str
    bec: str | None
    field: tuple[float, float, float]
    md: MDConfig
    out: str
    bec_interval: int = 1
    device: str = "cpu"
    compile: bool = False  # torch.compile the force field (``mace_compile``)
    bec_extrapolate: bool = False  # Z* extrapolated between refreshes (``FieldCalculator``)


@functools.cache
def _models(ff: str, bec: str | None, device: str, compile: bool = False):
    from bornfield.models.bec import load_model
    from bornfield.models.force_field import load_calculator

    ffc = load_calculator(ff, device=device, compile=compile)
    return ffc, (load_model(bec, device=device) if bec else None)


def run_task(task: MDTask, threads: int = 1) -> dict:
    """Run (or resume) one task; returns its summary, or {"error": ...} if it failed."""
    import torch

    from bornfield.calculators.field_calculator import FieldCalculator
    from bornfield.errors import BornfieldError
    from bornfield.md.run import run_md

    torch.set_num_threads(threads)
    ff, bec = _models(task.ff, task.bec, task.device, task.compile)
    calc = ff
    if bec is not None:
        calc = FieldCalculator(ff, bec, np.asarray(task.field), bec_interval=task.bec_interval,
                               bec_extrapolate=task.bec_extrapolate)  # fmt: skip
    try:
        summary = run_md(task.atoms, calc, task.md, task.out, log=lambda s: None)
    except BornfieldError as exc:
        return {"name": task.name, "out": task.out, "error": str(exc)}
    return {"name": task.name, "out": task.out, **summary}


def run_sweep(
    tasks: Sequence[MDTask],
    scheduler: str = "",
    workers: int = 2,
    threads_per_worker: int = 1,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run every task; returns their summaries in the order given."""
    if not tasks:
        return []
    if scheduler == "serial":
        results = []
        for i, t in enumerate(tasks):
            try:
                results.append(run_task(t, threads_per_worker))
            except Exception as exc:  # as on Dask: a crashed task does not stop the others
                results.append({"name": t.name, "out": t.out,
                                "error": f"{type(exc).__name__}: {exc}"})  # fmt: skip
            log(f"[{i + 1}/{len(tasks)}] {t.name}: {_status(results[-1])}")
        return results
    from dask.distributed import as_completed

    from bornfield.parallel import dask_client

    with dask_client(workers, threads_per_worker, scheduler) as client:
        futures = [
            client.submit(run_task, t, threads_per_worker, key=f"md-{i}-{t.name}", pure=False)
            for i, t in enumerate(tasks)
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[dict] = [{}] * len(tasks)
        for n, fut in enumerate(as_completed(futures), 1):
            i = index[fut.key]
            try:
                results[i] = fut.result()
            except Exception as exc:  # a crashed task or lost worker: the others go on
                results[i] = {"name": tasks[i].name, "out": tasks[i].out,
                              "error": f"{type(exc).__name__}: {exc}"}  # fmt: skip
            log(f"[{n}/{len(tasks)}] {tasks[i].name}: {_status(results[i])}")
        return results


def _status(r: dict) -> str:
    if "error" in r:
        return f"failed: {r['error']}"
    return f"{r['steps_done']} steps, {r['ms_per_step']:.1f} ms/step -> {Path(r['out'])}"
