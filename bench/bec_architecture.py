"""Z* model architectures at a fixed budget: validation MAE after N epochs, time per epoch.

Each variant trains with `bornfield train bec` (1 torch thread, seed 0) on the same training
file and its seeded 10 % validation split; the table takes the last logged epoch. Runs are
resumable (each in its own directory under --work).

    python bench/bec_architecture.py --data train.xyz [--epochs 40]

Writes bench/results/bec_architecture.{json,md} (machine and date included).
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

from results_md import write_results_md

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {  # (the defaults are 16 channels, 3 layers, vector messages)
    "c16": ["--channels", "16", "--layers", "2", "--scalar-messages"],
    "c32": ["--channels", "32", "--layers", "2", "--scalar-messages"],
    "c16vm": ["--channels", "16", "--layers", "2"],
    "c32vm": ["--channels", "32", "--layers", "2"],
    "c16vm_l3": ["--channels", "16", "--layers", "3"],
    "c16vm_r55": ["--channels", "16", "--layers", "2", "--r-max", "5.5"],
}
EPOCH = re.compile(r"epoch (\d+): train RMSE ([\d.]+) e, valid MAE ([\d.]+) e.*\(([\d.]+) s\)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--work", default="/tmp/bornfield_bec_architecture")
    args = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rows = {}
    for name, opts in VARIANTS.items():
        out = Path(args.work) / name
        log = Path(args.work) / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "bornfield.cli", "train", "bec", "--data", args.data,
               "--out", str(out), "--epochs", str(args.epochs), *opts]  # fmt: skip
        with open(log, "a") as fh:
            subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=True)
        epochs = [m.groups() for m in EPOCH.finditer(log.read_text())]
        times = sorted(float(e[3]) for e in epochs)
        rows[name] = {
            "options": " ".join(opts),
            "epochs": int(epochs[-1][0]) + 1,
            "valid_mae_e": float(epochs[-1][2]),
            "train_rmse_e": float(epochs[-1][1]),
            "median_epoch_s": times[len(times) // 2],
        }
        print(name, rows[name], flush=True)
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, 1 torch thread",
        "date": datetime.date.today().isoformat(),
        "data": args.data,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bec_architecture.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=1)
    )
    lines = [
        f"# Z* model architectures ({meta['machine']}, {meta['date']})",
        "",
        f"Training data {meta['data']}; validation MAE after {args.epochs} epochs.",
        "",
        "| variant | options | valid MAE (e) | train RMSE (e) | s / epoch |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | `{r['options']}` | {r['valid_mae_e']:.4f} | {r['train_rmse_e']:.4f} "
            f"| {r['median_epoch_s']:.1f} |"
        )
    write_results_md(RESULTS / "bec_architecture.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
