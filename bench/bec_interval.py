"""Z* refresh interval k: its effect on the finite-field ε and on the step cost.

For each k, a zero-field and a field run (E along z) share one seed (paired), on the relaxed
cell (positions and cell) with the shipped models: by default the 80-atom Pnma CaTiO3 cell of
the default run (``bornfield run``: 2×1×2, 5e7 V/m, compiled float32 force field), or the
2×2×2 BaTiO3 cell with ``--system batio3``; ε_ion[:, z] comes from
:func:`bornfield.analysis.dielectric.finite_field_epsilon` (paired, block-averaged errors).
The shift of each k from k = 1 is measured on the paired series
[P_E(t) − P_0(t)]_k − [P_E(t) − P_0(t)]_1 (all runs share the seed), whose block error is far
smaller than either ε's, so that even a small systematic effect of k shows.

    python bench/bec_interval.py [--system catio3] [--ks 1,10,20,50] [--steps 6000]
                                 [--temperatures 300,900]

A k written ``10x`` extrapolates Z* linearly from the last two refreshes instead of holding it
(``FieldCalculator(bec_extrapolate=True)``).

Writes bench/results/bec_interval_<system>[_extrapolated].{json,md} (machine and date
included).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
from results_md import write_results_md

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    import torch

    from bornfield.analysis.dielectric import relax
    from bornfield.label.generators import cubic_perovskite, named_structure
    from bornfield.md.run import MDConfig
    from bornfield.models.bec import load_model
    from bornfield.models.force_field import load_calculator

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", choices=["catio3", "batio3"], default="catio3")
    p.add_argument("--ks", default="1,10,20,50", help="e.g. 1,10,10x (x: extrapolated Z*)")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--temperatures", default="300,900", help="K, comma-separated")
    p.add_argument("--field", type=float, default=5e7, help="V/m")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-compile", action="store_true", help="eager force field")
    p.add_argument("--work", default="/tmp/bornfield_bec_interval")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    models = ROOT / "models" / args.system
    ff = load_calculator(models / "ff", dtype="float32", compile=not args.no_compile)
    bec = load_model(models / "bec", dtype=torch.float32)
    if args.system == "catio3":  # the default run's cell (config.SystemConfig)
        atoms, label = named_structure("pnma").repeat((2, 1, 2)), "Pnma CaTiO3 2×1×2"
    else:
        atoms, label = cubic_perovskite("BaTiO3").repeat(2), "2×2×2 BaTiO3"
    atoms.rattle(0.02, seed=0)
    atoms.calc = load_calculator(models / "ff", dtype="float64")
    relax(atoms, fmax=1e-3, relax_cell=True)  # the zero-field ground state, cell included
    atoms.calc = None
    e_z = np.array([0.0, 0.0, args.field * 1e-10])  # V/Å
    ks = args.ks.split(",")
    rows: dict[str, dict[str, dict]] = {}
    for temp in [float(t) for t in args.temperatures.split(",")]:
        cfg = MDConfig(temperature=temp, steps=args.steps, log_interval=5,
                       traj_interval=args.steps, seed=1)  # fmt: skip
        rows[f"{temp:g}"] = _sweep(args, atoms, ff, bec, e_z, cfg, ks)
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, {args.threads} torch thread(s)",
        "date": datetime.date.today().isoformat(),
        "system": f"relaxed {label} ({len(atoms)} atoms), shipped models "
        f"({'compiled ' if not args.no_compile else ''}float32 force field), Langevin, "
        f"{args.steps} steps of 2 fs, E = {args.field:.0e} V/m along z, paired seeds",
    }
    RESULTS.mkdir(exist_ok=True)
    # runs with extrapolated Z* go to their own file, beside the held-Z* results
    name = f"bec_interval_{args.system}" + ("_extrapolated" if "x" in args.ks else "")
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Z* refresh interval k ({meta['machine']}, {meta['date']})", "", meta["system"]
             + ("; k written 10x: Z* extrapolated linearly from the last two refreshes"
                if "x" in args.ks else ""), "",
             "| T (K) | k | ε_zz | ε_xz | ε_yz | ε_zz(k) − ε_zz(1), paired | step (ms) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for temp, by_k in rows.items():
        for k, r in by_k.items():
            c, e = r["eps_col_z"], r["eps_col_z_err"]
            lines.append(
                f"| {temp} | {k} | {c[2]:.1f} ± {e[2]:.1f} | {c[0]:.1f} ± {e[0]:.1f} "
                f"| {c[1]:.1f} ± {e[1]:.1f} | {r['shift_zz']:.2f} ± {r['shift_zz_err']:.2f} "
                f"| {1e3 * r['step_s']:.1f} |"
            )
    write_results_md(RESULTS / f"{name}.md", lines)
    print("\n".join(lines))


def _sweep(args, atoms, ff, bec, e_z, cfg, ks: list[str]) -> dict[str, dict]:
    """Paired zero-field and field runs for each k at one temperature; shifts against the
    first k."""
    from bornfield.analysis.dielectric import _pol, finite_field_epsilon, read_observables
    from bornfield.analysis.stats import block_average, block_size
    from bornfield.calculators import FieldCalculator
    from bornfield.md.run import run_md
    from bornfield.units import EPSILON_0_SI

    rows, dps = {}, {}
    for k in ks:
        obs, wall = {}, {}
        for name, field in (("zero", np.zeros(3)), ("field", e_z)):
            out = Path(args.work) / f"T{cfg.temperature:g}_k{k}_{name}"
            calc = FieldCalculator(ff, bec, field, reference=atoms, bec_interval=int(k.rstrip("x")),
                                   bec_extrapolate=k.endswith("x"))  # fmt: skip
            t0 = time.perf_counter()
            run_md(atoms, calc, cfg, out, log=lambda m: None)
            wall[name] = (time.perf_counter() - t0) / cfg.steps
            obs[name] = read_observables(out)
        res = finite_field_epsilon(obs["zero"], [(e_z, obs["field"])], paired=True)
        dps[k] = _pol(obs["field"]) - _pol(obs["zero"])  # C/m²
        col = np.asarray(res["epsilon_ionic"])[:, 2]
        err = np.asarray(res["epsilon_ionic_error"])[:, 2]
        rows[k] = {"eps_col_z": col.tolist(), "eps_col_z_err": err.tolist(),
                   "step_s": float(np.mean(list(wall.values())))}  # fmt: skip
        print(cfg.temperature, k, rows[k], flush=True)
    k1 = ks[0]
    for k, r in rows.items():
        diff = (dps[k] - dps[k1])[:, 2] / (EPSILON_0_SI * args.field)  # ε_zz(k) − ε_zz(k1)
        if k == k1:
            r["shift_zz"], r["shift_zz_err"] = 0.0, 0.0
            continue
        mean, err, _ = block_average(diff, block_size(diff))
        r["shift_zz"], r["shift_zz_err"] = float(mean), float(err)
    return rows


if __name__ == "__main__":
    main()
