"""Neighbour-list cost (issue: field-coupled MD): vesin against matscipy, alone and in an MD step.

For each cubic BaTiO3 cell (`fieldmd.cell_of`): the pair list within the `fast` model's 4.5 Å by
matscipy and by vesin (same pairs, checked), and one Langevin step of the shipped BaTiO3 `fast`
force field with either list, interleaved rounds, minimum kept. Writes
bench/results/neighbours.{json,md} with machine and date.

    python bench/neighbours.py [--sizes 160,640,1280,5120] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from results_md import write_results_md

RESULTS = Path(__file__).parent / "results"
FF = Path(__file__).parents[1] / "models" / "batio3" / "ff" / "ff.model"


def best_of(f, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="160,640,1280,5120")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    from fieldmd import _dynamics, cell_of
    from matscipy.neighbours import neighbour_list

    import bornfield.models.mace_calculator as mc
    from bornfield.models.force_field import load_calculator
    from bornfield.models.neighbours import neighbour_pairs

    torch.set_num_threads(args.threads)
    lists = {
        "matscipy": lambda a, rc: neighbour_list("ijS", a, rc),
        "vesin": neighbour_pairs,
    }
    rows = []
    for n in map(int, args.sizes.split(",")):
        atoms = cell_of(n)
        pairs = {k: f(atoms, 4.5) for k, f in lists.items()}
        keys = [set(zip(i.tolist(), j.tolist(), map(tuple, s.tolist()), strict=True))
                for i, j, s in pairs.values()]  # fmt: skip
        assert keys[0] == keys[1], "the two pair lists differ"
        nl_ms = {k: 1e3 * best_of(lambda f=f, a=atoms: f(a, 4.5), 20) for k, f in lists.items()}
        step_ms = dict.fromkeys(lists, np.inf)
        if n <= 1280:
            dyns = {}
            for k, f in lists.items():
                mc.neighbour_pairs = f  # the calculator's module-level name
                dyns[k] = _dynamics(atoms, load_calculator(FF))
            steps = max(3, 3000 // n)
            for _ in range(args.rounds):
                for k, f in lists.items():
                    mc.neighbour_pairs = f
                    t = best_of(lambda d=dyns[k], m=steps: d.run(m), 1) / steps
                    step_ms[k] = min(step_ms[k], 1e3 * t)
            mc.neighbour_pairs = neighbour_pairs
        rows.append({"atoms": n, "pairs": len(pairs["vesin"][0]),
                     "nl_ms": nl_ms, "step_ms": step_ms})  # fmt: skip
        print(rows[-1], flush=True)
    meta = {
        "machine": f"{platform.node()}, {platform.machine()}, {args.threads} torch threads",
        "date": datetime.date.today().isoformat(),
    }
    RESULTS.mkdir(exist_ok=True)
    for r in rows:  # JSON has no infinity: steps not timed (> 1280 atoms) are null
        r["step_ms"] = {k: (v if np.isfinite(v) else None) for k, v in r["step_ms"].items()}
    (RESULTS / "neighbours.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_md(meta, rows)


def write_md(meta: dict, rows: list[dict]) -> None:
    lines = [
        f"# Neighbour-list cost ({meta['machine']}, {meta['date']})",
        "",
        "Cubic BaTiO3 cells (rattled 0.03 Å), cutoff 4.5 Å; the same pairs from both; MD step: "
        "Langevin, shipped BaTiO3 `fast` force field (float32), minimum over interleaved rounds.",
        "",
        "| atoms | pairs | matscipy (ms) | vesin (ms) | speed-up | step, matscipy (ms) "
        "| step, vesin (ms) | step ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        nl, st = r["nl_ms"], r["step_ms"]
        timed = st["vesin"] is not None
        steps = (
            f"{st['matscipy']:.1f} | {st['vesin']:.1f} | {st['vesin'] / st['matscipy']:.2f}"
            if timed
            else "– | – | –"
        )
        lines.append(
            f"| {r['atoms']} | {r['pairs']} | {nl['matscipy']:.2f} | {nl['vesin']:.2f} "
            f"| {nl['matscipy'] / nl['vesin']:.1f}× | {steps} |"
        )
    write_results_md(RESULTS / "neighbours.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
