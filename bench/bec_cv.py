"""k-fold cross-validation of the Z* model (issue goal: BaTiO3 5-fold MAE ≤ 0.03 e).

Runs `bornfield evaluate bec --folds K` (default model and training settings, `--epochs E`) on a
data file; every fold trains in its own directory under --work and resumes there, so a killed
run repeats only its unfinished fold. Writes bench/results/bec_cv.{json,md} (machine and date
included) and the parity plot of all held-out predictions.

    python bench/bec_cv.py --data ../shared/data/batio3-allegro-pol/BaTiO3.xyz [--folds 5]
        [--epochs 150] [--workers 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from results_md import write_results_md

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--work", default="/tmp/bornfield_bec_cv")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "bornfield.cli", "evaluate", "bec", "--data", args.data,
           "--folds", str(args.folds), "--epochs", str(args.epochs), "--workers", str(args.workers),
           "--out", str(work), "--json", str(work / "cv.json"), "--plot", str(work / "parity.png")]  # fmt: skip
    subprocess.run(cmd, env=env, check=True)
    res = json.loads((work / "cv.json").read_text())
    walls = []
    for i in range(args.folds):
        card = json.loads((work / f"fold{i}" / "card.json").read_text())
        walls.append(card["train_wall_s"])
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, 1 torch thread per training",
        "date": datetime.date.today().isoformat(),
        "data": args.data,
        "epochs": args.epochs,
        "train_wall_s": walls,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bec_cv.json").write_text(json.dumps({"meta": meta, **res}, indent=1))
    shutil.copyfile(work / "parity.png", RESULTS / "bec_cv_parity.png")
    m = res["model"]
    els = [g.group(1) for k in m if (g := re.fullmatch(r"bec_mae_([A-Z][a-z]?)_e", k))]
    lines = [
        f"# Z* model, {args.folds}-fold cross-validation ({meta['machine']}, {meta['date']})",
        "",
        f"Data {args.data}; default model and training settings, {args.epochs} epochs per fold.",
        "",
        "| fold | test frames | Z* MAE (e) | RMSE (e) | "
        + " | ".join(f"{e} MAE" for e in els)
        + " | train wall (s) |",
        "|---|---|---|---|" + "---|" * len(els) + "---|",
    ]
    for i, f in enumerate(res["folds"]):
        lines.append(
            f"| {i} | {f['n_frames']} | {f['bec_mae_e']:.4f} | {f['bec_rmse_e']:.4f} | "
            + " | ".join(f"{f[f'bec_mae_{e}_e']:.4f}" for e in els)
            + f" | {walls[i]:.0f} |"
        )
    lines.append(
        f"| mean ± std | | {m['bec_mae_e']:.4f} ± {m['bec_mae_e_std']:.4f} "
        f"| {m['bec_rmse_e']:.4f} | "
        + " | ".join(f"{m[f'bec_mae_{e}_e']:.4f}" for e in els)
        + " | |"
    )
    write_results_md(RESULTS / "bec_cv.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
