"""k-fold cross-validation of the force field (issue goal: BaTiO3 5-fold force MAE at least 10×
below SevenNet-0's on the same frames, i.e. <= 7.5 meV/Å against its 75).

Runs `bornfield evaluate ff --folds K` (a preset, float32 training by default: the 16-min route
of bench/results/ff_accuracy.md) on a data file; every fold trains in its own directory under
--work and resumes there, so a killed run repeats only its unfinished epochs. Writes
bench/results/ff_cv.{json,md} (machine and date included) and the parity plot of all held-out
predictions. SevenNet-0 cannot share this environment (models/baselines.py): its MAE on the
frames is read from bench/results/baselines.json (75.3 meV/Å on all 59 BaTiO3 frames, measured
by bench/baselines.py in its own environment), or given with --sevennet-mae.

    python bench/ff_cv.py --data ../shared/data/batio3-allegro-pol/BaTiO3.xyz [--folds 5]
        [--preset fast] [--dtype float32] [--threads 2] [--sevennet-mae MAE]
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


def sevennet_mae() -> float:
    """SevenNet-0's force MAE (meV/Å) on all BaTiO3 frames, as bench/baselines.py measured it."""
    path = RESULTS / "baselines.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    for r in rows:
        if r["model"].startswith("SevenNet") and r["data"].startswith("BaTiO3, all"):
            return float(r["force_mae_meV_per_A"])
    sys.exit(
        f"{path}: no SevenNet row on all BaTiO3 frames; run bench/baselines.py --sevennet "
        "PYTHON first, or give --sevennet-mae"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--preset", default="fast")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--epochs", type=int, help="default: the preset's")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--sevennet-mae",
        type=float,
        help="meV/Å on the same frames (default: "
        "bench/results/baselines.json's SevenNet row on all BaTiO3 frames)",
    )
    p.add_argument("--work", default="/tmp/bornfield_ff_cv")
    args = p.parse_args()
    if args.sevennet_mae is None:
        args.sevennet_mae = sevennet_mae()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t)
    cmd = [sys.executable, "-m", "bornfield.cli", "evaluate", "ff", "--data", args.data,
           "--folds", str(args.folds), "--preset", args.preset, "--dtype", args.dtype,
           "--out", str(work), "--json", str(work / "cv.json"), "--plot", str(work / "parity.png")]  # fmt: skip
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    subprocess.run(cmd, env=env, check=True)
    res = json.loads((work / "cv.json").read_text())
    cards = [json.loads((work / f"fold{i}" / "card.json").read_text()) for i in range(args.folds)]
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, {args.threads} torch thread(s)",
        "date": datetime.date.today().isoformat(),
        "data": args.data,
        "preset": args.preset,
        "dtype": args.dtype,
        "epochs_run": [c["epochs_run"] for c in cards],
        "train_wall_s": [c["wall_time_s"] for c in cards],
        "sevennet0_force_mae_meV_per_A": args.sevennet_mae,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ff_cv.json").write_text(json.dumps({"meta": meta, **res}, indent=1))
    shutil.copyfile(work / "parity.png", RESULTS / "ff_cv_parity.png")
    m = res["model"]
    els = [g.group(1) for k in m if (g := re.fullmatch(r"force_mae_([A-Z][a-z]?)_meV_per_A", k))]
    lines = [
        f"# Force field, {args.folds}-fold cross-validation ({meta['machine']}, {meta['date']})",
        "",
        f"Data {args.data}; preset `{args.preset}`, trained in {args.dtype}, evaluated in "
        "float64. Each fold's model never saw its test frames.",
        "",
        "| fold | test frames | E MAE (meV/atom) | F MAE (meV/Å) | F RMSE (meV/Å) | "
        + " | ".join(f"F MAE {e}" for e in els)
        + " | σ MAE (GPa) | last epoch | train wall (s) |",
        "|---|---|---|---|---|" + "---|" * len(els) + "---|---|---|",
    ]
    for i, f in enumerate(res["folds"]):
        lines.append(
            f"| {i} | {f['n_frames']} | {f['energy_mae_meV_per_atom']:.2f} | "
            f"{f['force_mae_meV_per_A']:.1f} | {f['force_rmse_meV_per_A']:.1f} | "
            + " | ".join(f"{f[f'force_mae_{e}_meV_per_A']:.1f}" for e in els)
            + f" | {f.get('stress_mae_GPa', float('nan')):.3f} | {meta['epochs_run'][i]} | "
            f"{meta['train_wall_s'][i]:.0f} |"
        )
    lines.append(
        f"| mean ± std | | {m['energy_mae_meV_per_atom']:.2f} ± "
        f"{m['energy_mae_meV_per_atom_std']:.2f} | {m['force_mae_meV_per_A']:.1f} ± "
        f"{m['force_mae_meV_per_A_std']:.1f} | {m['force_rmse_meV_per_A']:.1f} | "
        + " | ".join(f"{m[f'force_mae_{e}_meV_per_A']:.1f}" for e in els)
        + f" | {m.get('stress_mae_GPa', float('nan')):.3f} | | |"
    )
    ratio = args.sevennet_mae / m["force_mae_meV_per_A"]
    lines += [
        "",
        f"SevenNet-0 on the same frames: {args.sevennet_mae:g} meV/Å, **{ratio:.1f}× the CV "
        f"force MAE** (goal: 10×, i.e. ≤ {args.sevennet_mae / 10:g} meV/Å).",
    ]
    write_results_md(RESULTS / "ff_cv.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
