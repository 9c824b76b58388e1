"""The MD check of a force-field model card: NpT runs of Pnma CaTiO3 at three temperatures.

A force field trained on a few tilted cells can fit its test frames and still blow up or lose
Pnma in MD. Before a CaTiO3 model ships, this runs `bornfield md --structure pnma --supercell
2x1x2 --ensemble npt` (80 atoms, zero field, the shipped Z* model for the polarization columns)
at each temperature, side by side (one torch thread each), and reports per run: blow-up or not,
mean T and pressure and cell over the last two thirds, the pseudo-cubic (V/16)^⅓, mean |tilt|
per pseudo-cubic axis over the last half, and the space group of the last half's time-averaged
structure. A finished run is reused (the `md` command resumes), so a rerun only tabulates.

    python bench/ff_md_check.py [--ff models/catio3/ff] [--temperatures 300,900,1500]
        [--steps 5000] [--work /work/runs/mdcheck]

Writes bench/results/ff_md_check.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from results_md import write_results_md

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def command(ff: str, bec: str, temperature: float, steps: int, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "bornfield.cli", "md", "--structure", "pnma", "--supercell", "2x1x2",
        "--ff", ff, "--bec", bec, "--temperature", f"{temperature:g}", "--ensemble", "npt",
        "--steps", str(steps), "--timestep", "2", "--seed", "0", "--log-interval", "10",
        "--traj-interval", "50", "--out", str(out),
    ]  # fmt: skip


def analyse(run: Path, n_formula: int = 16) -> dict:
    """Means over the run's last two thirds (observables) and last half (trajectory frames)."""
    from ase.io import read

    from bornfield.analysis.dielectric import read_observables
    from bornfield.analysis.phases import pseudocubic_axes, space_group, tilt_angles, time_average

    last = read_observables(run, discard=1 / 3)
    frames = read(run / "trajectory.xyz", ":")
    half = frames[len(frames) // 2 :]
    tilts = np.array([np.abs(tilt_angles(a, pseudocubic_axes(a))) for a in half])
    return {
        "steps": int(last["step"][-1]),
        "T_K": round(float(last["temperature_K"].mean()), 1),
        "pressure_GPa": round(float(last["pressure_GPa"].mean()), 3),
        "cell_A": [round(float(last[c].mean()), 3) for c in ("a_A", "b_A", "c_A")],
        "pseudocubic_A": round(float((last["volume_A3"].mean() / n_formula) ** (1 / 3)), 4),
        "tilt_deg": tilts.mean(axis=0).round(2).tolist(),
        "space_group_time_average": space_group(time_average(half)),
        "frames_averaged": len(half),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ff", default=str(ROOT / "models/catio3/ff"))
    p.add_argument("--bec", default=str(ROOT / "models/catio3/bec"))
    p.add_argument("--temperatures", default="300,900,1500")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--work", default="/work/runs/mdcheck")
    args = p.parse_args()
    temps = [float(t) for t in args.temperatures.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = {}
    for t in temps:
        log = open(work / f"T{t:g}.log", "a")
        cmd = command(args.ff, args.bec, t, args.steps, work / f"T{t:g}")
        procs[t] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    rows = []
    for t, (proc, log) in procs.items():
        rc = proc.wait()
        log.close()
        text = (work / f"T{t:g}.log").read_text()
        # the step cost of the run that did the work (a resumed, finished run reports 0)
        cost = [float(x) for x in re.findall(r"steps, ([\d.]+) ms/step", text) if float(x) > 0]
        row = {"T_target_K": t, "exit_code": rc, "ms_per_step": cost[-1] if cost else None,
               "last_log_line": text.strip().splitlines()[-1] if text.strip() else ""}  # fmt: skip
        if (work / f"T{t:g}" / "observables.csv").exists():
            row |= analyse(work / f"T{t:g}")
        rows.append(row)
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, {len(temps)} runs × 1 thread",
        "date": datetime.date.today().isoformat(),
        "ff": args.ff,
        "bec": args.bec,
        "steps": args.steps,
    }
    (RESULTS / "ff_md_check.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# Force-field MD check: NpT Pnma CaTiO3, 80 atoms ({meta['machine']}, {meta['date']})",
        "",
        f"`bench/ff_md_check.py`: ff `{Path(args.ff).name}` ({args.ff}), {args.steps} steps of "
        "2 fs, zero field, P = 0; means over the last two thirds (T, P, cell) and the last half "
        "(|tilt| per pseudo-cubic axis, space group of the time-averaged structure at spglib "
        "tolerances 0.01 / 0.05 / 0.1 / 0.2 Å).",
        "",
        "| T target (K) | finished | ⟨T⟩ (K) | ⟨P⟩ (GPa) | a × b × c (Å) | (V/16)^⅓ (Å) "
        "| ⟨|tilt|⟩ (°) | space group, time average | ms per step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = "yes" if r["exit_code"] == 0 else f"no (exit {r['exit_code']})"
        if "T_K" not in r:
            lines.append(f"| {r['T_target_K']:g} | {ok} | – | – | – | – | – | – | "
                         f"{r['last_log_line']} |")  # fmt: skip
            continue
        sg = " / ".join(g.split(" ")[0] for g in r["space_group_time_average"].values())
        lines.append(
            f"| {r['T_target_K']:g} | {ok} | {r['T_K']:.0f} | {r['pressure_GPa']:.2f} "
            f"| {' × '.join(f'{x:.3f}' for x in r['cell_A'])} | {r['pseudocubic_A']:.3f} "
            f"| {' / '.join(f'{x:.1f}' for x in r['tilt_deg'])} | {sg} | {r['ms_per_step']} |"
        )
    write_results_md(RESULTS / "ff_md_check.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
