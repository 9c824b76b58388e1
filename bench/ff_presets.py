"""MD-step cost of each force-field preset (issue: force field) at 160, 640 and 1280 atoms.

For each preset of `bornfield.models.force_field.PRESETS` (and `fast_1o`, the `fast` preset
with 32 1o node features: the cheapest MACE backbone for a Z* readout) a model of that
architecture is made by `train_ff` (mace-torch's trainer, 1 epoch on 6 BaTiO3 frames: the cost of a call does not
depend on the weights), exported as float32, and one Langevin MD step is timed with bornfield's
lean calculator (forces only, as NVT) and with forces + stress (as NpT), in a fresh process per
size (peak memory per size), minimum over interleaved rounds (bench/fieldmd.py); each timing
is kept in --work and reused (delete it to re-time). Writes bench/results/ff_presets.{json,md}
with the machine and date.

    python bench/ff_presets.py --data ../shared/data/batio3-allegro-pol/BaTiO3.xyz
        [--sizes 160,640,1280] [--threads 2] [--work /tmp/bornfield_ff_presets]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

from fieldmd import cell_of, time_interleaved
from results_md import write_results_md

RESULTS = Path(__file__).parent / "results"


def variants() -> dict:
    """The presets, and `fast` with 1o node features: the cheapest MACE backbone from which a
    Z* readout could be formed (1o ⊗ 1o → 0e + 1e + 2e; the `fast` features are all 0e)."""
    from bornfield.models.force_field import PRESETS

    return PRESETS | {"fast_1o": replace(PRESETS["fast"], hidden_irreps="32x0e+32x1o")}


def make_models(data: str, work: Path) -> dict[str, Path]:
    """One model directory per variant (made once; rerunning reuses it)."""
    from bornfield.data import io
    from bornfield.models.force_field import train_ff

    frames = io.read(data)[:6]
    out = {}
    for name, preset in variants().items():
        d = work / name
        if not (d / "ff_float32.model").exists():
            train_ff(frames, d, replace(preset, max_num_epochs=1), log=lambda m: None)
        out[name] = d
    return out


def worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from bornfield.models.force_field import load_calculator

    atoms = cell_of(args.size)
    nvt = load_calculator(args.model, dtype="float32")
    npt = load_calculator(args.model, dtype="float32")
    npt.stress_wanted = True  # every call computes the virial, as under MTK NpT
    steps = max(5, 6000 // args.size)
    best = time_interleaved(atoms, {"forces": nvt, "forces_stress": npt},
                            {"forces": steps, "forces_stress": steps}, args.repeats)  # fmt: skip
    return {
        "n_atoms": len(atoms),
        "steps_timed": steps,
        "forces_s": best["forces"],
        "forces_stress_s": best["forces_stress"],
        "peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data")
    p.add_argument("--sizes", default="160,640,1280")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", default="/tmp/bornfield_ff_presets")
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.size:
        print(json.dumps(worker(args)))
        return
    models = make_models(args.data, Path(args.work))
    rows = []
    for name, model in models.items():
        for n in [int(x) for x in args.sizes.split(",")]:
            cached = Path(args.work) / f"{name}_{n}_t{args.threads}.json"  # delete to re-time
            if not cached.exists():
                cmd = [sys.executable, __file__, "--model", str(model), "--size", str(n),
                       "--threads", str(args.threads), "--repeats", str(args.repeats)]  # fmt: skip
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                cached.write_text(res.stdout.strip().splitlines()[-1])
            row = {"preset": name} | json.loads(cached.read_text())
            row["us_per_atom_step"] = 1e6 * row["forces_s"] / row["n_atoms"]
            rows.append(row)
            print(row, flush=True)
    fast = {r["n_atoms"]: r["forces_s"] for r in rows if r["preset"] == "fast"}
    for r in rows:
        r["over_fast"] = r["forces_s"] / fast[r["n_atoms"]] if r["n_atoms"] in fast else None
    meta = {
        "machine": f"{platform.node()}, {platform.machine()}, {args.threads} torch threads",
        "date": datetime.date.today().isoformat(),
        "system": "cubic BaTiO3 supercells (rattled 0.03 Å), float32, Langevin 2 fs",
        "presets": {k: asdict(v) for k, v in variants().items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ff_presets.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# Force-field MD-step cost per preset ({meta['machine']}, {meta['date']})",
        "",
        meta["system"] + "; minimum over interleaved rounds.",
        "",
        "| preset | architecture | atoms | step, forces (ms) | step, forces + stress (ms) "
        "| µs/atom/step | × fast | peak RSS (GiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = variants()[r["preset"]]
        arch = (
            f"{c.hidden_irreps}, ℓmax {c.max_ell}, r {c.r_max} Å, corr. {c.correlation}, "
            f"{c.num_interactions} layers"
        )
        lines.append(
            f"| {r['preset']} | {arch} | {r['n_atoms']} | {1e3 * r['forces_s']:.0f} "
            f"| {1e3 * r['forces_stress_s']:.0f} | {r['us_per_atom_step']:.0f} "
            f"| {r['over_fast']:.2f} | {r['peak_rss_GiB']:.2f} |"
        )
    write_results_md(RESULTS / "ff_presets.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
