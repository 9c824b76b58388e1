"""Z* model training at a fixed number of epochs: batch size, per-element weights, EMA.

Each variant trains with `bornfield train bec` (1 torch thread, seed 0) on the same training
file and its seeded 10 % validation split, then is evaluated on a held-out test file. The table
gives the validation MAE after N epochs, the wall time it took (sum of the logged epoch times),
the first time the validation MAE fell below each threshold, and the test MAE of the best
(saved) model. Runs are resumable, each in its own directory under --work.

    python bench/bec_training.py --data train.xyz --test test.xyz [--epochs 100]

Writes bench/results/<--name, default bec_training>.{json,md} (machine and date included).
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

from bec_architecture import EPOCH
from results_md import write_results_md

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {  # the defaults: batch 1, per-element weights, EMA 0.99
    "bs4_shared_noema": ["--batch-size", "4", "--shared-weights", "--ema-decay", "0"],
    "bs4": ["--batch-size", "4"],
    "bs2": ["--batch-size", "2"],
    "bs1": ["--batch-size", "1"],
    "bs1_shared": ["--batch-size", "1", "--shared-weights"],
}
THRESHOLDS = (0.05, 0.04, 0.036, 0.03)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--work", default="/tmp/bornfield_bec_training")
    p.add_argument("--only", help="comma-separated variant names")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="bec_training", help="results file stem")
    args = p.parse_args()
    n = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
    names = args.only.split(",") if args.only else list(VARIANTS)
    rows = {}
    for name in names:
        opts = VARIANTS[name]
        out = Path(args.work) / name
        log = Path(args.work) / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cli = [sys.executable, "-m", "bornfield.cli"]
        done = log.is_file() and len(EPOCH.findall(log.read_text())) >= args.epochs
        if not done:  # a finished run is only read
            with open(log, "a") as fh:
                subprocess.run([*cli, "train", "bec", "--data", args.data, "--out", str(out),
                                "--epochs", str(args.epochs), *opts],
                               stdout=fh, stderr=subprocess.STDOUT, env=env, check=True)  # fmt: skip
        test_json = Path(args.work) / f"{name}.test.json"
        subprocess.run([*cli, "evaluate", "bec", "--model", str(out), "--data", args.test,
                        "--json", str(test_json)],
                       env=env, check=True, capture_output=True)  # fmt: skip
        epochs = [m.groups() for m in EPOCH.finditer(log.read_text())][: args.epochs]
        wall, reached = 0.0, {}
        for _, _, mae, sec in epochs:
            wall += float(sec)
            for t in THRESHOLDS:
                if float(mae) <= t and t not in reached:
                    reached[t] = round(wall)
        test = json.loads(test_json.read_text())["model"]
        rows[name] = {
            "options": " ".join(opts),
            "epochs": len(epochs),
            "valid_mae_e": float(epochs[-1][2]),
            "wall_s": round(wall),
            "s_to_valid_mae": {str(t): reached.get(t) for t in THRESHOLDS},
            "test_mae_e": test["bec_mae_e"],
            "test_mae_per_element_e": {
                m.group(1): v
                for k, v in test.items()
                if (m := re.fullmatch(r"bec_mae_([A-Z][a-z]?)_e", k))
            },
        }
        print(name, rows[name], flush=True)
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, {args.threads} torch thread(s)",
        "date": datetime.date.today().isoformat(),
        "data": args.data,
        "test": args.test,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    head = " | ".join(f"s to ≤{t}" for t in THRESHOLDS)
    lines = [
        f"# Z* model training ({meta['machine']}, {meta['date']})",
        "",
        f"Training data {meta['data']} (seeded 10 % validation split); test {meta['test']}.",
        f"{args.epochs} epochs each; wall time is the sum of the logged epoch times.",
        "",
        f"| variant | options | valid MAE (e) | wall (s) | {head} | test MAE (e) |",
        "|---|---|---|---|" + "---|" * len(THRESHOLDS) + "---|",
    ]
    for name, r in rows.items():
        reach = " | ".join(str(r["s_to_valid_mae"][str(t)] or "–") for t in THRESHOLDS)
        lines.append(
            f"| {name} | `{r['options']}` | {r['valid_mae_e']:.4f} | {r['wall_s']} | {reach} "
            f"| {r['test_mae_e']:.4f} |"
        )
    write_results_md(RESULTS / f"{args.name}.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
