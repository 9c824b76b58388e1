"""Seconds per training epoch of a force-field preset (issue: force field, training-time goal).

Trains `--epochs` epochs of each preset on the BaTiO3 training split of `ff_accuracy.py` (49
frames × 135 atoms, mace-torch's trainer as `bornfield train ff` runs it) at each thread count,
each in a fresh directory, and takes the time per epoch from mace-torch's log (the median
over epochs 1.., so that the first epoch's set-up is left out). With the epochs a preset needs
to its best validation error (`ff_accuracy.md`) this gives its training time on this machine.
Writes bench/results/ff_train_speed.{json,md}.

    python bench/ff_train_speed.py --data ../shared/data/batio3-allegro-pol/BaTiO3.xyz
        [--presets fast] [--dtypes float64,float32] [--threads 1,2] [--epochs 6]
        [--conv fused,e3nn]

--conv: the message-passing convolution trained: bornfield's fused one (the default,
`FFPreset.fuse`) or mace-torch's e3nn layers.
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
import tempfile
from pathlib import Path

import numpy as np
from ff_accuracy import LOG_EPOCH, LOG_START
from results_md import write_results_md

RESULTS = Path(__file__).resolve().parent / "results"


def epoch_seconds(mace_dir: Path) -> list[float]:
    """Seconds between successive evaluations (initial, epoch 0, 1, ...) in mace-torch's log
    (parsed with ff_accuracy's patterns)."""
    text = sorted((mace_dir / "logs").glob("*.log"))[0].read_text()
    found = [LOG_START.search(text).group(1)] + [e[0] for e in LOG_EPOCH.findall(text)]
    stamps = [datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f") for s in found]
    return [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]


def worker(args) -> None:
    """One training in this process (run with OMP_NUM_THREADS set by the parent)."""
    from dataclasses import replace

    from bornfield.data import io
    from bornfield.data.splits import random_split
    from bornfield.models.force_field import PRESETS, train_ff

    frames = io.read(args.data)
    tr, _ = random_split(len(frames), 0.17, seed=0)  # ff_accuracy's split
    cfg = replace(PRESETS[args.preset], max_num_epochs=args.epochs, swa_start_fraction=0.0,
                  dtype=args.dtype, fuse=args.conv_one == "fused")  # fmt: skip
    train_ff([frames[i] for i in tr], args.out, cfg, seed=0, log=lambda m: None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--presets", default="fast")
    p.add_argument("--dtypes", default="float64", help="training precisions")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--conv", default="fused", help="fused | e3nn (comma-separated)")
    p.add_argument("--conv-one", help=argparse.SUPPRESS)
    p.add_argument("--preset", help=argparse.SUPPRESS)
    p.add_argument("--dtype", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.preset:
        worker(args)
        return
    rows = []
    runs = [(p, d, int(t), c) for p in args.presets.split(",") for d in args.dtypes.split(",")
            for t in args.threads.split(",") for c in args.conv.split(",")]  # fmt: skip
    for preset, dtype, threads, conv in runs:
        out = Path(tempfile.mkdtemp(prefix="ff_train_speed_"))
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        cmd = [sys.executable, __file__, "--data", args.data, "--preset", preset,
               "--dtype", dtype, "--out", str(out), "--epochs", str(args.epochs),
               "--conv-one", conv]  # fmt: skip
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        per_epoch = epoch_seconds(out / "mace")[1:]  # epoch 1 on (0 holds the set-up)
        shutil.rmtree(out)
        row = {"preset": preset, "dtype": dtype, "threads": threads, "conv": conv,
               "epochs_timed": len(per_epoch), "s_per_epoch": float(np.median(per_epoch))}  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.date.today().isoformat(),
        "data": f"{args.data}: ff_accuracy's training split (49 frames × 135 atoms), batch 1",
    }
    RESULTS.mkdir(exist_ok=True)
    out_json = RESULTS / "ff_train_speed.json"
    out_json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# Force-field training: seconds per epoch ({meta['machine']}, {meta['date']})",
        "",
        meta["data"] + "; mace-torch's trainer; median over the epochs after the first.",
        "",
        "| preset | training dtype | convolution | torch threads | s per epoch | epochs timed |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['preset']} | {r['dtype']} | {r.get('conv', 'e3nn')} | {r['threads']} "
        f"| {r['s_per_epoch']:.1f} | "
        f"{r['epochs_timed']} |"
        for r in rows
    ]
    write_results_md(RESULTS / "ff_train_speed.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
