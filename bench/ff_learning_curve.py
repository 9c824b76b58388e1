"""Force-field learning curve (issue: force field, goal BaTiO3 force MAE <= 7.5 meV/Å, 10× below
SevenNet-0's 75): is the goal a matter of data or of the model?

Runs `bornfield evaluate ff --learning-curve` (nested training sets drawn from one seeded order,
one fixed 20 % test split; a preset, float32 training by default) and fits the force MAE to a
power law, MAE = A n^-b, over the sizes. The fit says how many training frames of the same kind
the preset would need for the goal, if the curve kept its slope. Every size trains in its own
directory under --work and resumes there. Writes bench/results/ff_learning_curve.{json,md}
(machine and date) and the log-log plot.

    python bench/ff_learning_curve.py --data ../shared/data/batio3-allegro-pol/BaTiO3.xyz
        [--sizes 6,12,24,47] [--preset fast] [--dtype float32] [--threads 2] [--goal 7.5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from results_md import write_results_md

RESULTS = Path(__file__).resolve().parent / "results"


def power_law(n: np.ndarray, mae: np.ndarray) -> tuple[float, float]:
    """(A, b) of MAE = A n^-b, least squares in log-log."""
    slope, icpt = np.polyfit(np.log(n), np.log(mae), 1)
    return float(np.exp(icpt)), float(-slope)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--sizes", default="6,12,24,47")
    p.add_argument("--preset", default="fast")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--epochs", type=int, help="default: the preset's")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--goal", type=float, default=7.5, help="force MAE goal (meV/Å)")
    p.add_argument("--work", default="/tmp/bornfield_ff_lc")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t)
    cmd = [sys.executable, "-m", "bornfield.cli", "evaluate", "ff", "--data", args.data,
           "--learning-curve", args.sizes, "--preset", args.preset, "--dtype", args.dtype,
           "--out", str(work), "--json", str(work / "lc.json")]  # fmt: skip
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    subprocess.run(cmd, env=env, check=True)
    rows = json.loads((work / "lc.json").read_text())["learning_curve"]
    cards = {r["n_train"]: json.loads((work / f"n{r['n_train']}" / "card.json").read_text())
             for r in rows}  # fmt: skip
    n = np.array([r["n_train"] for r in rows], float)
    f = np.array([r["force_mae_meV_per_A"] for r in rows])
    a, b = power_law(n, f)
    a2, b2 = power_law(n[-3:], f[-3:]) if len(n) > 3 else (a, b)
    need = (a / args.goal) ** (1 / b) if b > 0 else float("inf")
    need2 = (a2 / args.goal) ** (1 / b2) if b2 > 0 else float("inf")
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, {args.threads} torch thread(s)",
        "date": datetime.date.today().isoformat(),
        "data": args.data,
        "preset": args.preset,
        "dtype": args.dtype,
        "epochs_run": {k: c["epochs_run"] for k, c in cards.items()},
        "train_wall_s": {k: c["wall_time_s"] for k, c in cards.items()},
        "fit_all": {"A": a, "b": b, "frames_for_goal": need},
        "fit_last3": {"A": a2, "b": b2, "frames_for_goal": need2},
        "goal_force_mae_meV_per_A": args.goal,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ff_learning_curve.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=1)
    )
    shutil.copyfile(work / "learning_curve.png", RESULTS / "ff_learning_curve.png")
    lines = [
        f"# Force-field learning curve ({meta['machine']}, {meta['date']})",
        "",
        f"Data {args.data}; preset `{args.preset}`, trained in {args.dtype}, evaluated in "
        f"float64 on the same {rows[0]['n_test']} held-out frames; training sets nested.",
        "",
        "| training frames | E MAE (meV/atom) | F MAE (meV/Å) | F RMSE (meV/Å) | σ MAE (GPa) "
        "| last epoch | train wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = cards[r["n_train"]]
        lines.append(
            f"| {r['n_train']} | {r['energy_mae_meV_per_atom']:.2f} | "
            f"{r['force_mae_meV_per_A']:.1f} | {r['force_rmse_meV_per_A']:.1f} | "
            f"{r.get('stress_mae_GPa', float('nan')):.3f} | {c['epochs_run']} | "
            f"{c['wall_time_s']:.0f} |"
        )
    lines += [
        "",
        f"Power law over all sizes: F MAE = {a:.0f} n^-{b:.2f} meV/Å; the goal "
        f"({args.goal:g} meV/Å) at n ≈ {need:.0f} frames. Over the largest three sizes: "
        f"{a2:.0f} n^-{b2:.2f}, n ≈ {need2:.0f}.",
    ]
    write_results_md(RESULTS / "ff_learning_curve.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
