"""Resumable labelling jobs: a job directory holds the pending structures and their state.

Each finished frame is appended atomically to the output file; after a kill, the same call
continues with the next unfinished structure (losing at most the stage in flight). Failures are
recorded with their reason in ``failed.json`` and skipped, never dropped silently.

Several processes may work on one job (run the same command again, on this machine or another
one sharing the directory): each claims a structure before labelling it (``claims/``), skips
the ones a live process holds, and takes over the claims of dead ones on its own host (a
claim names its process by pid and start time, so a reused pid does not hold it); the
output and ``failed.json`` are updated under a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ase import Atoms

from bornfield.data import io
from bornfield.errors import BornfieldError, DataError
from bornfield.label.abinit import (
    CHECKPOINT_S,
    DONE,
    AbinitSettings,
    LabelError,
    run_abinit,
    stage_steps,
    tidy,
    write_input,
)

ID_KEY = "label_id"


@dataclass
class LabelReport:
    done: list[int] = field(default_factory=list)  # labelled in this call
    skipped: list[int] = field(default_factory=list)  # already in the output
    failed: dict[int, str] = field(default_factory=dict)  # id -> reason (this call and earlier)
    failed_here: list[int] = field(default_factory=list)  # failed in this call
    wall_s: list[float] = field(default_factory=list)


def _fingerprint(frames: list[Atoms], settings: AbinitSettings) -> str:
    """Hash of the ABINIT inputs: a job resumes exactly when every input would be the same."""
    h = hashlib.sha256()
    for a in frames:
        h.update(write_input(a, settings).encode())
    return h.hexdigest()[:16]


def label_structures(
    structures: list[Atoms],
    out: str | Path,
    settings: AbinitSettings,
    job_dir: str | Path | None = None,
    nprocs: int = 2,
    log: Callable[[str], None] = print,
    max_structures: int | None = None,
    checkpoint_s: float = CHECKPOINT_S,
    ids: list[int] | None = None,
    retry_failed: bool = False,
) -> LabelReport:
    """Label ``structures`` with ABINIT into ``out`` (extxyz), resumably, one at a time.

    ``max_structures``: this call stops after that many structures (labelled or failed), so that
    a worker can be moved to another queue without killing a structure in flight.
    ``checkpoint_s``: seconds between checkpoints of a run (see :func:`run_abinit`).
    ``ids``: label only these structures (indices into ``structures``), in this order, e.g. the
    validation frames first; the others stay queued. A structure that failed (ABINIT's error,
    an SCF that did not converge, output that cannot be read) is recorded in the job's
    ``failed.json`` and skipped by later calls; ``retry_failed`` queues the failed ones of
    ``ids`` (all, without ``ids``) again."""
    out = Path(out)
    order = list(range(len(structures))) if ids is None else list(dict.fromkeys(ids))
    if bad := [i for i in order if not 0 <= i < len(structures)]:
        raise BornfieldError(f"structure ids {bad} out of range: {len(structures)} structures")
    job = _job_dir(out, job_dir)
    job.mkdir(parents=True, exist_ok=True)
    state_path = job / "job.json"
    fp = _fingerprint(structures, settings)
    with _locked(job):  # another worker may be setting the job up
        if state_path.exists():
            state = json.loads(state_path.read_text())
            if state["fingerprint"] != fp:
                raise BornfieldError(
                    f"{job}: job directory belongs to other structures or settings; "
                    "use another --out or remove it"
                )
        else:
            pending = []
            for i, a in enumerate(structures):
                b = a.copy()
                b.info[ID_KEY] = i
                pending.append(b)
            io.write(job / "pending.xyz", pending)
            state = {"fingerprint": fp, "n": len(structures), "settings": asdict(settings)}
            _write_json(state_path, state)
    failed_path = job / "failed.json"
    if retry_failed:
        with _locked(job):
            kept = {i: why for i, why in _failed(failed_path).items() if i not in order}
            _write_json(failed_path, kept)
    report = LabelReport()
    report.failed = _failed(failed_path)
    done_ids = _done_ids(out)
    todo = [i for i in order if i not in done_ids and i not in report.failed]
    report.skipped = sorted(done_ids)
    if report.failed:
        log(f"{len(report.failed)} structures failed earlier and are skipped: see {failed_path}")
    log(f"labelling {len(todo)} of {len(structures)} structures ({len(done_ids)} done) -> {out}")
    if ids is not None:
        log(f"  in this order: {todo}")
    if warning := _mixed_meshes(structures, settings):
        log(warning)
    for n, i in enumerate(todo):
        if max_structures is not None and len(report.done + report.failed_here) >= max_structures:
            log(f"stopping after {max_structures} structure(s) (--max); the rest stay queued")
            break
        atoms = structures[i]
        workdir = job / f"s{i:05d}"
        claim = job / "claims" / f"s{i:05d}.json"
        with _locked(job):
            if i in _done_ids(out) or i in _failed(failed_path):
                continue  # finished by another worker
            if not _claim(claim):
                log(f"[{n + 1}/{len(todo)}] structure {i}: being labelled by {claim.read_text()}")
                continue
        t0 = time.perf_counter()
        try:
            labelled = run_abinit(atoms, settings, workdir, nprocs=nprocs,
                                  checkpoint_s=checkpoint_s,
                                  log=lambda m, i=i: log(f"  structure {i}: {m}"))  # fmt: skip
        except (LabelError, DataError) as exc:  # DataError: ABINIT's output cannot be read
            with _locked(job):
                report.failed = _failed(failed_path) | {i: str(exc)}
                _write_json(failed_path, report.failed)
                claim.unlink(missing_ok=True)
            report.failed_here.append(i)
            log(f"[{n + 1}/{len(todo)}] structure {i} FAILED: {exc}")
            continue
        labelled.info[ID_KEY] = i
        with _locked(job):
            io.append(out, labelled)
            claim.unlink(missing_ok=True)
        tidy(workdir)  # keep inputs, outputs, logs and DDBs; drop wavefunctions
        dt = time.perf_counter() - t0
        report.done.append(i)
        report.wall_s.append(dt)
        eta = (len(todo) - n - 1) * sum(report.wall_s) / len(report.wall_s)
        log(
            f"[{n + 1}/{len(todo)}] structure {i} ({labelled.get_chemical_formula()}, "
            f"{len(labelled)} atoms): {dt:.0f} s, ETA {eta / 60:.1f} min (for this worker alone)"
        )
    return report


def _in_flight(d: Path) -> str:
    """``", gs at step 12 (8 before its checkpoint)"``: the unfinished stage of structure
    directory ``d`` and its SCF (or DFPT) steps so far, or ``""``."""
    stages = [s for s in d.glob("*/run.abo") if not (s.parent / DONE).exists()]
    if not stages:
        return ""
    stage = max(stages, key=lambda p: p.stat().st_mtime).parent
    steps, before = stage_steps(stage)
    return f", {stage.name} at step {steps}" + (
        f" ({before} before its checkpoint)" if before else ""
    )


def _job_dir(out: Path, job_dir: str | Path | None) -> Path:
    return Path(job_dir) if job_dir else out.with_name(out.name + ".job")


@dataclass
class QueueStatus:
    """Where a labelling queue stands (:func:`queue_status`); ``str()`` is the summary."""

    out: Path
    done: list[int]
    running: dict[int, str]  # id -> its finished stages and the one in flight
    failed: dict[int, str]
    pending: list[int]
    wall_s: list[float]  # ABINIT wall time of each done frame (its provenance)
    #: ABINIT CPU time / MPI ranks of each done frame that records it: the wall time on quiet
    #: cores, which other jobs on the machine do not inflate
    quiet_s: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        n = len(self.done) + len(self.running) + len(self.failed) + len(self.pending)
        out = [f"{self.out}: {len(self.done)} of {n} done"]
        out += [f"  running: structure {i}, {st}" for i, st in self.running.items()]
        out += [f"  failed: structure {i}: {why}" for i, why in self.failed.items()]
        if self.pending:
            out.append(f"  pending: {len(self.pending)}, next {self.pending[:8]}")
        left = len(self.pending) + len(self.running)
        if self.wall_s and left:
            med = sorted(self.wall_s)[len(self.wall_s) // 2]
            out.append(
                f"  median {med / 60:.0f} min per frame so far (its ABINIT wall time):"
                f" about {left * med / 3600:.1f} h left on one worker"
            )
        if self.quiet_s and left:
            med = sorted(self.quiet_s)[len(self.quiet_s) // 2]
            out.append(
                f"  median {med / 60:.0f} min per frame on quiet cores (CPU time / ranks, of"
                f" {len(self.quiet_s)} frames): about {left * med / 3600:.1f} h left"
            )
        return "\n".join(out)


def queue_status(
    n_structures: int,
    out: str | Path,
    job_dir: str | Path | None = None,
    ids: list[int] | None = None,
) -> QueueStatus:
    """The state of the queue :func:`label_structures` works on (same ``out``, ``job_dir``,
    ``ids``), read from its output and job directory without changing either."""
    out = Path(out)
    job = _job_dir(out, job_dir)
    order = list(range(n_structures)) if ids is None else list(dict.fromkeys(ids))
    frames = io.read(out, check=False) if out.exists() else []
    done_ids = {int(a.info[ID_KEY]) for a in frames}
    failed = {i: why for i, why in _failed(job / "failed.json").items() if i in order}
    state = json.loads((job / "job.json").read_text()) if (job / "job.json").exists() else {}
    n_stages = 7 if state.get("settings", {}).get("bec", True) else 1
    running = {}
    for i in order:
        claim = job / "claims" / f"s{i:05d}.json"
        if i in done_ids or i in failed or not claim.exists():
            continue
        try:
            owner = json.loads(claim.read_text())
        except ValueError:
            continue
        if _alive(owner):
            d = job / f"s{i:05d}"
            running[i] = f"{len(list(d.glob('*/' + DONE)))} of {n_stages} stages finished"
            running[i] += _in_flight(d)
    started = done_ids | set(failed) | set(running)
    provs = [
        json.loads(a.info["provenance"])
        for a in frames
        if int(a.info[ID_KEY]) in order and "provenance" in a.info
    ]
    return QueueStatus(
        out=out,
        done=[i for i in order if i in done_ids],
        running=running,
        failed=failed,
        pending=[i for i in order if i not in started],
        wall_s=[float(p.get("wall_time_s", 0)) for p in provs],
        quiet_s=[
            p["cpu_time_s"] / p.get("nprocs", 1) for p in provs if p.get("cpu_time_s") is not None
        ],
    )


def _mixed_meshes(structures: list[Atoms], settings: AbinitSettings) -> str | None:
    """A warning when cells of one size get different k-meshes (the mesh follows each cell's
    lengths, see :meth:`AbinitSettings.kmesh`): their energies are not comparable to the meV."""
    meshes: dict[int, dict[tuple[int, ...], list[int]]] = {}
    for i, a in enumerate(structures):
        meshes.setdefault(len(a), {}).setdefault(tuple(settings.kmesh(a)), []).append(i)
    mixed = {n: m for n, m in meshes.items() if len(m) > 1}
    if not mixed:
        return None
    found = "; ".join(
        f"{n} atoms: " + ", ".join(f"{'×'.join(map(str, k))} for ids {v}" for k, v in m.items())
        for n, m in mixed.items()
    )
    return (
        f"WARNING: cells of one size get different k-meshes ({found}): their energies are not"
        " comparable to the meV; --kpt-length can make them agree"
    )


def _done_ids(out: Path) -> set[int]:
    return {int(a.info[ID_KEY]) for a in io.read(out, check=False)} if out.exists() else set()


def _write_json(path: Path, obj) -> None:
    """Write JSON atomically: a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def _failed(path: Path) -> dict[int, str]:
    return {int(k): v for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


@contextmanager
def _locked(job: Path) -> Iterator[None]:
    """Exclusive lock of a job's shared files (claims, output, failures) across processes."""
    with open(job / "queue.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _claim(path: Path) -> bool:
    """Claim a structure for this process (under the job lock): False if a live process holds
    it. A claim by a dead process on this host is taken over; one from another host is
    respected (its liveness cannot be checked: remove the file to release it)."""
    me = {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}
    if path.exists():
        try:
            owner = json.loads(path.read_text())
        except ValueError:
            owner = None
        if owner and owner != me and _alive(owner):
            return False
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(me))
    return True


def _start_time(pid: int) -> str | None:
    """When a process started (boot id and clock ticks since boot, from /proc), so that a pid
    reused by another process after the claimant died is not taken for the claimant; None
    where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"  # field 22: starttime


def _alive(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return True
    try:
        pid = int(owner["pid"])
        if pid == os.getpid():  # this process's own claim, or a dead one's with its pid
            return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError):
        return True
    started = owner.get("start")  # claims written before this check have none
    return started is None or _start_time(pid) in (None, started)
