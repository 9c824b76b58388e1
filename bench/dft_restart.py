"""Does a checkpointed (interrupted and restarted) ABINIT run give the uninterrupted labels?

`run_abinit` stops a long ground-state SCF every ``checkpoint_s`` seconds and restarts it from
the saved wavefunctions. This runs structure 0 of the 5-atom CaTiO3 batch with Z* (cheap
settings: 30 Ha, 2×2×2 k-mesh) once straight through and once with a checkpoint every 8 s,
with and without the two unconverged buffer bands (``nbdbuf``), and compares forces, energy
and raw Z*:

    python bench/dft_restart.py

Writes bench/results/dft_restart_zstar.json and .md (machine and date).
"""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

import numpy as np
from ase.io import read
from results_md import write_results_md

from bornfield.label import preset, run_abinit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    atoms = read(ROOT / "data" / "catio3" / "structures_5atom_batch1.xyz", index=0)
    rows = {}
    for bands in (2, 0):
        s = preset("production", kpt_length=7.5, ecut=30.0, extra_bands=bands)
        work = Path("/tmp/bornfield_dft_restart") / f"nb{bands}"
        ref = run_abinit(atoms, s, work / "straight", nprocs=1)
        got = run_abinit(atoms, s, work / "restarted", nprocs=1, checkpoint_s=8.0)
        prov = [json.loads(a.info["provenance"]) for a in (ref, got)]
        rows[bands] = {
            "restarts": prov[1]["scf_restarts"],
            "wall_s": [p["wall_time_s"] for p in prov],
            "dF_max_eV_per_A": float(np.abs(ref.arrays["forces"] - got.arrays["forces"]).max()),
            "dE_eV": float(abs(ref.info["energy"] - got.info["energy"])),
            "dZ_max_e": float(
                np.abs(ref.arrays["born_charges"] - got.arrays["born_charges"]).max()
            ),
        }
        print(bands, rows[bands], flush=True)
    meta = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, 1 MPI rank",
        "date": datetime.date.today().isoformat(),
    }
    (RESULTS / "dft_restart_zstar.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=1)
    )
    lines = [
        "# Checkpointed vs uninterrupted ABINIT run (structure 0 of CaTiO3 batch 1, 30 Ha, 2×2×2)",
        "",
        f"{meta['machine']}, {meta['date']}. Raw Z* (no ASR correction).",
        "",
        "| buffer bands (nbdbuf) | SCF restarts | ΔF max (eV/Å) | ΔE (eV) | ΔZ* max (e) |",
        "|---|---|---|---|---|",
    ]
    for bands, r in rows.items():
        lines.append(
            f"| {bands} | {r['restarts']} | {r['dF_max_eV_per_A']:.1e} | {r['dE_eV']:.1e} "
            f"| {r['dZ_max_e']:.1e} |"
        )
    write_results_md(RESULTS / "dft_restart_zstar.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
