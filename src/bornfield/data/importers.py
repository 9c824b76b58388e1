"""Importers for other codes' Born-charge outputs: ABINIT, VASP OUTCAR and phonopy BORN.

Each returns one ``Atoms`` with labels under canonical keys and shapes (Z* in the index order
``Z[atom, field dir, displacement dir]``) and a ``provenance`` JSON string in ``info``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from bornfield.errors import DataError
from bornfield.units import BOHR_A, HARTREE_EV

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][-+]?\d+)?"
_DDB_LINE = re.compile(rf"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+({_FLOAT})\s+({_FLOAT})\s*$")


# ----------------------------------------------------------------------------------- ABINIT
def _abinit_outvars(text: str) -> dict[str, list[str]]:
    """The final ``-outvars`` echo as name -> tokens (continuation lines joined)."""
    start = text.rfind("-outvars: echo values of variables after computation")
    if start < 0:
        return {}
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text[start:].splitlines()[1:]:
        if line.startswith("=") or "== END" in line or line.strip().startswith("================"):
            break
        m = re.match(r"^[\s-]{1,}([a-z_]+\d*)\s+(.*)$", line)
        if m and not re.match(rf"^\s*{_FLOAT}", line):
            current = m.group(1)
            out[current] = m.group(2).split()
        elif current and line.strip():
            out[current].extend(line.split())
        elif not line.strip():
            current = None
    return out


def _numbers(tokens: list[str]) -> np.ndarray:
    vals = []
    for t in tokens:
        try:
            vals.append(float(t.replace("D", "E").replace("d", "e")))
        except ValueError:
            continue  # unit names such as "Bohr" or "Hartree"
    return np.array(vals)


def _pick(outvars: dict[str, list[str]], name: str) -> list[str] | None:
    """A variable for the ground-state dataset: plain name, or the lowest dataset suffix."""
    if name in outvars:
        return outvars[name]
    suffixed = sorted((int(k[len(name) :]), k) for k in outvars if re.fullmatch(rf"{name}\d+", k))
    return outvars[suffixed[0][1]] if suffixed else None


def _ddb_block(text: str, header: str) -> list[tuple[int, int, int, int, float]]:
    """Rows (dir1, pert1, dir2, pert2, value) of a 2nd-derivative block after ``header``."""
    pos = text.rfind(header)
    if pos < 0:
        return []
    rows = []
    lines = text[pos:].splitlines()[1:]
    started = False
    for line in lines:
        m = _DDB_LINE.match(line)
        if m:
            started = True
            d1, p1, d2, p2 = (int(g) for g in m.groups()[:4])
            rows.append((d1, p1, d2, p2, float(m.group(5))))
        elif started and line.strip():
            break
    return rows


def parse_abinit_output(text: str, source: str = "<abinit output>") -> Atoms:
    """Structure, energy, forces, stress, Z* and ε∞ from ABINIT main output text."""
    ov = _abinit_outvars(text)
    if not ov:
        raise DataError(source, "no final '-outvars' section (ABINIT run incomplete?)")
    if "not enough SCF cycles to converge" in text:
        raise DataError(source, "an SCF did not converge (ABINIT: 'not enough SCF cycles')")
    try:
        natom = int(_numbers(ov["natom"])[0])
        typat = _numbers(ov["typat"]).astype(int)
        znucl = _numbers(ov["znucl"]).astype(int)
        acell = _numbers(_pick(ov, "acell") or ["1", "1", "1"]) * BOHR_A
        rprim_tok = _pick(ov, "rprim")
        rprim = _numbers(rprim_tok).reshape(3, 3) if rprim_tok else np.eye(3)
        xangst = _numbers(_pick(ov, "xangst")).reshape(natom, 3)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(source, f"cannot read the structure from -outvars ({exc})") from None
    if len(typat) != natom:  # typat given as a repeat pattern, e.g. "5*1" is not expanded here
        raise DataError(source, "typat does not list every atom")
    cell = rprim * acell[:, None]
    atoms = Atoms(
        symbols=[chemical_symbols[znucl[t - 1]] for t in typat],
        positions=xangst,
        cell=cell,
        pbc=True,
    )
    etot = _pick(ov, "etotal")
    if etot is not None:
        atoms.info["energy"] = float(_numbers(etot)[0]) * HARTREE_EV
    fcart = _pick(ov, "fcart")
    if fcart is not None:
        atoms.arrays["forces"] = _numbers(fcart).reshape(natom, 3) * HARTREE_EV / BOHR_A
    strten = _pick(ov, "strten")
    if strten is not None:
        from ase.stress import voigt_6_to_full_3x3_stress

        # ABINIT strten: Voigt (xx yy zz yz xz xy), Ha/bohr^3, same sign as ASE (positive = tensile)
        atoms.info["stress"] = voigt_6_to_full_3x3_stress(
            _numbers(strten)[:6] * HARTREE_EV / BOHR_A**3
        )
    efield = natom + 2
    rows = _ddb_block(text, "Effective charges, in cartesian coordinates,")
    if rows:
        z = np.full((natom, 3, 3), np.nan)
        for d1, p1, d2, p2, val in rows:
            if p2 == efield and p1 <= natom:  # j1 = atom displacement, j2 = field
                z[p1 - 1, d2 - 1, d1 - 1] = val
            elif p1 == efield and p2 <= natom:
                z[p2 - 1, d1 - 1, d2 - 1] = val
        if np.isnan(z).any():
            raise DataError(source, "incomplete Born effective charge block (rfdir not 1 1 1?)")
        atoms.arrays["born_charges"] = z
    rows = _ddb_block(text, "Dielectric tensor, in cartesian coordinates,")
    if rows:
        eps = np.full((3, 3), np.nan)
        for d1, _, d2, _, val in rows:
            eps[d1 - 1, d2 - 1] = val
        if not np.isnan(eps).any():
            atoms.info["epsilon_inf"] = eps
    prov: dict[str, object] = {"code": "abinit"}
    if m := re.search(r"\.Version\s+(\S+)\s+of ABINIT", text):
        prov["code_version"] = m.group(1)
    if m := re.search(r"Overall time at end \(sec\) : cpu=\s*(\S+)\s+wall=\s*(\S+)", text):
        prov["wall_time_s"] = float(m.group(2))
    for name in ("ecut", "kptrlatt", "shiftk", "ixc", "nband"):
        tok = _pick(ov, name)
        if tok is not None:
            prov[name] = _numbers(tok).tolist()
    atoms.info["provenance"] = json.dumps(prov)
    return atoms


def read_ddb_elements(path: str | os.PathLike) -> dict[tuple[int, int, int, int], float]:
    """The non-stationary 2nd-derivative block of an ABINIT DDB text file, in reduced
    coordinates: ``{(dir1, pert1, dir2, pert2): real part}``."""
    header = "2nd derivatives (non-stat.)"
    text = Path(path).read_text(errors="replace")
    if header not in text:
        raise DataError(str(path), f"no '{header}' block")
    rows = _ddb_block(re.sub(r"D([-+])", r"E\1", text), header)  # Fortran D exponents
    return {(d1, p1, d2, p2): v for d1, p1, d2, p2, v in rows}


def born_charges_from_ddb(
    elements: dict[tuple[int, int, int, int], float], cell: np.ndarray, zion: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Z*[atom, field, displacement] and ε∞ from DDB elements of the electric-field response.

    ABINIT's DDB holds the mixed derivatives in reduced coordinates: atomic displacements along
    the primitive vectors R (columns, bohr), fields along 2π·G (G = R⁻ᵀ). In Cartesian terms
    Z*_κβα = zion_κ δ_αβ + Σ_ij G_αi D(i κ, j E) R_βj / 2π and
    ε∞ = 1 − (4π/Ω) R D(E, E) Rᵀ / 4π², which is what ABINIT prints for a full run (test).
    """
    natom = len(zion)
    efield = natom + 2
    r = np.asarray(cell, float).T / BOHR_A
    g = np.linalg.inv(r).T
    try:
        zr = np.array(
            [
                [[elements[(i + 1, k + 1, j + 1, efield)] for j in range(3)] for i in range(3)]
                for k in range(natom)
            ]
        )
        er = np.array(
            [[elements[(i + 1, efield, j + 1, efield)] for j in range(3)] for i in range(3)]
        )
    except KeyError as exc:
        raise DataError(
            "<DDB>", f"missing element {exc.args[0]} (all three field directions needed)"
        ) from None
    z = np.einsum("ai,kij,bj->kba", g, zr, r) / (2 * np.pi)
    z += np.asarray(zion, float)[:, None, None] * np.eye(3)
    eps = np.eye(3) - r @ er @ r.T / (np.pi * abs(np.linalg.det(r)))
    return z, eps


def read_abinit_output(path: str | os.PathLike) -> Atoms:
    """Read an ABINIT main output file (``.abo``); see :func:`parse_abinit_output`."""
    try:
        text = Path(path).read_text(errors="strict")
    except UnicodeDecodeError:
        raise DataError(str(path), "not a text file (binary content)") from None
    return parse_abinit_output(text, str(path))


# ------------------------------------------------------------------------------------- VASP
def parse_vasp_born_block(text: str, natoms: int, source: str = "<OUTCAR>") -> np.ndarray:
    """The last ``BORN EFFECTIVE CHARGES`` block of an OUTCAR as Z[atom, field, displacement].

    VASP prints, for each ion, rows = field direction and columns = displacement (force)
    direction, which is the bornfield order.
    """
    heads = [m.start() for m in re.finditer(r"BORN EFFECTIVE CHARGES", text)]
    heads = [h for h in heads if "excluding" not in text[h : h + 80].splitlines()[0]]
    pos = heads[-1] if heads else -1
    if pos < 0:
        raise DataError(source, "no 'BORN EFFECTIVE CHARGES' block (LEPSILON/LCALCEPS not set?)")
    z = np.zeros((natoms, 3, 3))
    lines = iter(text[pos:].splitlines()[2:])
    try:
        for k in range(natoms):
            head = next(lines).split()
            if head[:2] != ["ion", str(k + 1)]:
                raise ValueError(f"expected 'ion {k + 1}', got {' '.join(head)!r}")
            for a in range(3):
                row = next(lines).split()
                z[k, a] = [float(x) for x in row[1:4]]
    except (StopIteration, ValueError, IndexError) as exc:
        raise DataError(source, f"malformed Born-charge block ({exc})") from None
    return z


def parse_vasp_epsilon(text: str) -> np.ndarray | None:
    """The last electronic dielectric tensor (``MACROSCOPIC STATIC DIELECTRIC TENSOR``)."""
    heads = [m.start() for m in re.finditer(r"MACROSCOPIC STATIC DIELECTRIC TENSOR \(", text)]
    heads = [
        h for h in heads if not re.search(r"IONIC|excluding", text[h : h + 90].splitlines()[0])
    ]
    if not heads:
        return None
    lines = text[heads[-1] :].splitlines()[2:5]
    return np.array([[float(x) for x in line.split()[:3]] for line in lines])


def read_vasp_outcar(path: str | os.PathLike) -> Atoms:
    """Last structure (with energy, forces, stress via ASE) plus Z* and ε∞ from a VASP OUTCAR."""
    from ase.io import read as ase_read

    path = Path(path)
    try:
        text = path.read_text()
        atoms = ase_read(path, index=-1, format="vasp-out")
    except UnicodeDecodeError:
        raise DataError(str(path), "not a text file (binary content)") from None
    except Exception as exc:
        raise DataError(str(path), f"not a readable OUTCAR ({type(exc).__name__}: {exc})") from None
    atoms.arrays["born_charges"] = parse_vasp_born_block(text, len(atoms), str(path))
    eps = parse_vasp_epsilon(text)
    if eps is not None:
        atoms.info["epsilon_inf"] = eps
    atoms.info["provenance"] = json.dumps({"code": "vasp", "source": path.name})
    from bornfield.data.io import canonicalize

    return canonicalize(atoms, str(path))


# ---------------------------------------------------------------------------------- phonopy
def read_phonopy_born(path: str | os.PathLike, structure: Atoms, symprec: float = 1e-5) -> Atoms:
    """ε∞ and Z* from a phonopy ``BORN`` file, expanded by symmetry onto ``structure``.

    phonopy's own parser does the symmetry expansion. phonopy stores Z[atom, field,
    displacement] (rows: field direction), the bornfield order.
    """
    from phonopy.file_IO import parse_BORN
    from phonopy.structure.atoms import PhonopyAtoms

    cell = PhonopyAtoms(
        symbols=structure.get_chemical_symbols(),
        cell=structure.cell[:],
        scaled_positions=structure.get_scaled_positions(),
    )
    try:
        params = parse_BORN(cell, symprec=symprec, filename=str(path))
    except Exception as exc:
        raise DataError(
            str(path), f"not a readable BORN file ({type(exc).__name__}: {exc})"
        ) from None
    if params is None or "born" not in params:
        raise DataError(str(path), "not a readable BORN file")
    atoms = structure.copy()
    atoms.calc = None
    atoms.arrays["born_charges"] = np.asarray(params["born"], dtype=float)
    atoms.info["epsilon_inf"] = np.asarray(params["dielectric"], dtype=float)
    atoms.info["provenance"] = json.dumps({"code": "phonopy BORN", "source": Path(path).name})
    return atoms
