"""Dask clients for independent tasks (MD sweeps, cross-validation folds, learning curves)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ase import Atoms


@contextmanager
def dask_client(workers: int = 2, threads_per_worker: int = 1, scheduler: str = "") -> Iterator:
    """A client of an existing cluster (``scheduler`` address) or of a fresh LocalCluster of
    ``workers`` processes, each limited to ``threads_per_worker`` OpenMP/torch threads so that
    tasks do not fight over cores; closed on exit."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        n = str(threads_per_worker)
        # non-daemonic workers may start processes of their own (mace_run_train, ABINIT)
        os.environ.setdefault("DASK_DISTRIBUTED__WORKER__DAEMON", "False")
        for name in ("distributed", "distributed.scheduler"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # at close, a worker still inside torch's thread pool is killed after 4 s with a warning;
        # every result is in by then
        logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n},
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _with_threads(train: Callable[[list[Atoms], Path], Path], frames, out_dir, threads: int):
    import torch

    torch.set_num_threads(threads)
    return train(frames, out_dir)


def train_all(
    jobs: Sequence[tuple[list[Atoms], Path]],
    train: Callable[[list[Atoms], Path], Path],
    workers: int = 1,
) -> list[Path]:
    """``train(frames, out_dir)`` for every job, returning the model paths in order: in this
    process (``workers`` ≤ 1) or as single-threaded tasks on a LocalCluster. Each training
    resumes from its own directory, so a rerun repeats only what did not finish."""
    if workers <= 1 or len(jobs) <= 1:
        return [train(frames, out_dir) for frames, out_dir in jobs]
    with dask_client(min(workers, len(jobs))) as client:
        futures = [
            client.submit(_with_threads, train, frames, out_dir, 1, pure=False)
            for frames, out_dir in jobs
        ]
        return client.gather(futures)


def die_with_parent() -> None:
    """``preexec_fn`` for long child processes (mace_run_train, ABINIT): on Linux the child gets
    SIGTERM when the process that started it dies, so a killed bornfield command leaves no
    orphan that keeps writing into a directory a rerun is about to use."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the child may outlive a killed parent


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory in the process instead of returning it to the kernel.

    A force-field step on hundreds of atoms allocates and frees tens of MB of per-edge
    temporaries; by default glibc serves such blocks with ``mmap`` and unmaps them when freed, so
    every step page-faults them in again (kernel time: 1.1–1.4× of a 640-atom MACE step here,
    bench/results/fieldmd.md). With ``mmap`` off and trimming off the heap is reused from step
    to step; the peak memory stays what it was. Returns False where this is not glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))
