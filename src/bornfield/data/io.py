"""Read and write labelled structures (extxyz via ASE) with every registry key round-tripping.

``read`` returns ``ase.Atoms`` whose labels sit under canonical names and shapes (see
:mod:`bornfield.data.keys`); ``write`` and ``append`` replace the target atomically, so a failure
never leaves a half-written or truncated file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read as ase_read
from ase.io import write as ase_write

from bornfield.data.keys import ALIASES, FORMAT_RENAMES, KEYS, to_canonical_shape
from bornfield.errors import DataError

EXTXYZ_SUFFIXES = (".xyz", ".extxyz")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def detect_format(path: str | os.PathLike) -> str:
    """Guess the file format from its name: extxyz, abinit, vasp-outcar or phonopy-born."""
    name = Path(path).name
    if name.endswith(EXTXYZ_SUFFIXES):
        return "extxyz"
    if name.endswith((".abo", ".out")):
        return "abinit"
    if name.startswith("OUTCAR"):
        return "vasp-outcar"
    if name.startswith("BORN"):
        return "phonopy-born"
    raise DataError(str(path), "unknown format (expected .xyz/.extxyz, .abo, OUTCAR or BORN)")


def read(
    path: str | os.PathLike,
    index: str | int = ":",
    format: str | None = None,
    structure: Atoms | None = None,
    check: bool = True,
) -> list[Atoms]:
    """Read labelled frames from any supported format, labels under canonical keys.

    ``structure`` is needed for phonopy ``BORN`` files, which hold no structure. With ``check``
    every frame is validated (cell, shapes, finite and physical values; not the ASR, which
    :func:`bornfield.data.validate.validate` checks on request).
    """
    frames = _read(Path(path), index, format, structure)
    if check:
        from bornfield.data.validate import validate

        validate(frames, str(path), asr_tol=None)
    return frames


def functional(atoms: Atoms) -> str | None:
    """The exchange-correlation functional a frame was labelled with, from its provenance
    (``"PBEsol"`` for ``"PBEsol (libxc ixc -116133)"``), or None where it is not recorded."""
    try:
        name = json.loads(atoms.info["provenance"]).get("functional")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return name.split(" (")[0] if isinstance(name, str) and name else None


def read_union(
    data: str | os.PathLike | Sequence[str | os.PathLike] | Sequence[Atoms],
    allow_mixed_dft: bool = False,
) -> tuple[list[Atoms], str]:
    """Frames of one file, of several files as one set (e.g. the paper's dataset D, the union
    of the CaTiO3, BaTiO3 and CaZrO3 sets), or given as Atoms; and a name for messages.

    Files whose frames record different functionals (:func:`functional`) do not mix: energies
    and forces of PBE and PBEsol differ systematically, and one model would learn both. Frames
    that record none are not checked. ``allow_mixed_dft`` mixes them anyway.
    """
    parts = read_parts(data, allow_mixed_dft)
    return [a for _, part in parts for a in part], " + ".join(name for name, _ in parts)


def read_parts(
    data: str | os.PathLike | Sequence[str | os.PathLike] | Sequence[Atoms],
    allow_mixed_dft: bool = False,
) -> list[tuple[str, list[Atoms]]]:
    """:func:`read_union`, file by file: ``[(path, frames), ...]`` (one ``"<frames>"`` part
    for frames given as Atoms)."""
    if isinstance(data, str | os.PathLike):
        return [(str(data), read(data))]
    items = list(data)
    if not items:
        raise DataError("<no data>", "no files or frames given")
    if all(isinstance(a, Atoms) for a in items):
        return [("<frames>", list(items))]
    parts: list[tuple[str, list[Atoms]]] = []
    seen: dict[str, str] = {}  # functional -> the first file labelled with it
    for path in items:
        if str(path) in (name for name, _ in parts):
            raise DataError(str(path), "given twice")
        part = read(path)
        for f in sorted({x for x in map(functional, part) if x is not None}):
            if seen and f not in seen and not allow_mixed_dft:
                other, first = next(iter(seen.items()))
                raise DataError(
                    str(path),
                    f"labelled with {f}, {first} with {other}: one model would learn two "
                    "functionals (allow_mixed_dft / --allow-mixed-dft to use them anyway)",
                )
            seen.setdefault(f, str(path))
        parts.append((str(path), part))
    return parts


def _read(path: Path, index: str | int, format: str | None, structure: Atoms | None) -> list[Atoms]:
    from bornfield.data import importers

    if not path.is_file():
        raise DataError(str(path), "no such file")
    fmt = format or detect_format(path)
    if fmt == "extxyz":
        return read_extxyz(path, index)
    if fmt == "abinit":
        return [importers.read_abinit_output(path)]
    if fmt == "vasp-outcar":
        return [importers.read_vasp_outcar(path)]
    if fmt == "phonopy-born":
        if structure is None:
            raise DataError(str(path), "a BORN file needs the structure it belongs to")
        return [importers.read_phonopy_born(path, structure)]
    raise DataError(str(path), f"unknown format {fmt!r}")


def read_extxyz(path: str | os.PathLike, index: str | int = ":") -> list[Atoms]:
    """Read an extxyz file; every frame is checked to have a cell and canonical label shapes."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataError(str(path), "empty file")
    try:
        frames = ase_read(path, index=index, format="extxyz")
    except UnicodeDecodeError:
        raise DataError(str(path), "not a text file (binary content)") from None
    except Exception as exc:  # ASE raises many types for malformed text
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(str(path), f"not valid extxyz ({type(exc).__name__}: {msg})") from None
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise DataError(str(path), "no frames")
    for i, atoms in enumerate(frames):
        canonicalize(atoms, str(path), i)
    return frames


def canonicalize(atoms: Atoms, source: str = "<memory>", frame: int | None = None) -> Atoms:
    """Move labels to canonical names/shapes in place: calculator results, aliases, renames."""
    if atoms.calc is not None:
        results = dict(atoms.calc.results)
        atoms.calc = None
        for name, value in results.items():
            if name in KEYS:
                target = atoms.arrays if KEYS[name].where == "arrays" else atoms.info
                target[name] = value
    renames: dict[str, str] = {}
    if "born_charge" in atoms.arrays:  # allegro-pol layout
        renames.update(FORMAT_RENAMES["allegro-pol"])
    renames.update(ALIASES)
    for store in (atoms.info, atoms.arrays):
        for old, new in renames.items():
            if old in store and old != new:
                if new in atoms.info or new in atoms.arrays:
                    continue  # canonical key already present: keep it, leave the alias alone
                value = store.pop(old)
                (atoms.arrays if KEYS[new].where == "arrays" else atoms.info)[new] = value
    n = len(atoms)
    for name, key in KEYS.items():
        store = atoms.arrays if key.where == "arrays" else atoms.info
        other = atoms.info if key.where == "arrays" else atoms.arrays
        if name in other:
            raise DataError(
                source,
                f"{name!r} must be a per-{'atom' if key.where == 'arrays' else 'structure'} value",
                frame,
            )
        if name not in store:
            continue
        try:
            value = to_canonical_shape(key, store[name], n)
        except (ValueError, TypeError) as exc:
            raise DataError(source, str(exc), frame) from None
        if key.where == "arrays":
            del atoms.arrays[name]
            atoms.new_array(name, value)
        else:
            store[name] = float(value) if key.shape == () else value
    return atoms


def _to_disk(atoms: Atoms) -> Atoms:
    """A copy ready for extxyz: no calculator, per-atom tensors flattened to rows."""
    out = atoms.copy()
    out.calc = None
    for name, key in KEYS.items():
        if key.where == "arrays" and name in out.arrays and out.arrays[name].ndim > 2:
            flat = out.arrays.pop(name).reshape(len(out), -1)
            out.new_array(name, flat)
        elif key.where == "info" and name in out.info:
            out.info[name] = (
                np.asarray(out.info[name], dtype=float).reshape(-1) if key.shape else out.info[name]
            )
    return out


def write(path: str | os.PathLike, frames: Atoms | Sequence[Atoms]) -> None:
    """Write frames to extxyz atomically (the old file stays intact if anything fails)."""
    if isinstance(frames, Atoms):
        frames = [frames]
    with atomic_output(path) as tmp:
        ase_write(tmp, [_to_disk(a) for a in frames], format="extxyz")


def append(path: str | os.PathLike, atoms: Atoms) -> None:
    """Append one frame atomically: afterwards the file has all old frames plus this one."""
    path = Path(path)
    with atomic_output(path) as tmp:
        if path.exists():
            tmp.write_bytes(path.read_bytes())
        ase_write(tmp, _to_disk(atoms), format="extxyz", append=True)
