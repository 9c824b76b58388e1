"""Foundation-model baselines measured here (issue: force field): CHGNet and SevenNet-0 on the
frames the specialized models are judged on, with the same metrics.

- BaTiO3: all 59 third-party frames (the 5-fold CV covers each once; `ff_cv.md`), energies
  shifted per element on the same frames.
- CaTiO3: the fixed held-out frames of bornfield's own labels (`data/catio3/splits.json`), by
  cell size, energies shifted per element on the training frames (PBEsol labels against
  PBE-trained models), beside the shipped `models/catio3/ff`.

SevenNet-0 runs in its own environment (`sevennet:PYTHON`, models/baselines.py); --sevennet
names that interpreter (made with `python -m venv V && V/bin/pip install torch==2.13.0
sevenn==0.13.0`). Writes bench/results/baselines.{json,md} with machine and date.

    python bench/baselines.py --sevennet /work/runs/sevenn-venv/bin/python [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

from catio3_data import TEST_IDS
from results_md import write_results_md

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BATIO3 = ROOT.parent / "shared/data/batio3-allegro-pol/BaTiO3.xyz"
KEYS = ("energy_mae_meV_per_atom", "force_mae_meV_per_A", "force_rmse_meV_per_A", "stress_mae_GPa")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sevennet", required=True, help="a Python with sevenn installed")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from bornfield.analysis.errors import ff_metrics, fit_energy_shift, predict
    from bornfield.data import io
    from bornfield.data.splits import split_files
    from bornfield.models.baselines import load_baseline
    from bornfield.models.force_field import load_calculator

    train, held_out = split_files(TEST_IDS)
    sets = {"BaTiO3, all 59 frames": (io.read(BATIO3), None)}
    for n in sorted({len(a) for a in held_out}, reverse=True):
        sets[f"CaTiO3 {n}-atom held-out"] = ([a for a in held_out if len(a) == n], train)
    calcs = {
        "bornfield CaTiO3 (shipped)": lambda: load_calculator(
            ROOT / "models/catio3/ff", dtype="float64"
        ),
        "CHGNet 0.3.0": lambda: load_baseline("chgnet"),
        "SevenNet-0": lambda: load_baseline(f"sevennet:{args.sevennet}"),
    }
    rows = []
    for who, make in calcs.items():
        calc = make()
        for name, (frames, shift_on) in sets.items():
            if who.startswith("bornfield") and not name.startswith("CaTiO3"):
                continue
            t0 = time.perf_counter()
            pred = predict(calc, frames)
            wall = time.perf_counter() - t0
            shift = None
            if not who.startswith("bornfield"):
                ref = shift_on or frames
                shift = fit_energy_shift(ref, predict(calc, ref, False) if shift_on else pred)
            m = ff_metrics(frames, pred, shift)
            rows.append({"model": who, "data": name, "n_frames": len(frames),
                         "n_atoms": sum(len(a) for a in frames), "wall_s": round(wall, 1),
                         **{k: m.get(k) for k in KEYS}})  # fmt: skip
            print(rows[-1], flush=True)
        if hasattr(calc, "close"):
            calc.close()
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, {args.threads} torch thread(s)",
        "date": datetime.date.today().isoformat(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "baselines.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# Foundation baselines on the judged frames ({meta['machine']}, {meta['date']})",
        "",
        "`bench/baselines.py`: MAE (force RMSE too); baseline energies shifted per element "
        "(BaTiO3: on the same frames; CaTiO3: on its training frames). BaTiO3 labels: PBE "
        "(Quantum ESPRESSO, allegro-pol); CaTiO3: PBEsol (ABINIT, bornfield).",
        "",
        "| data | model | frames (atoms) | E (meV/atom) | F (meV/Å) | F RMSE (meV/Å) | σ (GPa) "
        "| wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def f(x, d):
        return "–" if x is None else f"{x:.{d}f}"

    for r in sorted(rows, key=lambda r: r["data"]):
        lines.append(
            f"| {r['data']} | {r['model']} | {r['n_frames']} ({r['n_atoms']}) | "
            f"{f(r['energy_mae_meV_per_atom'], 2)} | {f(r['force_mae_meV_per_A'], 1)} | "
            f"{f(r['force_rmse_meV_per_A'], 1)} | {f(r['stress_mae_GPa'], 3)} | {r['wall_s']} |"
        )
    write_results_md(RESULTS / "baselines.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
