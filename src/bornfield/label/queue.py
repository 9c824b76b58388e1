"""Resumable labelling jobs: a job directory holds the pending structures and their state.

Each finished frame is appended atomically to the output file; after a kill, the same call
continues with the next unfinished structure (losing at most the one in flight). Failures are
recorded with their reason in ``failed.json`` and skipped, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ase import Atoms

from bornfield.data import io
from bornfield.errors import BornfieldError
from bornfield.label.abinit import AbinitSettings, LabelError, run_abinit, tidy, write_input

ID_KEY = "label_id"


@dataclass
class LabelReport:
    done: list[int] = field(default_factory=list)  # labelled in this call
    skipped: list[int] = field(default_factory=list)  # already in the output
    failed: dict[int, str] = field(default_factory=dict)  # id -> reason (this call and earlier)
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
) -> LabelReport:
    """Label ``structures`` with ABINIT into ``out`` (extxyz), resumably, one at a time."""
    out = Path(out)
    job = Path(job_dir) if job_dir else out.with_name(out.name + ".job")
    job.mkdir(parents=True, exist_ok=True)
    state_path = job / "job.json"
    fp = _fingerprint(structures, settings)
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
        state_path.write_text(json.dumps(state, indent=1, default=str))
    failed_path = job / "failed.json"
    report = LabelReport()
    report.failed = (
        {int(k): v for k, v in json.loads(failed_path.read_text()).items()}
        if failed_path.exists()
        else {}
    )
    done_ids = {int(a.info[ID_KEY]) for a in io.read(out, check=False)} if out.exists() else set()
    todo = [i for i in range(len(structures)) if i not in done_ids and i not in report.failed]
    report.skipped = sorted(done_ids)
    if report.failed:
        log(f"{len(report.failed)} structures failed earlier and are skipped: see {failed_path}")
    log(f"labelling {len(todo)} of {len(structures)} structures ({len(done_ids)} done) -> {out}")
    for n, i in enumerate(todo):
        atoms = structures[i]
        workdir = job / f"s{i:05d}"
        t0 = time.perf_counter()
        try:
            labelled = run_abinit(atoms, settings, workdir, nprocs=nprocs)
        except LabelError as exc:
            report.failed[i] = str(exc)
            failed_path.write_text(json.dumps(report.failed, indent=1))
            log(f"[{n + 1}/{len(todo)}] structure {i} FAILED: {exc}")
            continue
        labelled.info[ID_KEY] = i
        io.append(out, labelled)
        tidy(workdir)  # keep inputs, outputs, logs and DDBs; drop wavefunctions
        dt = time.perf_counter() - t0
        report.done.append(i)
        report.wall_s.append(dt)
        eta = (len(todo) - n - 1) * sum(report.wall_s) / len(report.wall_s)
        log(
            f"[{n + 1}/{len(todo)}] structure {i} ({labelled.get_chemical_formula()}, "
            f"{len(labelled)} atoms): {dt:.0f} s, ETA {eta / 60:.1f} min"
        )
    return report
