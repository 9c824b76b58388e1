"""`bornfield report`: figures 1–5 (PNG) and report.html from a pipeline output directory."""

from __future__ import annotations

import datetime
import html
import json
import platform
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms

from bornfield.analysis.dielectric import verdict_of
from bornfield.report import figures as F

FIGURES = {
    "fig1_zstar_scans.png": "Fig 1 — Born charges along single-atom displacements",
    "fig2a_force_parity.png": "Fig 2a — force parity against DFT, with foundation baselines",
    "fig2b_softmode.png": "Fig 2b — energy along the polar soft mode",
    "fig3_polarization.png": "Fig 3 — static P(E) from relaxation in a field",
    "fig4_phases.png": "Fig 4 — lattice parameters, tilts and space groups vs T",
    "fig5_epsilon.png": "Fig 5 — ionic dielectric tensor vs T",
}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("bornfield", "torch", "mace-torch", "e3nn", "ase", "phonopy", "spglib", "dask"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _matrix(m, err=None) -> str:
    m = np.asarray(m, dtype=float)
    e = None if err is None else np.asarray(err, dtype=float)
    rows = []
    for i in range(3):
        cells = [
            f"{m[i, j]:.2f}"
            + ("" if e is None or not np.isfinite(e[i, j]) else f" ± {e[i, j]:.2f}")
            for j in range(3)
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table class='m'>" + "".join(rows) + "</table>"


def _tc_text(what: str, tc: dict) -> str:
    if not tc:
        from bornfield.analysis.phases import MIN_POINTS

        return f"{what}: no fit (fewer than {MIN_POINTS} points)"
    p = f" (p = {tc['p_value']:.1g})" if "p_value" in tc else ""
    if not tc.get("significant", True):
        shape = "" if tc.get("ordering", True) else "; the kink is no vanishing order parameter"
        return f"{what}: no transition resolved{p}{shape}"
    return f"Tc from {what} = {tc['Tc_K']:.0f} ± {tc['Tc_err_K']:.0f} K{p}"


def make_figures(cfg, out: Path, results: dict, ff: Path, bec: Path, relaxed: Atoms, log) -> dict:
    """Draw every figure whose inputs exist; returns {file: None or the reason it is missing}."""
    from bornfield.data import io
    from bornfield.label.generators import CUBIC_A, cubic_perovskite
    from bornfield.pipeline import ff_file

    status: dict[str, str | None] = {}
    figdata: dict = {}
    rep = cfg.report

    def attempt(name: str, fn) -> None:
        try:
            fn()
            status[name] = None
        except Exception as exc:  # a missing figure must not lose the rest of the report
            status[name] = f"{type(exc).__name__}: {exc}"
            log(f"report: {name} not drawn ({status[name]})")
            (out / f"{name}.error.txt").write_text(traceback.format_exc())

    def fig1():
        dft = io.read(cfg.path(rep.dft_scan)) if rep.dft_scan else None
        figdata["fig1"] = F.fig1_zstar_scans(
            bec, relaxed, rep.scan_atoms, rep.scan_amplitudes, out / "fig1_zstar_scans.png", dft
        )

    def fig2a():
        if not rep.parity_data:
            raise FileNotFoundError("no [report] parity_data (a labelled test set) given")
        figdata["fig2a"] = F.fig2a_force_parity(
            ff_file(ff, md=False),
            cfg.path(rep.parity_data),
            rep.baselines,
            out / "fig2a_force_parity.png",
            rep.parity_indices,
        )

    def fig2b():
        from collections import Counter
        from math import gcd

        dft = io.read(cfg.path(rep.softmode_data)) if rep.softmode_data else ()
        system = dft[0] if dft else relaxed  # the DFT scan's material, else the run's
        counts = Counter(system.get_chemical_symbols())
        g = gcd(*counts.values())
        unit = {k: v // g for k, v in counts.items()}
        formula = next(
            (f for f in CUBIC_A if Counter(Atoms(f).get_chemical_symbols()) == unit), None
        )
        if formula is None:
            raise ValueError(f"no cubic perovskite cell known for {system.get_chemical_formula()}")
        model = cfg.path(rep.softmode_ff) if rep.softmode_ff else ff
        figdata["fig2b"] = F.fig2b_softmode(
            ff_file(model, md=False),
            cubic_perovskite(formula),
            rep.softmode_amplitudes,
            out / "fig2b_softmode.png",
            dft,
        )
        figdata["fig2b"]["model"] = str(model)

    def fig3():
        if not results.get("static"):
            raise ValueError("static response disabled")
        F.fig3_polarization(results["static"], out / "fig3_polarization.png")

    def fig4():
        ph = results.get("phases")
        if not ph or "error" in ph:
            raise ValueError((ph or {}).get("error", "heating run disabled"))
        F.fig4_phases(ph, out / "fig4_phases.png")

    def fig5():
        if not results.get("dielectric"):
            raise ValueError("finite-temperature runs disabled")
        F.fig5_epsilon(results["dielectric"], out / "fig5_epsilon.png", results.get("phonon"))

    for name, fn in [
        ("fig1_zstar_scans.png", fig1),
        ("fig2a_force_parity.png", fig2a),
        ("fig2b_softmode.png", fig2b),
        ("fig3_polarization.png", fig3),
        ("fig4_phases.png", fig4),
        ("fig5_epsilon.png", fig5),
    ]:
        attempt(name, fn)
    (out / "figures.json").write_text(json.dumps(figdata, indent=1, default=float))
    return status


def write_report(
    cfg,
    out: Path,
    results: dict,
    ff: Path,
    bec: Path,
    relaxed: Atoms,
    log: Callable[[str], None] = print,
) -> Path:
    """Figures + report.html in ``out``."""
    status = make_figures(cfg, out, results, ff, bec, relaxed, log)
    esc = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>bornfield report</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 6px}"
        "table.m td{border:none;text-align:right}img{max-width:100%}</style>",
        f"<h1>bornfield: {esc(results['system']['formula'])} "
        f"({results['system']['atoms']} atoms)</h1>",
        f"<p>{datetime.datetime.now().isoformat(timespec='seconds')} on "
        f"{esc(platform.node())}; numbers in <code>results.json</code>.</p>",
    ]
    st, ph = results.get("static"), results.get("phonon")
    if st or ph:
        parts.append("<h2>Zero-temperature ionic dielectric tensor</h2><table><tr>")
        if st:
            parts.append(
                f"<th>static slope (E ≤ {max(st['linear_fit_fields_V_per_m']):.2g} V/m)</th>"
            )
        if ph:
            parts.append("<th>Γ phonon mode sum</th>")
        parts.append("</tr><tr>")
        if st:
            parts.append(f"<td>{_matrix(st['epsilon_ionic'])}</td>")
        if ph:
            parts.append(f"<td>{_matrix(ph['epsilon_ionic'])}</td>")
        parts.append("</tr></table>")
        if st:
            onset = {k: v for k, v in st["nonlinear_onset_V_per_m"].items() if v}
            parts.append(
                f"<p>Nonlinearity (> {100 * st['nonlinear_tolerance']:.0f} % from the "
                f"linear fit) sets in at: {esc(str(onset or 'not within the fields'))}.</p>"
            )
        if ph and ph["unstable_modes_w2"]:
            parts.append(
                f"<p>Unstable Γ modes (ω² in eV/Å²/amu): {ph['unstable_modes_w2']} — "
                "left out of the mode sum.</p>"
            )
        if ph and ph.get("soft_modes_w2"):
            parts.append(
                f"<p>Soft Γ modes (|ω²| ≤ 1e-3 eV/Å²/amu, below 0.49 THz): "
                f"{ph['soft_modes_w2']} — left out of the mode sum, which is then a lower "
                "bound.</p>"
            )
    diel = results.get("dielectric") or {}
    if diel:
        parts.append(
            "<h2>Finite temperature</h2><table><tr><th>T (K)</th><th>cell (Å³)</th>"
            "<th>finite field ε_ion</th><th>fluctuation ε_ion</th>"
            "<th>agree within 2σ</th><th>linear (±E)</th><th>converged</th></tr>"
        )
        for t, v in diel.items():
            if "error" in v:
                parts.append(f"<tr><td>{t}</td><td colspan=6>{esc(v['error'])}</td></tr>")
                continue
            cell = v.get("cell") or {}
            cell_cell = "-"
            if "volume_A3" in cell:
                cell_cell = f"{cell['volume_A3']:.1f}<small><br>{esc(cell['cell'])}"
                if "volume_change" in cell:
                    cell_cell += f" ({100 * cell['volume_change']:+.1f} % from 0 K)"
                cell_cell += "</small>"
            ffe, fl = v.get("finite_field"), v["fluctuation"]
            agree = np.asarray(v["agreement"]["agree"]) if "agreement" in v else None
            ff_cell = _matrix(ffe["epsilon_ionic"], ffe["epsilon_ionic_error"]) if ffe else "-"
            verdict = verdict_of(v)
            verdict_cell = "yes" if verdict["converged"] else "<b>no</b>"
            if verdict["reasons"]:
                verdict_cell += "<small><br>" + "<br>".join(esc(r) for r in verdict["reasons"])
                verdict_cell += "<br>run longer (dielectric.steps) or pick another T</small>"
            if verdict.get("zero_field_P_shift_C_per_m2"):
                p0 = np.round(verdict["zero_field_P_shift_C_per_m2"], 3).tolist()
                verdict_cell += f"<small><br>zero-field ⟨P⟩ = {p0} C/m² from the reference</small>"
            parts.append(
                f"<tr><td>{t}</td><td>{cell_cell}</td><td>{ff_cell}</td>"
                f"<td>{_matrix(fl['epsilon_ionic'], fl['epsilon_ionic_error'])}</td>"
                f"<td>{'-' if agree is None else f'{int(agree.sum())}/9 components'}</td>"
                f"<td>{esc(str(ffe['linear'])) if ffe else '-'}</td><td>{verdict_cell}</td></tr>"
            )
        parts.append("</table>")
    phs = results.get("phases")
    if phs and "error" not in phs:
        tc, tl = phs["transition"], phs.get("transition_from_lattice") or {}
        ps = phs.get("order_window_ps")
        what = phs["order_parameter"] + (f", components averaged over {ps:g} ps" if ps else "")
        wps = phs.get("window_ps")
        parts.append(
            f"<h2>Phases</h2><p>{_tc_text(what, tc)}; "
            f"{_tc_text('lattice anisotropy', tl)}."
            f"</p><p>Space groups of {f'{wps:g}-ps ' if wps else ''}time-averaged windows"
            " (tolerance 0.1 Å): "
            + esc(
                ", ".join(
                    f"{g} {a:.0f}–{b:.0f} K"
                    for g, a, b in phs["space_group_sequence"].get("0.1", [])
                )
            )
            + "</p>"
        )
    parts.append("<h2>Figures</h2>")
    for name, caption in FIGURES.items():
        if status.get(name) is None and (out / name).exists():
            parts.append(f"<h3>{esc(caption)}</h3><img src='{name}' alt='{esc(caption)}'>")
        else:
            parts.append(
                f"<h3>{esc(caption)}</h3><p><i>not drawn: {esc(str(status.get(name)))}</i></p>"
            )
    runs = results.get("md_runs") or []
    if runs:
        parts.append(
            "<h2>MD runs</h2><table><tr><th>run</th><th>steps</th><th>ms/step</th>"
            "<th>ns/day</th><th>directory</th></tr>"
        )
        for r in runs:
            if "error" in r:
                parts.append(
                    f"<tr><td>{esc(r['name'])}</td><td colspan=4>{esc(r['error'])}</td></tr>"
                )
            else:
                parts.append(
                    f"<tr><td>{esc(r['name'])}</td><td>{r['steps_done']}</td>"
                    f"<td>{r['ms_per_step']:.1f}</td><td>{r['ns_per_day']:.3f}</td>"
                    f"<td>{esc(r['out'])}</td></tr>"
                )
        parts.append("</table>")
    cards = []
    for label, p in (("force field", ff), ("Born charges", bec)):
        card = (p / "CARD.md") if p.is_dir() else None
        cards.append(
            f"<li>{label}: <code>{esc(str(p))}</code> (sha256 "
            f"{esc(results['models'].get('ff_sha' if label == 'force field' else 'bec_sha', ''))})"
            + (f", card <code>{esc(str(card))}</code>" if card and card.exists() else "")
            + "</li>"
        )
    if cfg.report.softmode_ff:
        sm = esc(str(cfg.report.softmode_ff))
        cards.append(f"<li>Fig 2b force field: <code>{sm}</code></li>")
    eps_inf = results.get("eps_inf")
    if eps_inf:
        cards.append(
            f"<li>ε∞ added to the ionic part: {_matrix(eps_inf['tensor'])} "
            f"from {esc(eps_inf['source'])}</li>"
        )
    parts.append("<h2>Provenance</h2><ul>" + "".join(cards) + "</ul>")
    parts.append(
        "<p>Software: " + esc(", ".join(f"{k} {v}" for k, v in _versions().items())) + "</p>"
    )
    parts.append(
        "<h3>Configuration</h3><pre>"
        + esc((out / "config.json").read_text() if (out / "config.json").exists() else "")
        + "</pre>"
    )
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
