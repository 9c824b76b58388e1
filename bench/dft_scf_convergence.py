"""Convergence of SCF energies, forces and stress (no Z*) in the k-mesh, cutoff or stopping rule.

Z* need a dense k-mesh (5×5×5 for 5-atom CaTiO3, see data/catio3/CARD.md); the k-mesh scan
asks whether energies, forces and stress would allow a coarser one for runs without Z* (for
CaTiO3 they do not: forces converge as slowly as Z*). The cutoff scan measures what a
pseudopotential costs (e.g. the hard HGH Zr of abinit-data against its softer Teter Zr). The
toldff scan asks whether SCF-only labels may stop on forces (ABINIT's toldff, Ha/Bohr) instead
of the density residual tolvrs 1e-10 (value 0, the reference), and what that saves in steps.
Each run is SCF only, at the production settings except the scanned one; deviations are from
the largest value of the scan (the smallest for toldff). Every finished run is cached as JSON,
so a study resumes after a kill:

    python bench/dft_scf_convergence.py kmesh catio3-5 7.5 11.5 15 18 22
    python bench/dft_scf_convergence.py ecut cazro3-5 35 45 55 65 80 --pseudo Zr=40zr.971106_mod
    python bench/dft_scf_convergence.py toldff catio3-20 0 1e-6 5e-6 2e-5 --kpt-length 1

The k-mesh is n_i = ceil(kpt_length / a_i) (Å); cutoff scans use a 2×2×2 mesh (the basis-set
error does not depend on it). Writes bench/results/dft_scf_<scan>_<system>[_<tag>].json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read
from results_md import write_results_md

from bornfield.label import preset, run_abinit
from bornfield.label.abinit import _scf_steps
from bornfield.label.generators import cubic_perovskite, perturbed
from bornfield.units import EV_PER_A3_TO_GPA

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def structure(system: str) -> tuple[Atoms, str]:
    """The structure of a system name and how it was made."""
    if system == "catio3-5":
        path = ROOT / "data" / "catio3" / "structures_5atom_batch1.xyz"
        return read(path, index=0), f"structure 0 of {path.name}"
    if system == "catio3-20":
        path = ROOT / "data" / "catio3" / "structures_20atom_md_batch1.xyz"
        return read(path, index=0), f"structure 0 of {path.name}"
    if system == "cazro3-5":
        atoms = perturbed(cubic_perovskite("CaZrO3"), 1, rattle=0.05, strain=0.02, seed=0)[0]
        return atoms, "cubic CaZrO3 (a = 4.12 Å), strain ≤ 0.02, rattle 0.05 Å, seed 0"
    raise SystemExit(f"unknown system {system!r}: catio3-5, catio3-20 or cazro3-5")


def run(
    scan: str, system: str, value: float, pseudos: dict, tag: str, nprocs: int, kpt: float | None
) -> dict:
    name = f"dft_scf_{scan}_{system}{'_' + tag if tag else ''}"
    cache = RESULTS / name / f"{value:g}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    atoms, _ = structure(system)
    base = preset("production", bec=False)
    over: dict = {
        "kmesh": {"kpt_length": value},
        "ecut": {"ecut": value, "kpt_length": 7.5},
        "toldff": {"toldff_scf": value or None},
    }[scan]
    if kpt is not None:
        over["kpt_length"] = kpt
    settings = preset("production", bec=False, pseudos={**base.pseudos, **pseudos}, **over)
    work = Path("/tmp/bornfield_dft_scf") / name / f"{value:g}"
    out_atoms = run_abinit(atoms, settings, work, nprocs)
    out = {
        "scf_steps": _scf_steps((work / "gs" / "run.abo").read_text()),
        "wall_s": json.loads(out_atoms.info["provenance"])["wall_time_s"],  # summed over stages
        "nprocs": nprocs,
        "value": value,
        "kmesh": list(settings.kmesh(atoms)),
        "energy": out_atoms.info["energy"],
        "forces": out_atoms.arrays["forces"].tolist(),
        "stress": np.asarray(out_atoms.info["stress"]).tolist(),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def compare(ref: dict, row: dict) -> dict:
    natoms = len(ref["forces"])
    return {
        "kmesh": row["kmesh"],
        "dE_meV_per_atom": 1e3 * abs(row["energy"] - ref["energy"]) / natoms,
        "dF_mae_meV_per_A": 1e3 * float(np.abs(np.subtract(row["forces"], ref["forces"])).mean()),
        "dF_max_meV_per_A": 1e3 * float(np.abs(np.subtract(row["forces"], ref["forces"])).max()),
        "dstress_max_GPa": EV_PER_A3_TO_GPA
        * float(np.abs(np.subtract(row["stress"], ref["stress"])).max()),
        "wall_min": row["wall_s"] / 60,
        "scf_steps": row.get("scf_steps"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scan", choices=["kmesh", "ecut", "toldff"])
    p.add_argument("system", choices=["catio3-5", "catio3-20", "cazro3-5"])
    p.add_argument(
        "values", type=float, nargs="+", help="kpt_length (Å), ecut (Ha) or toldff (Ha/Bohr)"
    )
    p.add_argument("--kpt-length", type=float, help="k-mesh of every run (Å; 1: one k-point)")
    p.add_argument("--pseudo", action="append", default=[], help="EL=FILE under the psp folder")
    p.add_argument("--tag", default="", help="suffix of the result names (e.g. the pseudo)")
    p.add_argument("--np", type=int, default=1, dest="nprocs")
    args = p.parse_args()
    pseudos = dict(item.split("=", 1) for item in args.pseudo)
    rows = {}
    tight_first = args.scan == "toldff"  # the reference first
    for v in sorted(args.values, reverse=not tight_first):
        print(f"{args.scan} {v:g} ...", flush=True)
        rows[v] = run(args.scan, args.system, v, pseudos, args.tag, args.nprocs, args.kpt_length)
    ref = min(rows) if tight_first else max(rows)
    table = {v: compare(rows[ref], r) for v, r in sorted(rows.items())}
    _, how = structure(args.system)
    unit = {"kmesh": "kpt_length (Å)", "ecut": "ecut (Ha)", "toldff": "toldff (Ha/Bohr)"}[args.scan]
    meta = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "date": datetime.date.today().isoformat(),
        "system": f"{args.system}: {how}",
        "pseudos": {**preset("production").pseudos, **pseudos},
        "reference": "tolvrs 1e-10" if tight_first else f"{unit} {ref:g}",
        "nprocs": args.nprocs,
        "kpt_length": args.kpt_length,
    }
    name = f"dft_scf_{args.scan}_{args.system}{'_' + args.tag if args.tag else ''}"
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"meta": meta, "rows": {f"{k:g}": v for k, v in table.items()}}, indent=1)
    )
    lines = [
        f"# SCF convergence in {args.scan}, {meta['system']}",
        "",
        f"{meta['machine']}, {meta['date']}; production settings except {unit}"
        + (f" and kpt_length {args.kpt_length:g} Å" if args.kpt_length else "")
        + "; deviations "
        f"from {meta['reference']}; pseudopotentials {meta['pseudos']}. Wall times on "
        f"{args.nprocs} MPI rank(s) with other jobs sharing the 2 cores: read them as upper bounds.",
        "",
        f"| {unit} | k-mesh | ΔE (meV/atom) | ΔF MAE (meV/Å) | ΔF max (meV/Å) | Δσ max (GPa) "
        "| SCF steps | wall (min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, t in table.items():
        lines.append(
            f"| {k:g} | {'×'.join(map(str, t['kmesh']))} | {t['dE_meV_per_atom']:.3f} | "
            f"{t['dF_mae_meV_per_A']:.2f} | {t['dF_max_meV_per_A']:.2f} | "
            f"{t['dstress_max_GPa']:.4f} | {t['scf_steps'] or ''} | {t['wall_min']:.1f} |"
        )
    write_results_md(RESULTS / f"{name}.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
