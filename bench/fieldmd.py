"""Field-MD speed (issue: field-coupled MD): cost of an MD step with and without the field.

For each cell size, in a fresh process (so peak memory is per size), one Langevin MD step is
timed (the minimum over interleaved rounds) for:
  bare        MACE (float32) alone, bornfield's lean calculator (what `bornfield md` uses)
  bare_mlp    the same with the radial MLP instead of its spline table (for the table's gain)
  bare_e3nn   the same with neither the table nor the fused convolution (mace-torch's layers)
  bare_mace   MACE (float32) alone through mace-torch's MACECalculator (for the lean gain)
  field_k1    FieldCalculator: MACE + Z* model every step (float32)
  field_kK    FieldCalculator with Z* refreshed every K steps
  field_npt_kK the field calculator under MTK NpT (forces and stress every step)
  bare_compiled, field_kK_compiled, field_npt_kK_compiled (with --compile) the same with the force field
              torch.compile-d (``bornfield md --compile``)
  composite   the paper-style composite: mace-torch MACECalculator (its default float64) plus a
              separate Z* model (float64) evaluated every step through ASE
Peak RSS is given twice: of the timing process (which holds all the calculators above) and of
a process that runs only the field MD (the field calculator, eager and compiled: P3's figure).
Ratios are taken within one process run; every configuration is timed once per round and the
minimum over rounds is kept (the machine is a shared VM: medians of back-to-back blocks were
off by up to 30 % between configurations). Writes bench/results/fieldmd.json and fieldmd.md
(fieldmd_t1.* with --threads 1).

    python bench/fieldmd.py --ff MODEL --bec MODEL [--sizes 160,640,1280] [--k 10] [--extrapolate] [--compile]
        [--min-steps 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from results_md import write_results_md

RESULTS = Path(__file__).parent / "results"


SYSTEMS = {
    "batio3": "cubic BaTiO3 supercells (rattled 0.03 Å)",
    "catio3": "Pnma CaTiO3 supercells of the experimental 20-atom cell (rattled 0.03 Å)",
}


def cell_of(n_atoms: int, system: str = "batio3"):
    """A supercell of n atoms, lightly rattled: cubic BaTiO3 (5-atom units) or Pnma CaTiO3
    (20-atom units: 2×2×2, 4×4×2 and 4×4×4 for 160, 640 and 1280 atoms)."""
    from bornfield.label.generators import cubic_perovskite, pnma_catio3

    if system == "catio3":
        reps = {160: (2, 2, 2), 640: (4, 4, 2), 1280: (4, 4, 4)}[n_atoms]
        a = pnma_catio3().repeat(reps)
    else:
        reps = {160: (4, 4, 2), 640: (8, 4, 4), 1280: (8, 8, 4), 5120: (16, 16, 4),
                10240: (16, 16, 8)}[n_atoms]  # fmt: skip
        a = cubic_perovskite("BaTiO3").repeat(reps)
    a.rattle(0.03, seed=0)
    return a


def _dynamics(atoms, calc, ensemble: str = "langevin"):
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import MTKNPT
    from ase.md.velocitydistribution import thermalize_momenta

    a = atoms.copy()
    a.calc = calc
    rng = np.random.default_rng(0)
    thermalize_momenta(a, 300, rng=rng)
    if ensemble == "npt":  # as `bornfield md --ensemble npt`: MTK, all cell degrees of freedom
        dyn = MTKNPT(a, timestep=2 * units.fs, temperature_K=300, pressure_au=0.0,
                     tdamp=100 * units.fs, pdamp=1000 * units.fs)  # fmt: skip
    else:
        dyn = Langevin(a, timestep=2 * units.fs, temperature_K=300, friction=0.01 / units.fs,
                       fixcm=False, rng=rng)  # fmt: skip
    dyn.run(3)  # warm-up
    return dyn


def time_interleaved(
    atoms,
    calcs: dict,
    steps: dict,
    repeats: int,
    npt: set = frozenset(),
    calls: dict | None = None,
    rounds: dict | None = None,
) -> dict:
    """Seconds per MD step of each calculator: the minimum over ``repeats`` rounds, each round
    timing every calculator in turn, so that slow phases of a shared machine hit all alike.
    Calculators named in ``npt`` run under MTK NpT, the others under Langevin NVT. ``calls``
    (name → function) are timed in the same rounds, ``steps[name]`` calls each. ``rounds``, if
    given, receives every round's time per step (name → list), for ratios paired by round."""
    runs = {
        name: partial(_dynamics(atoms, calc, "npt" if name in npt else "langevin").run, steps[name])
        for name, calc in calcs.items()
    }
    for name, f in (calls or {}).items():
        f()  # warm-up
        runs[name] = partial(lambda f, n: [f() for _ in range(n)], f, steps[name])
    best = dict.fromkeys(runs, np.inf)
    per_round: dict = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            per_round[name].append((time.perf_counter() - t0) / steps[name])
            best[name] = min(best[name], per_round[name][-1])
    if rounds is not None:
        rounds.update(per_round)
    return best


class Composite:
    """MACECalculator + a separate Z* calculator through ASE each step (paper-style)."""

    def __new__(cls, ff, bec_calc, field):
        from ase.calculators.calculator import Calculator, all_changes

        class _C(Calculator):
            implemented_properties = ["energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                a = self.atoms.copy()
                a.calc = ff
                e, f = a.get_potential_energy(), a.get_forces()
                b = self.atoms.copy()
                b.calc = bec_calc
                z = bec_calc.get_property("born_charges", b)
                self.results = {"energy": e, "forces": f + np.einsum("a,kab->kb", field, z)}

        return _C()


def worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from mace.calculators import MACECalculator

    from bornfield.calculators import FieldCalculator
    from bornfield.models.bec import BECCalculator, load_model, predict_bec
    from bornfield.models.force_field import load_calculator
    from bornfield.models.mace_calculator import MACEForceField

    atoms = cell_of(args.size, args.system)
    field = np.array([0.0, 0.0, 0.005])
    steps = max(args.min_steps, 12000 // args.size)
    out = {"n_atoms": len(atoms), "steps_timed": steps}
    ff32 = load_calculator(args.ff, dtype="float32")
    bec32 = load_model(args.bec, dtype=torch.float32)
    mace32 = MACECalculator(
        model_paths=str(Path(args.ff) / "ff_float32.model"), device="cpu", default_dtype="float32"
    )
    ff64 = MACECalculator(
        model_paths=str(Path(args.ff) / "ff.model"), device="cpu", default_dtype="float64"
    )
    schedule = {"bec_interval": args.k, "bec_extrapolate": args.extrapolate}  # the k runs
    calcs = {
        "bare": ff32,
        "bare_mlp": MACEForceField(Path(args.ff) / "ff_float32.model", tabulate=False),
        "bare_e3nn": MACEForceField(Path(args.ff) / "ff_float32.model", fuse=False, tabulate=False),
        "bare_mace": mace32,
        "field_k1": FieldCalculator(ff32, bec32, field, bec_interval=1),
        f"field_k{args.k}": FieldCalculator(ff32, bec32, field, **schedule),
        "composite": Composite(
            ff64, BECCalculator(load_model(args.bec, dtype=torch.float64)), field
        ),
    }
    calcs[f"field_npt_k{args.k}"] = FieldCalculator(ff32, bec32, field, **schedule)
    if args.compile:
        t0 = time.perf_counter()
        ffc = load_calculator(args.ff, dtype="float32", compile=True)
        a = atoms.copy()
        a.calc = ffc
        a.get_forces()
        out["compile_s"] = time.perf_counter() - t0
        calcs["bare_compiled"] = ffc
        calcs[f"field_k{args.k}_compiled"] = FieldCalculator(ffc, bec32, field, **schedule)
        calcs[f"field_npt_k{args.k}_compiled"] = FieldCalculator(
            load_calculator(args.ff, dtype="float32", compile=True),
            bec32,
            field,
            **schedule,
        )
    calls = {"bec_predict": partial(predict_bec, bec32, atoms)}  # Z* of all atoms, float32
    n = {name: steps for name in calcs} | {"composite": max(2, steps // 2), "bec_predict": 3}
    npt = {f"field_npt_k{args.k}", f"field_npt_k{args.k}_compiled"}
    per_round: dict = {}
    for name, t in time_interleaved(atoms, calcs, n, args.repeats, npt, calls, per_round).items():
        out[f"{name}_s"] = t
    out["rounds_s"] = per_round
    out["peak_rss_GiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return out


def memory_worker(args) -> dict:
    """Peak RSS of a process that runs only the field MD (`bornfield md`'s calculator, k = K,
    eager or compiled) for 20 Langevin steps: the P3 memory figure, without the other
    calculators the timing process holds."""
    import torch

    torch.set_num_threads(args.threads)
    from bornfield.calculators import FieldCalculator
    from bornfield.models.bec import load_model
    from bornfield.models.force_field import load_calculator

    ff = load_calculator(args.ff, dtype="float32", compile=args.memory == "compiled")
    calc = FieldCalculator(
        ff, load_model(args.bec, dtype=torch.float32), np.array([0, 0, 0.005]),
        bec_interval=args.k, bec_extrapolate=args.extrapolate,
    )  # fmt: skip
    _dynamics(cell_of(args.size, args.system), calc).run(20)
    return {"peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ff", required=True)
    p.add_argument("--bec", required=True)
    p.add_argument("--sizes", default="160,640,1280")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--extrapolate", action="store_true", help="Z* extrapolated between refreshes")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--min-steps", type=int, default=10,
        help="MD steps per timing at least (12000 / atoms otherwise); more steady at large cells",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--system", choices=list(SYSTEMS), default="batio3")
    p.add_argument("--compile", action="store_true", help="also time torch.compile-d models")
    p.add_argument("--name", help="results file stem (default fieldmd[_catio3][_t<threads>])")
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--memory", choices=["eager", "compiled"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.size:
        print(json.dumps(memory_worker(args) if args.memory else worker(args)))
        return
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        cmd = [sys.executable, __file__, "--ff", args.ff, "--bec", args.bec, "--k", str(args.k),
               "--repeats", str(args.repeats), "--threads", str(args.threads), "--system", args.system, "--size", str(n),
               "--min-steps", str(args.min_steps)]  # fmt: skip
        cmd += ["--compile"] if args.compile else []
        cmd += ["--extrapolate"] if args.extrapolate else []
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        for mode in ["eager"] + (["compiled"] if args.compile else []):
            res = subprocess.run(
                cmd + ["--memory", mode], capture_output=True, text=True, check=True
            )
            row[f"peak_rss_field_md_{mode}_GiB"] = json.loads(res.stdout.strip().splitlines()[-1])[
                "peak_rss_GiB"
            ]
        rows.append(row)
        print(row, flush=True)
    k = f"field_k{args.k}_s"
    for r in rows:
        r["P1_field_k1_over_bare"] = r["field_k1_s"] / r["bare_s"]
        r[f"P1_field_k{args.k}_over_bare"] = r[k] / r["bare_s"]
        r["P2_composite_over_field_k1"] = r["composite_s"] / r["field_k1_s"]
        r[f"P2_composite_over_field_k{args.k}"] = r["composite_s"] / r[k]
        r["us_per_atom_step_field"] = 1e6 * r[k] / r["n_atoms"]
        r["bec_predict_over_bare"] = r["bec_predict_s"] / r["bare_s"]
        r[f"npt_over_nvt_k{args.k}"] = r[f"field_npt_k{args.k}_s"] / r[k]
    per_atom = [r["us_per_atom_step_field"] for r in rows]
    meta = {
        "machine": f"{platform.node()}, {platform.machine()}, {args.threads} torch threads",
        "date": datetime.date.today().isoformat(),
        "system": f"{SYSTEMS[args.system]}; field 0.005 V/Å along z",
        "ff": args.ff,
        "bec": args.bec,
        "P3_per_atom_spread": max(per_atom) / min(per_atom),
    }
    if args.compile:
        kc = f"field_k{args.k}_compiled_s"
        kn = f"field_npt_k{args.k}_compiled_s"
        per_atom_c = [1e6 * r[kc] / r["n_atoms"] for r in rows]
        for r in rows:  # P1 paired by round: each field block against the bare block beside it
            field = r["rounds_s"][f"field_k{args.k}_compiled"]
            ratio = np.divide(field, r["rounds_s"]["bare_compiled"])
            r["P1_compiled_paired"] = [float(x) for x in np.percentile(ratio, [0, 50, 100])]
        meta["P3_per_atom_spread_compiled"] = max(per_atom_c) / min(per_atom_c)
    RESULTS.mkdir(exist_ok=True)
    stem = args.name or "fieldmd" + ("_catio3" if args.system == "catio3" else "") + (
        "" if args.threads == 2 else f"_t{args.threads}"
    )
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# Field-MD step cost ({meta['machine']}, {meta['date']})",
        "",
        meta["system"]
        + f"; Z* refresh interval k = {args.k}"
        + (", Z* extrapolated between refreshes." if args.extrapolate else "."),
        "",
        f"| atoms | bare (ms) | bare, radial MLP (ms) | bare, MLP + e3nn conv. (ms) | MACECalculator (ms) | field k=1 (ms) | field k={args.k} (ms) | composite (ms) | Z* predict (ms) "
        f"| Z* / bare | P1 k=1 | P1 k={args.k} | P2 vs k=1 | P2 vs k={args.k} | µs/atom/step | peak RSS (GiB) "
        f"| NpT field k={args.k} (ms) | NpT / NVT | peak RSS, field MD alone (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_atoms']} | {1e3 * r['bare_s']:.0f} | {1e3 * r['bare_mlp_s']:.0f} "
            f"| {1e3 * r['bare_e3nn_s']:.0f} "
            f"| {1e3 * r['bare_mace_s']:.0f} "
            f"| {1e3 * r['field_k1_s']:.0f} | {1e3 * r[k]:.0f} "
            f"| {1e3 * r['composite_s']:.0f} | {1e3 * r['bec_predict_s']:.0f} "
            f"| {r['bec_predict_over_bare']:.2f} | {r['P1_field_k1_over_bare']:.2f} | {r[f'P1_field_k{args.k}_over_bare']:.2f} "
            f"| {r['P2_composite_over_field_k1']:.2f} | {r[f'P2_composite_over_field_k{args.k}']:.2f} "
            f"| {r['us_per_atom_step_field']:.0f} | {r['peak_rss_GiB']:.2f} "
            f"| {1e3 * r[f'field_npt_k{args.k}_s']:.0f} | {r[f'npt_over_nvt_k{args.k}']:.2f} "
            f"| {r['peak_rss_field_md_eager_GiB']:.2f} |"
        )
    lines.append(f"\nP3: per-atom cost spread over sizes {meta['P3_per_atom_spread']:.2f}x.")
    if args.compile:
        lines += [
            "",
            "With the force field torch.compile-d (`bornfield md --compile`; first call compiles):",
            "",
            f"| atoms | compile + first call (s) | bare compiled (ms) | eager / compiled, bare "
            f"| field k={args.k} compiled (ms) | eager / compiled, field | P1 compiled "
            "| P1 compiled, paired by round: median [range] "
            f"| P2 vs compiled field k={args.k} | µs/atom/step | NpT field k={args.k} compiled (ms) "
            "| eager / compiled, NpT | peak RSS, field MD alone (GiB) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r, pa in zip(rows, per_atom_c, strict=True):
            lines.append(
                f"| {r['n_atoms']} | {r['compile_s']:.1f} | {1e3 * r['bare_compiled_s']:.0f} "
                f"| {r['bare_s'] / r['bare_compiled_s']:.2f} | {1e3 * r[kc]:.0f} "
                f"| {r[k] / r[kc]:.2f} | {r[kc] / r['bare_compiled_s']:.2f} "
                "| {1:.3f} [{0:.3f}–{2:.3f}] ".format(*r["P1_compiled_paired"])
                + f"| {r['composite_s'] / r[kc]:.2f} | {pa:.0f} | {1e3 * r[kn]:.0f} "
                f"| {r[f'field_npt_k{args.k}_s'] / r[kn]:.2f} "
                f"| {r['peak_rss_field_md_compiled_GiB']:.2f} |"
            )
        lines.append(f"\nP3 compiled: {meta['P3_per_atom_spread_compiled']:.2f}x.")
    write_results_md(RESULTS / f"{stem}.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
