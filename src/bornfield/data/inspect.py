"""Summaries of labelled datasets: what ``bornfield data inspect`` prints and plots."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.units import GPa

from bornfield.data.keys import KEYS
from bornfield.data.validate import asr_residual


@dataclass
class Summary:
    """Dataset statistics; ``str()`` gives the human-readable report."""

    source: str
    n_frames: int
    n_atoms: tuple[int, int]
    elements: dict[str, int]
    cell_lengths: tuple[np.ndarray, np.ndarray]
    labels: dict[str, int]
    energy_per_atom: tuple[float, float] | None = None
    force_abs: tuple[float, float, float] | None = None  # min, mean, max of |F|
    pressure_gpa: tuple[float, float] | None = None  # min, max of −tr(σ)/3
    wall_s: np.ndarray | None = None  # per frame, from the DFT provenance
    asr_residuals: np.ndarray | None = None
    zstar_diag: dict[str, np.ndarray] = field(default_factory=dict)  # element -> mean diag
    zstar_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    zstar_sites: dict[str, list[tuple[int, np.ndarray]]] = field(default_factory=dict)
    #: frames per DFT setting (code, functional, cutoff, k-mesh, from each frame's provenance)
    dft_settings: dict[str, int] = field(default_factory=dict)
    #: atom counts whose frames were labelled with more than one DFT setting (not comparable)
    mixed_settings: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        lo, hi = self.cell_lengths
        out = [
            f"{self.source}",
            f"  frames: {self.n_frames}   atoms per frame: {self.n_atoms[0]}–{self.n_atoms[1]}",
            "  elements: " + ", ".join(f"{el} {n}" for el, n in self.elements.items()),
            "  cell lengths (Å): "
            + "  ".join(f"{c} {a:.3f}–{b:.3f}" for c, a, b in zip("abc", lo, hi, strict=True)),
            "  labels: "
            + ", ".join(
                f"{k} [{KEYS[k].unit}] ({n}/{self.n_frames})" for k, n in self.labels.items()
            ),
        ]
        for setting, n in self.dft_settings.items():
            out.append(f"  DFT: {setting} ({n}/{self.n_frames})")
        if self.mixed_settings:
            out.append(
                "  WARNING: frames of "
                + ", ".join(map(str, self.mixed_settings))
                + " atoms were labelled with different DFT settings: their energies differ"
                " by more than the model error"
            )
        if self.energy_per_atom:
            out.append("  energy per atom (eV): {:.4f} … {:.4f}".format(*self.energy_per_atom))
        if self.force_abs:
            out.append("  |F| (eV/Å): min {:.3g}  mean {:.3g}  max {:.3g}".format(*self.force_abs))
        if self.pressure_gpa:
            out.append("  pressure −tr(σ)/3 (GPa): {:+.2f} … {:+.2f}".format(*self.pressure_gpa))
        if self.wall_s is not None and len(self.wall_s):
            w = self.wall_s
            out.append(
                f"  DFT wall time per frame (s): min {w.min():.0f}  median {np.median(w):.0f}"
                f"  max {w.max():.0f}  ({len(w)} frames, {w.sum() / 3600:.1f} h in all)"
            )
        if self.asr_residuals is not None:
            r = self.asr_residuals
            out.append(
                f"  ASR residual max_ab|Σ_k Z*| (e): max {r.max():.2e}  median {np.median(r):.2e}"
                f"  (frame {int(r.argmax())} worst)"
            )
        if self.zstar_diag:
            out.append(
                "  Z* mean diagonal (xx, yy, zz) and range of single diagonal components (e):"
            )
            for el, d in self.zstar_diag.items():
                lo_z, hi_z = self.zstar_range[el]
                out.append(
                    f"    {el:3s} ({d[0]:+.2f}, {d[1]:+.2f}, {d[2]:+.2f})"
                    f"   {lo_z:+.2f} … {hi_z:+.2f}"
                )
                for n_sites, diag in self.zstar_sites.get(el, []):
                    out.append(
                        f"      site of {n_sites} atoms:"
                        f" ({diag[0]:+.2f}, {diag[1]:+.2f}, {diag[2]:+.2f})"
                    )
        return "\n".join(out)


def _site_groups(atoms: Atoms, symprec: float = 0.1) -> np.ndarray | None:
    """Crystallographic orbit of each atom (spglib), or None if symmetry cannot be found."""
    import spglib

    ds = spglib.get_symmetry_dataset(
        (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), symprec=symprec
    )
    return None if ds is None else np.asarray(ds.crystallographic_orbits)


def summarize(frames: Sequence[Atoms], source: str = "<frames>") -> Summary:
    """Collect counts, ranges, ASR residuals and per-element / per-site Z* statistics."""
    symbols = [s for a in frames for s in a.get_chemical_symbols()]
    elements = {el: symbols.count(el) for el in dict.fromkeys(symbols)}
    lengths = np.array([a.cell.lengths() for a in frames])
    labels = {}
    for name, key in KEYS.items():
        n = sum(name in (a.arrays if key.where == "arrays" else a.info) for a in frames)
        if n:
            labels[name] = n
    s = Summary(
        source=source,
        n_frames=len(frames),
        n_atoms=(min(map(len, frames)), max(map(len, frames))),
        elements=elements,
        cell_lengths=(lengths.min(axis=0), lengths.max(axis=0)),
        labels=labels,
    )
    _add_dft_settings(s, frames)
    e = [a.info["energy"] / len(a) for a in frames if "energy" in a.info]
    if e:
        s.energy_per_atom = (min(e), max(e))
    f = [np.linalg.norm(a.arrays["forces"], axis=1) for a in frames if "forces" in a.arrays]
    if f:
        fa = np.concatenate(f)
        s.force_abs = (float(fa.min()), float(fa.mean()), float(fa.max()))
    p = [pressure_gpa(a) for a in frames if "stress" in a.info]
    if p:
        s.pressure_gpa = (min(p), max(p))
    w = [t for t in map(_wall_s, frames) if t is not None]
    if w:
        s.wall_s = np.array(w)
    with_z = [a for a in frames if "born_charges" in a.arrays]
    if with_z:
        s.asr_residuals = np.array([asr_residual(a.arrays["born_charges"]) for a in with_z])
        z_sym = np.concatenate([a.get_chemical_symbols() for a in with_z])
        diag = np.concatenate(
            [np.diagonal(a.arrays["born_charges"], axis1=1, axis2=2) for a in with_z]
        )
        for el in dict.fromkeys(z_sym):
            d = diag[z_sym == el]
            s.zstar_diag[el] = d.mean(axis=0)
            s.zstar_range[el] = (float(d.min()), float(d.max()))
        _add_site_means(s, with_z)
    return s


def pressure_gpa(atoms: Atoms) -> float:
    """Pressure −tr(σ)/3 in GPa from the stored stress (ASE sign: positive σ is tensile)."""
    return float(-np.trace(np.reshape(atoms.info["stress"], (3, 3))) / 3 / GPa)


def _provenance(atoms: Atoms) -> dict:
    try:
        prov = json.loads(atoms.info["provenance"])
    except (KeyError, TypeError, ValueError):
        return {}
    return prov if isinstance(prov, dict) else {}


def _wall_s(atoms: Atoms) -> float | None:
    t = _provenance(atoms).get("wall_time_s")
    return None if t is None else float(t)


@dataclass
class FrameRow:
    """One frame's labels in the units of a dataset card."""

    index: int
    label_id: int | None
    n_atoms: int
    energy: float | None  # eV
    force_mean: float | None  # mean |F_iα| over components, eV/Å
    force_max: float | None  # largest |F_iα|, eV/Å
    pressure: float | None  # GPa
    asr: float | None  # max_ab |Σ_k Z*_k,ab|, e
    epsilon_diag: np.ndarray | None
    wall_s: float | None
    cpu_s: float | None = None  # over all MPI ranks
    stage_wall_s: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        def f(v: float | None, fmt: str) -> str:
            return "—" if v is None else format(v, fmt)

        eps = "—" if self.epsilon_diag is None else "/".join(f"{e:.2f}" for e in self.epsilon_diag)
        lid = "—" if self.label_id is None else str(self.label_id)
        return (
            f"{self.index:5d} {lid:>5s} {self.n_atoms:4d} {f(self.energy, '.3f'):>12s}"
            f" {f(self.force_mean, '.2f'):>6s} {f(self.force_max, '.2f'):>6s}"
            f" {f(self.pressure, '+.2f'):>7s} {f(self.asr, '.3f'):>6s} {eps:>14s}"
            f" {f(self.wall_s, '.0f'):>7s} {f(self.cpu_s, '.0f'):>7s}"
        )


FRAME_HEADER = (
    "frame    id    N   energy(eV)  <|F|>  max|F|  P(GPa)    ASR     ε∞ diagonal  wall(s)  cpu(s)"
)


def frame_rows(frames: Sequence[Atoms]) -> list[FrameRow]:
    """Per-frame energy, force components, pressure, raw ASR residual, ε∞ and DFT wall and CPU
    time (from the provenance, where recorded)."""
    rows = []
    for i, a in enumerate(frames):
        f = np.abs(a.arrays["forces"]) if "forces" in a.arrays else None
        z = a.arrays.get("born_charges")
        eps = a.info.get("epsilon_inf")
        lid = a.info.get("label_id")
        prov = _provenance(a)
        stages = prov.get("stage_wall_s") or {}
        cpu = prov.get("cpu_time_s")
        rows.append(
            FrameRow(
                index=i,
                label_id=None if lid is None else int(lid),
                n_atoms=len(a),
                energy=float(a.info["energy"]) if "energy" in a.info else None,
                force_mean=None if f is None else float(f.mean()),
                force_max=None if f is None else float(f.max()),
                pressure=pressure_gpa(a) if "stress" in a.info else None,
                asr=None if z is None else asr_residual(z),
                epsilon_diag=None if eps is None else np.diag(np.reshape(eps, (3, 3))),
                wall_s=_wall_s(a),
                cpu_s=None if cpu is None else float(cpu),
                stage_wall_s={k: float(v) for k, v in stages.items()},
            )
        )
    return rows


def _dft_setting(atoms: Atoms) -> str | None:
    """One frame's DFT setting as the importer read it from the output (functional, cutoff,
    k-mesh), or None without such provenance."""
    prov = _provenance(atoms)
    try:
        ecut = float(np.ravel(prov["ecut"])[0])
        k = np.reshape(prov["kptrlatt"], (3, 3)).astype(int)
        mesh = "×".join(map(str, np.diag(k))) if (k == np.diag(np.diag(k))).all() else str(k)
        return f"{prov['code']} {prov['functional']}, ecut {ecut:g} Ha, k-mesh {mesh}"
    except (KeyError, TypeError, ValueError):
        return None


def _add_dft_settings(s: Summary, frames: Sequence[Atoms]) -> None:
    """Count frames per DFT setting; flag cell sizes labelled with more than one."""
    by_size: dict[int, set[str]] = {}
    for a in frames:
        setting = _dft_setting(a)
        if setting is not None:
            s.dft_settings[setting] = s.dft_settings.get(setting, 0) + 1
            by_size.setdefault(len(a), set()).add(setting)
    s.mixed_settings = sorted(n for n, found in by_size.items() if len(found) > 1)


def _add_site_means(s: Summary, frames: Sequence[Atoms]) -> None:
    """Per-site mean diagonal where one element sits on several inequivalent sites (same cell)."""
    ref = frames[0]
    if any(len(a) != len(ref) or (a.numbers != ref.numbers).any() for a in frames):
        return
    orbits = _site_groups(ref)
    if orbits is None:
        return
    diag = np.mean(
        [np.diagonal(a.arrays["born_charges"], axis1=1, axis2=2) for a in frames], axis=0
    )
    symbols = np.array(ref.get_chemical_symbols())
    for el in s.zstar_diag:
        reps = sorted(set(orbits[symbols == el]))
        if not 1 < len(reps) <= 4:
            continue
        sites = [(int((orbits == r).sum()), diag[orbits == r].mean(axis=0)) for r in reps]
        if max(np.abs(a[1] - b[1]).max() for a in sites for b in sites) > 0.1:
            s.zstar_sites[el] = sites


def plot_summary(frames: Sequence[Atoms], path: str | os.PathLike, title: str = "") -> None:
    """Histograms of energy per atom, |F| and diagonal Z* per element, as one PNG (atomic write)."""
    from bornfield.analysis.plotting import plt, save_png

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    e = np.array([a.info["energy"] / len(a) for a in frames if "energy" in a.info])
    if len(e):
        axes[0].hist(1e3 * (e - e.min()), bins=30, color="C0")
        axes[0].set_xlabel(f"energy per atom above the lowest ({e.min():.3f} eV), meV")
    else:
        axes[0].text(0.5, 0.5, "no energies", ha="center", transform=axes[0].transAxes)
    with_f = [a for a in frames if "forces" in a.arrays]
    if with_f:
        f_sym = np.concatenate([a.get_chemical_symbols() for a in with_f])
        f = np.concatenate([np.linalg.norm(a.arrays["forces"], axis=1) for a in with_f])
        bins = np.linspace(0, f.max() or 1.0, 41)
        for el in dict.fromkeys(f_sym):
            axes[1].hist(f[f_sym == el], bins=bins, histtype="step", lw=1.5, label=el)
        axes[1].legend()
    else:
        axes[1].text(0.5, 0.5, "no forces", ha="center", transform=axes[1].transAxes)
    axes[1].set_xlabel("|F| (eV/Å)")
    with_z = [a for a in frames if "born_charges" in a.arrays]
    if with_z:
        z_sym = np.concatenate([a.get_chemical_symbols() for a in with_z])
        diag = np.concatenate(
            [np.diagonal(a.arrays["born_charges"], axis1=1, axis2=2) for a in with_z]
        )
        zbins = np.linspace(diag.min() - 0.05, diag.max() + 0.05, 61)  # shared by all elements
        for el in dict.fromkeys(z_sym):
            axes[2].hist(diag[z_sym == el].ravel(), bins=zbins, alpha=0.6, label=el)
        axes[2].legend()
    else:
        axes[2].text(0.5, 0.5, "no Z* labels", ha="center", transform=axes[2].transAxes)
    axes[2].set_xlabel("diagonal Z* (e)")
    for ax in axes:
        ax.set_ylabel("count")
    fig.suptitle(title)
    save_png(fig, path, dpi=120)
