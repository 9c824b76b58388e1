"""DFT convergence study for the ABINIT presets (issue: cheap and converged labels).

Runs one low-symmetry 5-atom CaTiO3 structure (and optionally the 20-atom Pnma cell) at a tight
reference setting and at candidate settings; reports, per candidate, the largest deviation from
the reference in Z* (e), forces (meV/Å) and stress (GPa), and the wall time on this machine.
Every finished run is cached as JSON, so the study resumes after a kill:

    python bench/dft_convergence.py [--system 5|20] [--only NAME ...]

Writes bench/results/dft_convergence_<system>.json and .md (with machine and date).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import numpy as np
from results_md import write_results_md

from bornfield.label import preset, run_abinit
from bornfield.label.generators import cubic_perovskite, perturbed, pnma_catio3
from bornfield.units import EV_PER_A3_TO_GPA

RESULTS = Path(__file__).parent / "results"

#: name -> preset overrides; "reference" is the tight setting every other row is compared with
CANDIDATES: dict[str, dict] = {
    "reference": dict(
        ecut=60, kpt_length=24, tolvrs_scf=1e-12, tolwfr_ddk=1e-20, tolvrs_efield=1e-10
    ),
    "ecut30_k4": dict(ecut=30, kpt_length=15),
    "ecut35_k4": dict(ecut=35, kpt_length=15),
    "ecut40_k4": dict(ecut=40, kpt_length=15),
    "ecut45_k4": dict(ecut=45, kpt_length=15),
    "ecut40_k3": dict(ecut=40, kpt_length=11),
    "ecut40_k4_loose": dict(ecut=40, kpt_length=15, tolwfr_ddk=1e-12, tolvrs_efield=1e-6),
    "ecut40_k4_nobuf": dict(ecut=40, kpt_length=15, extra_bands=0),
    "ecut40_k5": dict(ecut=40, kpt_length=19),
}


def structure(system: str):
    if system == "5":
        return perturbed(cubic_perovskite("CaTiO3"), 1, rattle=0.08, strain=0.02, seed=11)[0]
    return perturbed(pnma_catio3(), 1, rattle=0.05, strain=0.01, seed=11)[0]


def run(system: str, name: str, workroot: Path) -> dict:
    cache = RESULTS / f"dft_convergence_{system}" / f"{name}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    settings = preset("production", **CANDIDATES[name])
    atoms = run_abinit(structure(system), settings, workroot / f"{system}_{name}")
    out = {
        "wall_s": json.loads(atoms.info["provenance"])["wall_time_s"],  # summed over stages
        "energy": atoms.info["energy"],
        "forces": atoms.arrays["forces"].tolist(),
        "stress": atoms.info["stress"].tolist(),
        "born_charges": atoms.arrays["born_charges"].tolist(),
        "kmesh": list(settings.kmesh(atoms)),
        "settings": CANDIDATES[name],
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def compare(ref: dict, row: dict) -> dict:
    def zfix(z):  # compare after the ASR correction that the datasets get
        z = np.asarray(z)
        return z - z.mean(axis=0)

    return {
        "dZ_max_e": float(np.abs(zfix(row["born_charges"]) - zfix(ref["born_charges"])).max()),
        "asr_residual_e": float(np.abs(np.asarray(row["born_charges"]).sum(axis=0)).max()),
        "dF_max_meV_per_A": 1e3 * float(np.abs(np.subtract(row["forces"], ref["forces"])).max()),
        "dstress_max_GPa": EV_PER_A3_TO_GPA
        * float(np.abs(np.subtract(row["stress"], ref["stress"])).max()),
        "wall_min": row["wall_s"] / 60,
        "kmesh": row["kmesh"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", choices=["5", "20"], default="5")
    p.add_argument("--only", nargs="*", help="candidate names (default: all)")
    p.add_argument("--workdir", default="/tmp/bornfield_dft_convergence")
    args = p.parse_args()
    names = args.only or list(CANDIDATES)
    rows = {}
    for name in ["reference", *[n for n in names if n != "reference"]]:
        print(f"{name} ...", flush=True)
        rows[name] = run(args.system, name, Path(args.workdir))
    table = {n: compare(rows["reference"], r) for n, r in rows.items()}
    meta = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, 2 MPI ranks",
        "date": datetime.date.today().isoformat(),
        "system": f"{args.system}-atom CaTiO3",
    }
    (RESULTS / f"dft_convergence_{args.system}.json").write_text(
        json.dumps({"meta": meta, "rows": table}, indent=1)
    )
    lines = [
        f"# DFT convergence, {meta['system']} ({meta['machine']}, {meta['date']})",
        "",
        "| setting | k-mesh | ΔZ* max (e) | ASR residual (e) | ΔF max (meV/Å) | Δσ max (GPa) "
        "| wall (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, t in table.items():
        lines.append(
            f"| {n} | {'×'.join(map(str, t['kmesh']))} | {t['dZ_max_e']:.3f} | "
            f"{t['asr_residual_e']:.3f} | {t['dF_max_meV_per_A']:.1f} | {t['dstress_max_GPa']:.2f} "
            f"| {t['wall_min']:.1f} |"
        )
    write_results_md(RESULTS / f"dft_convergence_{args.system}.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
