"""Fixed and per-atom cost of a field-MD step: what bounds P3 (per-atom cost flat in size).

Times the compiled field step (`bornfield md --compile`, Z* refresh k = 10, Langevin, shipped
CaTiO3 models) on Pnma supercells of 20 to 640 atoms in one process (rounds interleaved, the
minimum kept), fits t(N) = F + b N, and writes bench/results/fieldmd_fixed_cost.{json,md}.
With that fit the per-atom cost at 160 atoms exceeds the one at 1280 by
(F / 160 + b) / (F / 1280 + b): P3 ≤ 1.2 needs F ≤ 0.2 b / (1 / 160 - 1.2 / 1280) ≈ 38 b.
Also times the parts of the fixed cost at 20 atoms: the ASE Langevin step with a zero-force
calculator, the neighbour list, the force-field call and one Z* prediction.

    python bench/fieldmd_fixed_cost.py [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
from fieldmd import _dynamics
from results_md import write_results_md

RESULTS = Path(__file__).parent / "results"
MODELS = Path(__file__).parents[1] / "models" / "catio3"
REPEATS = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2), (4, 2, 2), (4, 4, 2)]


def _best_ms(f, n: int, rounds: int = 3) -> float:
    f()
    best = np.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t0) / n)
    return 1e3 * best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from ase.calculators.calculator import Calculator, all_changes

    from bornfield.calculators import FieldCalculator
    from bornfield.label.generators import pnma_catio3
    from bornfield.models.bec import load_model, predict_bec
    from bornfield.models.force_field import load_calculator
    from bornfield.models.neighbours import neighbour_pairs

    class Zero(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3))}

    ff = load_calculator(MODELS / "ff", dtype="float32", compile=True)
    bec = load_model(MODELS / "bec", dtype=torch.float32)
    field = np.array([0.0, 0.0, 0.005])

    def dynamics(atoms, calc):  # `bench/fieldmd.py`'s Langevin run, warmed up (and compiled)
        dyn = _dynamics(atoms, calc)
        dyn.run(20)
        return dyn

    cells = {}
    for reps in REPEATS:
        a = pnma_catio3().repeat(reps)
        a.rattle(0.03, seed=0)
        cells[len(a)] = a
    dyns = {n: dynamics(a, FieldCalculator(ff, bec, field, bec_interval=args.k))
            for n, a in cells.items()}  # fmt: skip
    best = dict.fromkeys(dyns, np.inf)
    for _ in range(3):
        for n, dyn in dyns.items():
            steps = max(20, 8000 // n)
            t0 = time.perf_counter()
            dyn.run(steps)
            best[n] = min(best[n], 1e3 * (time.perf_counter() - t0) / steps)
    ns = np.array(sorted(best))
    ts = np.array([best[n] for n in ns])
    b, fixed = np.polyfit(ns, ts, 1)
    small = cells[20]
    zero = dynamics(small, Zero())
    ff_atoms = small.copy()
    parts = {
        "ase_langevin_zero_force_ms": _best_ms(lambda: zero.run(1), 200),
        "neighbour_list_ms": _best_ms(lambda: neighbour_pairs(small, ff.r_max), 200),
        "force_field_call_ms": _best_ms(
            lambda: ff.calculate(ff_atoms, ["energy", "forces"], all_changes), 200
        ),
        f"bec_predict_per_{args.k}_steps_ms": _best_ms(lambda: predict_bec(bec, small), 20)
        / args.k,
    }
    p3_fit = (fixed / 160 + b) / (fixed / 1280 + b)
    meta = {
        "machine": f"{platform.node()}, {platform.machine()}, {args.threads} torch threads",
        "date": datetime.date.today().isoformat(),
        "fixed_ms": fixed,
        "per_atom_us": 1e3 * b,
        "P3_from_fit": p3_fit,
        "fixed_ms_for_P3_1.2": 0.2 * b / (1 / 160 - 1.2 / 1280),
        "parts_at_20_atoms": parts,
    }
    rows = [{"n_atoms": int(n), "field_step_ms": float(t)} for n, t in zip(ns, ts, strict=True)]
    RESULTS.mkdir(exist_ok=True)
    stem = "fieldmd_fixed_cost" + ("" if args.threads == 2 else f"_t{args.threads}")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# Fixed and per-atom cost of the compiled field-MD step ({meta['machine']}, "
        f"{meta['date']})",
        "",
        f"Pnma CaTiO3, shipped models, Langevin, Z* refresh k = {args.k}, "
        "`python bench/fieldmd_fixed_cost.py`.",
        "",
        "| atoms | field step (ms) | µs per atom-step |",
        "|---|---|---|",
        *[
            f"| {r['n_atoms']} | {r['field_step_ms']:.2f} | "
            f"{1e3 * r['field_step_ms'] / r['n_atoms']:.0f} |"
            for r in rows
        ],  # fmt: skip
        "",
        f"Fit t = F + b N: **F = {fixed:.2f} ms, b = {1e3 * b:.1f} µs/atom**; P3 from the fit "
        f"(160 against 1280 atoms) {p3_fit:.2f}; P3 ≤ 1.2 needs F ≤ "
        f"{meta['fixed_ms_for_P3_1.2']:.2f} ms.",
        "",
        "Parts of a 20-atom step (ms): "
        + ", ".join(f"{k.removesuffix('_ms')} {v:.2f}" for k, v in parts.items())
        + ".",
    ]
    write_results_md(RESULTS / f"{stem}.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
