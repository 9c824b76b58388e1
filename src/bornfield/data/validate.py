"""Validation of labelled frames, and the acoustic sum rule (ASR) for Born charges.

Every problem is a :class:`~bornfield.errors.DataError` whose one-line message names the file,
the frame and what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from bornfield.data.keys import KEYS, get_key
from bornfield.errors import DataError

#: default ASR tolerance: max over (a, b) of |sum_k Z[k, a, b]| in e
ASR_TOL = 0.1
#: atoms closer than this (Å) are unphysical
MIN_DISTANCE = 0.5


def asr_residual(born_charges: np.ndarray) -> float:
    """max_ab |Σ_k Z[k, a, b]| (e): zero when the acoustic sum rule holds."""
    return float(np.abs(np.asarray(born_charges).sum(axis=0)).max())


def fix_asr(frames: Sequence[Atoms]) -> list[float]:
    """Subtract the per-structure mean Z* in place; return each frame's shift (max |mean|, e)."""
    moved = []
    for atoms in frames:
        if "born_charges" not in atoms.arrays:
            moved.append(0.0)
            continue
        z = atoms.arrays["born_charges"]
        mean = z.mean(axis=0)
        atoms.arrays["born_charges"] = z - mean
        moved.append(float(np.abs(mean).max()))
    return moved


def require_keys(frames: Sequence[Atoms], keys: Sequence[str], source: str) -> None:
    """Every frame carries every requested key (unknown key names are an error too)."""
    for name in keys:
        try:
            key = get_key(name)
        except KeyError as exc:
            raise DataError(source, exc.args[0]) from None
        for i, atoms in enumerate(frames):
            store = atoms.arrays if key.where == "arrays" else atoms.info
            if key.name not in store:
                raise DataError(source, f"missing label {key.name!r}", i)


def validate_frame(atoms: Atoms, source: str, frame: int, asr_tol: float | None = ASR_TOL) -> None:
    """Raise a DataError for the first problem found in one frame."""
    if len(atoms) == 0:
        raise DataError(source, "no atoms", frame)
    if not atoms.pbc.all():
        raise DataError(source, "not periodic in all three directions (pbc must be T T T)", frame)
    volume = abs(atoms.cell.volume) if atoms.cell.rank == 3 else 0.0
    if volume < 1e-6:
        raise DataError(source, "missing or degenerate cell (no Lattice)", frame)
    if not np.isfinite(atoms.positions).all():
        raise DataError(source, "non-finite positions", frame)
    if len(atoms) > 1:
        from ase.neighborlist import neighbor_list

        d = neighbor_list("d", atoms, MIN_DISTANCE)
        if len(d):
            raise DataError(source, f"atoms closer than {MIN_DISTANCE} Å ({d.min():.3f} Å)", frame)
    for name, key in KEYS.items():
        store = atoms.arrays if key.where == "arrays" else atoms.info
        if name not in store:
            continue
        value = np.asarray(store[name], dtype=float)
        want = key.shape_for(len(atoms))
        if value.shape != want:
            raise DataError(source, f"{name}: expected shape {want}, got {value.shape}", frame)
        if not np.isfinite(value).all():
            raise DataError(source, f"{name} contains NaN or inf", frame)
        if key.max_abs is not None and np.abs(value).max() > key.max_abs:
            raise DataError(
                source,
                f"{name} outside physical range: max |value| {np.abs(value).max():.3g} {key.unit}"
                f" > {key.max_abs:g}",
                frame,
            )
    if asr_tol is not None and "born_charges" in atoms.arrays:
        res = asr_residual(atoms.arrays["born_charges"])
        if res > asr_tol:
            raise DataError(
                source,
                f"acoustic sum rule violated: residual {res:.3g} e > {asr_tol:g} e (use --fix-asr)",
                frame,
            )


def validate(frames: Sequence[Atoms], source: str, asr_tol: float | None = ASR_TOL) -> None:
    """Validate every frame; raise a DataError naming the first bad one."""
    if not frames:
        raise DataError(source, "no frames")
    for i, atoms in enumerate(frames):
        validate_frame(atoms, source, i, asr_tol)
