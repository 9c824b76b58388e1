"""Z* against the DFPT settings that cost the most: k-mesh and response tolerances.

Two studies, each run cached as JSON so the script resumes after a kill:

- ``kmesh``: cubic CaTiO3 (a = 3.84 Å; symmetry keeps it cheap), ecut 35 Ha, shifted
  n×n×n meshes; Z* after the ASR correction, compared with the densest mesh.
- ``tolerances``: structure 0 of ``data/catio3/structures_5atom_batch1.xyz`` (no symmetry) with
  SCF/ddk/field tolerances and extra bands varied, each compared with a tight reference at the
  same basis and mesh. A cheap basis and mesh (25 Ha, 3×3×3) are enough: how far a response is
  from self-consistency does not depend much on either, and the wall-time ratios carry over.

    python bench/dft_zstar_settings.py [kmesh] [tolerances] [--cached-only]

``--cached-only`` tabulates the runs finished so far without starting new ones.

Writes bench/results/dft_zstar_settings.{json,md} (machine and date included).
"""

from __future__ import annotations

import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
from results_md import write_results_md

from bornfield.data import io
from bornfield.label import cubic_perovskite, preset, run_abinit
from bornfield.units import EV_PER_A3_TO_GPA

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / "dft_zstar_settings"
WORK = Path("/tmp/bornfield_dft_zstar_settings")

KMESH = {f"k{n}": dict(ecut=35.0, kpt_length=3.84 * n) for n in (3, 4, 5, 6, 8)}
TOL_BASE = dict(ecut=25.0, kpt_length=11.0)
TOLERANCES = {  # the first is the reference
    "tight": dict(tolvrs_scf=1e-12, tolwfr_ddk=1e-20, tolvrs_efield=1e-12, extra_bands=2),
    "scf1e-10_ddk1e-16_field1e-8_nb2": dict(
        tolvrs_scf=1e-10, tolwfr_ddk=1e-16, tolvrs_efield=1e-8, extra_bands=2
    ),
    "scf1e-10_ddk1e-12_field1e-6_nb2": dict(
        tolvrs_scf=1e-10, tolwfr_ddk=1e-12, tolvrs_efield=1e-6, extra_bands=2
    ),
    "scf1e-10_ddk1e-12_field1e-6_nb0": dict(
        tolvrs_scf=1e-10, tolwfr_ddk=1e-12, tolvrs_efield=1e-6, extra_bands=0
    ),
    "scf1e-8_ddk1e-10_field1e-5_nb0": dict(
        tolvrs_scf=1e-8, tolwfr_ddk=1e-10, tolvrs_efield=1e-5, extra_bands=0
    ),
}


def _asr(z) -> np.ndarray:
    z = np.asarray(z)
    return z - z.mean(axis=0)


CACHED_ONLY = "--cached-only" in sys.argv


def run(study: str, name: str, atoms, overrides: dict) -> dict | None:
    cache = CACHE / f"{study}_{name}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    if CACHED_ONLY:
        return None
    settings = preset("production", **overrides)
    out = run_abinit(atoms, settings, WORK / f"{study}_{name}")
    row = {
        "wall_s": json.loads(out.info["provenance"])["wall_time_s"],  # summed over stages
        "kmesh": list(settings.kmesh(atoms)),
        "overrides": overrides,
        "born_charges": out.arrays["born_charges"].tolist(),
        "forces": out.arrays["forces"].tolist(),
        "stress": np.asarray(out.info["stress"]).tolist(),
        "epsilon_inf": np.asarray(out.info["epsilon_inf"]).tolist(),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(row))
    print(study, name, f"{row['wall_s']:.0f} s", flush=True)
    return row


def kmesh_study() -> dict:
    atoms = cubic_perovskite("CaTiO3")
    rows = {n: r for n, o in KMESH.items() if (r := run("kmesh", n, atoms, o)) is not None}
    densest = list(rows)[-1]
    ref = _asr(rows[densest]["born_charges"])
    table = {}
    for n, r in rows.items():
        z = _asr(r["born_charges"])
        table[n] = {
            "kmesh": r["kmesh"],
            "Z_Ca_xx": z[0, 0, 0],
            "Z_Ti_xx": z[1, 0, 0],
            "Z_O_par": z[2, 2, 2],  # O at (½,½,0): Ti-O bond along z
            "Z_O_perp": z[2, 0, 0],
            "dZ_max_vs_densest_e": float(np.abs(z - ref).max()),
            "densest": densest,
            "eps_inf_xx": r["epsilon_inf"][0][0],
            "wall_s": r["wall_s"],
        }
    return table


def tolerance_study() -> dict:
    atoms = io.read(ROOT / "data/catio3/structures_5atom_batch1.xyz")[0]
    rows = {
        n: r
        for n, o in TOLERANCES.items()
        if (r := run("tolerances", n, atoms, {**TOL_BASE, **o})) is not None
    }
    if "tight" not in rows:
        return {}
    ref = rows["tight"]
    table = {}
    for n, r in rows.items():
        table[n] = {
            "kmesh": r["kmesh"],
            "wall_s": r["wall_s"],
            "wall_vs_tight": r["wall_s"] / ref["wall_s"],
            "dZ_max_e": float(np.abs(_asr(r["born_charges"]) - _asr(ref["born_charges"])).max()),
            "dF_max_meV_per_A": 1e3 * float(np.abs(np.subtract(r["forces"], ref["forces"])).max()),
            "dstress_max_GPa": EV_PER_A3_TO_GPA
            * float(np.abs(np.subtract(r["stress"], ref["stress"])).max()),
            "deps_inf_max": float(np.abs(np.subtract(r["epsilon_inf"], ref["epsilon_inf"])).max()),
        }
    return table


def main() -> None:
    studies = [a for a in sys.argv[1:] if not a.startswith("--")] or ["kmesh", "tolerances"]
    out_json = RESULTS / "dft_zstar_settings.json"
    result = json.loads(out_json.read_text()) if out_json.exists() else {}
    result["meta"] = {
        "machine": f"{platform.node()} {platform.machine()}, 2 cores, ABINIT on 2 MPI ranks",
        "date": datetime.date.today().isoformat(),
    }
    if "kmesh" in studies:
        result["kmesh"] = kmesh_study()
    if "tolerances" in studies:
        result["tolerances"] = tolerance_study()
    out_json.write_text(json.dumps(result, indent=1))
    lines = [f"# Z* vs DFPT settings ({result['meta']['machine']}, {result['meta']['date']})", ""]
    lines += [
        "Wall times: these runs shared the 2 cores with training and MD jobs (some at nice 19),",
        "so they are upper bounds, not the cost of each setting.",
        "",
    ]
    if "kmesh" in result:
        lines += [
            "Cubic CaTiO3, ecut 35 Ha, shifted n×n×n mesh, after the ASR correction:",
            "",
            "| mesh | Ca xx | Ti xx | O ∥ | O ⊥ | ε∞ xx | ΔZ* max vs densest (e) | wall (s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in result["kmesh"].values():
            lines.append(
                f"| {'×'.join(map(str, t['kmesh']))} | {t['Z_Ca_xx']:.3f} | {t['Z_Ti_xx']:.3f} | "
                f"{t['Z_O_par']:.3f} | {t['Z_O_perp']:.3f} | {t['eps_inf_xx']:.3f} | "
                f"{t['dZ_max_vs_densest_e']:.3f} | {t['wall_s']:.0f} |"
            )
        lines.append("")
    if "tolerances" in result:
        lines += [
            "Structure 0 of batch 1 (no symmetry), ecut 25 Ha, 3×3×3 (14 k-points), vs the tight",
            "reference (scf tolvrs 1e-12, ddk tolwfr 1e-20, field tolvrs 1e-12, 2 extra bands):",
            "",
            "| setting | ΔZ* max (e) | ΔF max (meV/Å) | Δσ max (GPa) | Δε∞ max | wall (s) | wall / tight |",
            "|---|---|---|---|---|---|---|",
        ]
        for n, t in result["tolerances"].items():
            lines.append(
                f"| {n} | {t['dZ_max_e']:.4f} | {t.get('dF_max_meV_per_A', 0):.2f} | "
                f"{t['dstress_max_GPa']:.4f} | {t['deps_inf_max']:.4f} | {t['wall_s']:.0f} | "
                f"{t['wall_vs_tight']:.2f} |"
            )
    write_results_md(RESULTS / "dft_zstar_settings.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
