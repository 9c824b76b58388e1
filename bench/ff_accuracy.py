"""Force-field test error against architecture and training length (issue: force field).

The BaTiO3 `fast` model at batch 4 (70 epochs) had a force MAE of 53 meV/Å, 1.4× below
SevenNet-0, against the paper's 10×; batch 1 (`fast_bs1`, now the preset) gave 36.6. This
trains variants on the same split as the shipped model (`random_split(59, 0.17, seed 0)`: 49
train / 10 test frames; inside training a seeded 10 % validation split) with mace-torch's trainer through `train_ff`, one torch thread each, and
evaluates every model on the 10 test frames in float64. Each variant trains in its own directory
under --work and resumes there. Writes bench/results/ff_accuracy.{json,md} with machine and date.

    python bench/ff_accuracy.py --data ../shared/data/batio3-allegro-pol/BaTiO3.xyz
        [--variants fast_1o,fast_64,fast_bs1] [--work /work/runs/ff_accuracy]
        [--device cuda] [--results DIR]   # train on a GPU; write the JSON/Markdown elsewhere
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
from dataclasses import asdict, replace
from pathlib import Path

from results_md import write_results_md

RESULTS = Path(__file__).resolve().parent / "results"
LOG_EPOCH = re.compile(r"^(\S+ \S+) INFO: Epoch (\d+): .*MAE_F=\s*([\d.]+)", re.M)
LOG_START = re.compile(r"^(\S+ \S+) INFO: Initial:", re.M)


def time_to_best_validation(mace_dir: Path) -> tuple[float, int, float] | None:
    """(seconds from the first evaluation to the epoch of lowest validation force MAE, that
    epoch, its MAE in meV/Å) from mace-torch's log of an uninterrupted run; None without one."""
    import datetime as dt

    logs = sorted((mace_dir / "logs").glob("*.log"))
    text = logs[0].read_text() if logs else ""
    start, epochs = LOG_START.search(text), LOG_EPOCH.findall(text)
    if not start or not epochs:
        return None
    t, epoch, mae = min(epochs, key=lambda e: float(e[2]))

    def when(s: str) -> dt.datetime:
        return dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f")

    return (when(t) - when(start.group(1))).total_seconds(), int(epoch), float(mae)


def variants() -> dict:
    from bornfield.models.force_field import PRESETS

    # the `fast` preset as it was until 2026-11-26 (batch 4), which the variants change
    fast = replace(PRESETS["fast"], batch_size=4, max_num_epochs=70)
    return {
        "fast_bs4": fast,
        "fast_1o": replace(fast, hidden_irreps="32x0e+32x1o"),
        "fast_64": replace(fast, hidden_irreps="64x0e"),
        "fast_r55": replace(fast, r_max=5.5),
        "fast_e200": replace(fast, max_num_epochs=200, patience=60),
        # 4x the optimizer steps per epoch at about the same cost per epoch: now the preset
        "fast_bs1": replace(fast, batch_size=1),
        # the preset exactly as `bornfield train ff --preset fast` runs it: up to 300 epochs,
        # early stopping (patience 30); for the time to the best validation error
        "fast_preset": PRESETS["fast"],
        # a time-boxed schedule: 120 epochs, the learning rate falling 100x exponentially
        # (0.01 -> 1e-4 by epoch 120; mace's plateau scheduler with patience 50 hardly ever
        # lowers it in 300 epochs), SWA/stage two from epoch 90 as in the preset
        "fast_exp120": replace(
            PRESETS["fast"],
            max_num_epochs=120,
            scheduler="ExponentialLR",
            lr_gamma=round(0.01 ** (1 / 120), 5),
        ),
        # the preset trained in float32 (mace-torch's --default_dtype): for the training time
        "fast_f32": replace(PRESETS["fast"], dtype="float32"),
        # (the rows above trained mace-torch's e3nn convolutions; from session 16 the preset
        # trains bornfield's fused ones, FFPreset.fuse: 4.5 -> 2.9 s per epoch in float32)
        "fast_f32_fused": replace(PRESETS["fast"], dtype="float32", fuse=True),
        # and with 220 epochs (SWA from 165): 220 x 5.4 s is 20 min on 2 threads
        "fast_f32_e220": replace(PRESETS["fast"], dtype="float32", max_num_epochs=220),
        # the `accurate` preset and 1o features at batch 1, 100 epochs each (SWA from 75):
        # what a larger model buys at equal epochs; trained on a GPU (--device cuda)
        "accurate_e100": replace(PRESETS["accurate"], max_num_epochs=100, patience=100),
        "fast_1o_e100": replace(
            PRESETS["fast"], hidden_irreps="32x0e+32x1o", max_num_epochs=100, patience=100
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--variants", default="fast_1o,fast_64,fast_bs1")
    p.add_argument("--work", default="/tmp/bornfield_ff_accuracy")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="training device: cpu | cuda")
    p.add_argument("--results", default=str(RESULTS), help="directory of ff_accuracy.json")
    args = p.parse_args()
    results = Path(args.results)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from bornfield.analysis.errors import ff_metrics, predict
    from bornfield.data import io
    from bornfield.data.splits import random_split
    from bornfield.models.force_field import load_calculator, train_ff

    frames = io.read(args.data)
    tr, te = random_split(len(frames), 0.17, seed=0)
    train, test = [frames[i] for i in tr], [frames[i] for i in te]
    work = Path(args.work)
    out_json = results / "ff_accuracy.json"
    rows = json.loads(out_json.read_text())["rows"] if out_json.exists() else {}
    for name in args.variants.split(","):
        cfg = variants()[name]
        d = work / name
        if not (d / "card.json").exists():
            train_ff(train, d, cfg, seed=0, device=args.device,
                     log=lambda m, n=name: print(f"[{n}] {m}", flush=True))  # fmt: skip
        card = json.loads((d / "card.json").read_text())
        calc = load_calculator(d / "ff.model", dtype="float64")
        m = ff_metrics(test, predict(calc, test))
        best = time_to_best_validation(d / "mace")
        rows[name] = {
            "preset": asdict(cfg),
            "device": device_name(args.device),
            "train_wall_s": card["wall_time_s"],
            "epochs_run": card["epochs_run"],
            "s_to_best_valid": best and best[0],
            "best_valid_epoch": best and best[1],
            "best_valid_force_mae_meV_per_A": best and best[2],
            **m,
        }
        meta = {
            "machine": f"{platform.node()} {platform.machine()}, {args.threads} torch thread(s)",
            "date": datetime.date.today().isoformat(),
            "data": args.data,
            "split": "random_split(n, 0.17, seed=0): the shipped model's split",
            "test_frames": te.tolist(),
        }
        results.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        write_md(meta, rows, results)


def device_name(device: str) -> str:
    if device == "cpu":
        return "cpu"
    import torch

    return torch.cuda.get_device_name()


def _best(r: dict) -> str:
    if r.get("s_to_best_valid") is None:
        return "–"
    return f"{r['s_to_best_valid']:.0f} ({r['best_valid_epoch']})"


def write_md(meta: dict, rows: dict, results: Path = RESULTS) -> None:
    lines = [
        f"# Force-field test error by variant ({meta['machine']}, {meta['date']})",
        "",
        f"Data {meta['data']}; {meta['split']}; test frames {meta['test_frames']}.",
        "",
        "Trained on the CPU unless the variant names its device.",
        "",
        "| variant | hidden | r_max (Å) | batch | epochs | E MAE (meV/atom) | F MAE (meV/Å) "
        "| F MAE Ba / Ti / O | σ MAE (GPa) | train wall (s) | s to best valid (epoch) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        pr = r["preset"]
        dev = f" ({r['device']})" if r.get("device", "cpu") != "cpu" else ""
        per_el = " / ".join(f"{r.get(f'force_mae_{e}_meV_per_A', float('nan')):.1f}"
                            for e in ("Ba", "Ti", "O"))  # fmt: skip
        lines.append(
            f"| {name}{dev} | {pr['hidden_irreps']} | {pr['r_max']} | {pr['batch_size']} | {r['epochs_run']} "
            f"| {r['energy_mae_meV_per_atom']:.2f} | {r['force_mae_meV_per_A']:.1f} | {per_el} "
            f"| {r.get('stress_mae_GPa', float('nan')):.3f} | {r['train_wall_s']:.0f} "
            f"| {_best(r)} |"
        )
    write_results_md(results / "ff_accuracy.md", lines)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
