"""The paper's figures 1–5 as PNG files, each from plain data (results.json or model files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from bornfield.analysis.dielectric import verdict_of
from bornfield.analysis.plotting import plt, save_png

AXES = "xyz"


def fig1_zstar_scans(
    bec: Path,
    structure: Atoms,
    elements: Sequence[str],
    amplitudes: Sequence[float],
    path: Path,
    dft_frames: Sequence[Atoms] | None = None,
) -> dict:
    """Z* diagonal of the displaced atom along z, one panel per element (Fig 1)."""
    from bornfield.analysis.bec_errors import scan, scan_plot

    syms = structure.get_chemical_symbols()
    atoms_shown = [syms.index(e) for e in elements if e in syms]
    if not atoms_shown:
        raise ValueError(f"none of {elements} in {structure.get_chemical_formula()}")
    data = {}
    zs = []
    for k in atoms_shown:
        mine = [f for f in dft_frames or [] if str(f.info.get("scan", "")).startswith(f"atom {k} ")]
        amps, z, dft = scan(bec, structure, k, "z", amplitudes, mine or None)
        zs.append(z[:, k])
        data[f"{syms[k]}{k}"] = {
            "amplitudes_A": amps.tolist(),
            "Z": z[:, k].tolist(),
            "dft": None if dft is None else dft[0].tolist(),
        }
    # one panel per displaced atom: its own Z* vs its own displacement
    z_all = np.zeros((len(amplitudes), len(atoms_shown), 3, 3))
    for i, z in enumerate(zs):
        z_all[:, i] = z
    scan_plot(
        np.asarray(amplitudes),
        z_all,
        path,
        list(range(len(atoms_shown))),
        [f"{syms[k]} (atom {k}) displaced along z" for k in atoms_shown],
        title="Fig 1: Z* along single-atom displacements",
    )
    return data


def fig2a_force_parity(
    ff: Path, data: Path, baselines: Sequence[str], path: Path, indices: Sequence[int] = ()
) -> dict:
    """Force parity of the model and foundation baselines on a labelled test set (Fig 2a).

    Baseline energies are compared after a per-element shift fitted on the file's other frames
    (on the test frames themselves when ``indices`` leaves none), as `bornfield evaluate ff`.
    """
    from bornfield.analysis.errors import ff_metrics, fit_energy_shift, force_parity_plot, predict
    from bornfield.data import io
    from bornfield.models.baselines import load_baseline
    from bornfield.models.force_field import load_calculator

    every = io.read(data)
    frames = [every[i] for i in indices] if indices else every
    rest = [a for i, a in enumerate(every) if i not in indices] if indices else []
    preds = {"bornfield MACE": predict(load_calculator(ff, dtype="float64"), frames)}
    metrics = {"bornfield MACE": ff_metrics(frames, preds["bornfield MACE"])}
    for b in baselines:
        calc = load_baseline(b)
        preds[b] = predict(calc, frames)
        ref = rest or frames
        shift = fit_energy_shift(ref, predict(calc, rest, False) if rest else preds[b])
        metrics[b] = ff_metrics(frames, preds[b], shift)
        metrics[b]["energy_shift_fitted_on"] = (
            f"{len(rest)} other frames of {Path(data).name}" if rest else "the test frames"
        )
    what = f"{len(frames)} frames of {Path(data).name}"
    force_parity_plot(frames, preds, path, title=f"Fig 2a: forces, {what}")
    return metrics


def fig2b_softmode(
    ff: Path, cell: Atoms, amplitudes: Sequence[float], path: Path, dft: Sequence[Atoms] = ()
) -> dict:
    """Energy along the polar soft mode of the cubic cell, model line over DFT points (Fig 2b).

    The line follows the model's softest z-polarized Γ mode. DFT frames carry their amplitude in
    ``info["softmode_u"]`` (``bornfield structures cubic --softmode FF``); the model is also
    evaluated on exactly those frames and its mean deviation from DFT reported.
    """
    from bornfield.analysis.dielectric import soft_mode_pattern
    from bornfield.label.generators import softmode_frames
    from bornfield.models.force_field import load_calculator

    calc = load_calculator(ff, dtype="float64")
    pattern = soft_mode_pattern(cell, calc)
    e = []
    for a in softmode_frames(cell, amplitudes, pattern):
        a.calc = calc
        e.append(a.get_potential_energy())
    e = np.asarray(e) - e[int(np.argmin(np.abs(amplitudes)))]
    fig, ax = plt.subplots(figsize=(4.4, 3.4))
    ax.plot(amplitudes, 1e3 * e, "-o", ms=3, label="bornfield MACE")
    out = {
        "amplitudes_A": list(map(float, amplitudes)),
        "model_meV": (1e3 * e).tolist(),
        "pattern": pattern.tolist(),
    }
    if dft:
        u = np.array([f.info["softmode_u"] for f in dft])
        ed = np.array([f.info["energy"] for f in dft])
        em = []
        for f in dft:  # the model on exactly the DFT structures (their pattern may differ)
            a = f.copy()
            a.calc = calc
            em.append(a.get_potential_energy())
        i0 = int(np.argmin(np.abs(u)))
        ed, em = ed - ed[i0], np.asarray(em) - em[i0]
        order = np.argsort(u)
        ax.plot(u[order], 1e3 * em[order], "x", color="C0", label="model on DFT frames")
        ax.plot(u, 1e3 * ed, "ks", mfc="none", label="DFT")
        out.update(
            dft_amplitudes_A=u.tolist(),
            dft_meV=(1e3 * ed).tolist(),
            model_on_dft_meV=(1e3 * em).tolist(),
            mae_vs_dft_meV=float(1e3 * np.abs(em - ed).mean()),
        )
    syms = cell.get_chemical_symbols()
    desc = ", ".join(f"{s} {pattern[i, 2]:+.2f}" for i, s in enumerate(syms))
    ax.set(xlabel="soft-mode amplitude u (Å, largest displacement)",
           ylabel="E − E(0) (meV / cell)")  # fmt: skip
    ax.set_title(f"Fig 2b: polar soft mode (z: {desc})", fontsize=8)
    ax.legend(fontsize=8)
    save_png(fig, path)
    return out


def fig3_polarization(static: dict, path: Path) -> None:
    """P_β(E_β) from relaxation in the field, ±x, ±y, ±z (Fig 3)."""
    e = np.asarray(static["fields_V_per_m"])
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for d, p in static["polarization_C_per_m2"].items():
        b = AXES.index(d.lstrip("+-"))
        sign = -1 if d.startswith("-") else 1
        ax.plot(
            sign * e / 1e6,
            np.asarray(p)[:, b],
            "-o",
            ms=3,
            color=f"C{b}",
            label=f"E ∥ {d.lstrip('+')}" if sign > 0 else None,
        )
    eps = np.diag(static["epsilon_ionic"])
    ax.set(
        xlabel="E (MV/m)",
        ylabel="P along E (C/m²)",
        title="Fig 3: static P(E); ε_ion = " + ", ".join(f"{x:.1f}" for x in eps),
    )
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=8)
    save_png(fig, path)


def fig4_phases(phases: dict, path: Path) -> None:
    """Pseudo-cubic lattice parameters and tilts vs T, space groups, Tc (Fig 4)."""
    t = np.asarray(phases["frame_T_K"])
    lat = np.asarray(phases["frame_pseudocubic_A"])
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5.0, 5.6), sharex=True)
    for k in range(3):
        ax.plot(t, lat[:, k], ".", ms=3, color=f"C{k}", label=f"{'abc'[k]}_pc")
    tc = phases.get("transition")
    tc = tc if tc and tc.get("significant", True) else None
    for a in (ax, ax2):
        if tc:
            a.axvspan(tc["Tc_K"] - tc["Tc_err_K"], tc["Tc_K"] + tc["Tc_err_K"], color="0.85")
            a.axvline(tc["Tc_K"], color="k", lw=0.8)
    ax.set(ylabel="pseudo-cubic a, b, c (Å)")
    title = "Fig 4: lattice vs T"
    if tc:
        title += f"; Tc = {tc['Tc_K']:.0f} ± {tc['Tc_err_K']:.0f} K (from the lower panel)"
    else:
        title += "; no transition resolved"
    ax.set_title(title)
    ax.legend(fontsize=8)
    n = phases.get("order_window_frames", 1)
    ax2.plot(t, phases["frame_order_parameter"], ".", ms=2, color="C3", alpha=0.3 if n > 1 else 1,
             label="per frame")  # fmt: skip
    if n > 1:  # the block means Tc is fitted to
        ps = phases.get("order_window_ps")
        span = f"{ps:g} ps" if ps else f"{n} frames"
        ax2.plot(phases["order_T_K"], phases["order_values"], "o-", ms=4, color="C3",
                 label=f"components averaged over {span}")  # fmt: skip
        ax2.legend(fontsize=7)
    ax2.set(xlabel="T (K)", ylabel=phases["order_parameter"])
    seq = phases["space_group_sequence"].get("0.1", [])
    span = max(np.ptp(t), 1e-9)
    for g, t0, t1 in seq:  # groups held over ≥ 8 % of the range (all of them: report.html)
        if t1 - t0 >= 0.08 * span:
            ax2.annotate(
                g.split(" ")[0], ((t0 + t1) / 2, ax2.get_ylim()[1] * 0.9), fontsize=7, ha="center"
            )
    save_png(fig, path)


def fig5_epsilon(dielectric: dict, path: Path, zero_t: dict | None = None) -> None:
    """Diagonal ionic ε vs T: finite field (filled), fluctuations (open), T = 0 (Fig 5).

    Temperatures whose estimates are not converged (``assessment``) are drawn faint."""
    fig, ax = plt.subplots(figsize=(4.8, 3.8))
    temps = sorted((float(k), v) for k, v in dielectric.items() if "error" not in v)
    ok = {t: verdict_of(v)["converged"] for t, v in temps}
    for i in range(3):
        c = f"C{i}"
        routes = (("finite_field", "o", 0, None), ("fluctuation", "s", 8, "none"))
        for route, fmt, dx, mfc in routes:
            pts = [(t, v[route]) for t, v in temps if route in v]
            for good in (True, False):
                sel = [(t, r) for t, r in pts if ok[t] is good]
                if not sel:
                    continue
                ax.errorbar(
                    [t + dx for t, _ in sel],
                    [r["epsilon_ionic"][i][i] for _, r in sel],
                    [r["epsilon_ionic_error"][i][i] for _, r in sel],
                    fmt=fmt,
                    mfc=mfc,
                    color=c,
                    alpha=1.0 if good else 0.3,
                    capsize=2,
                    label=f"ε_{AXES[i]}{AXES[i]} {route.replace('_', ' ')}" if good else None,
                )
        if zero_t:
            ax.plot([0], [zero_t["epsilon_ionic"][i][i]], "D", mfc="none", color=c, ms=7)
    title = "Fig 5: ε_ion(T); ◇ T = 0 (phonons)"
    if not all(ok.values()):
        title += "\nfaint: not converged (see report)"
    ax.set(xlabel="T (K)", ylabel="ionic ε", title=title)
    values = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    if values and max(values) > 10 * min(values):  # e.g. a soft T = 0 point over a flat ε(T)
        ax.set_yscale("log")
    ax.legend(fontsize=6, ncol=2)
    save_png(fig, path)
