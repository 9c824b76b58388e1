"""SCF steps of 20-atom CaTiO3 snapshots with other ABINIT mixing variables (issue: datasets).

A 20-atom Pnma SCF is the labelling queue's cost: every step saved is ≈ 4 % of it. Each run is
the production ground state of one MD snapshot (`structures_20atom_md_batch1.xyz`) at one
k-point (the mixing path does not depend on the k-sampling; see dft_scf_toldff_catio3-20.md), SCF
only, stopped by the production rule, with extra input lines appended; it reports the steps and
the final energy (which must not change). Finished runs are kept under --work, so a rerun only
adds what is new:

    python bench/dft_scf_mixing.py --structures 0,5,11 --variant base= \
        --variant "diemix05=diemix 0.5" --variant "npulay15=npulayit 15"

Writes bench/results/dft_scf_mixing.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import subprocess
import time
from pathlib import Path

from ase.io import read
from results_md import write_results_md

from bornfield.label.abinit import _scf_steps, preset, stage_inputs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STRUCTURES = ROOT / "data" / "catio3" / "structures_20atom_md_batch1.xyz"


def run(index: int, extra: list[str], work: Path) -> dict:
    """Steps, energy and wall time of one SCF; reused when its input is unchanged."""
    atoms = read(STRUCTURES, index)
    settings = preset("production", bec=False, kpt_length=1.0, diemix=None)
    text = stage_inputs(atoms, settings)["gs"] + "".join(f"{line}\n" for line in extra)
    work.mkdir(parents=True, exist_ok=True)
    result = work / "result.json"
    if (work / "run.abi").exists() and (work / "run.abi").read_text() == text and result.exists():
        return json.loads(result.read_text())
    (work / "run.abi").write_text(text)
    t0 = time.perf_counter()
    with open(work / "log", "w") as log:
        subprocess.run(["abinit", "run.abi"], cwd=work, stdout=log, stderr=subprocess.STDOUT)
    abo = (work / "run.abo").read_text()
    energies = re.findall(r"etotal\s+(-?\d+\.\d+E[+-]\d+)", abo)
    out = {
        "steps": _scf_steps(abo),
        "etotal_Ha": float(energies[-1]) if energies else None,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    result.write_text(json.dumps(out))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--structures", default="0,5,11", help="indices into the structures file")
    p.add_argument("--variant", action="append", required=True,
                   help="NAME=ABINIT LINE[;LINE...] (NAME= alone: the preset as it is)")  # fmt: skip
    p.add_argument("--work", default="/tmp/bornfield_dft_mixing")
    args = p.parse_args()
    variants = {}
    for v in args.variant:
        name, _, lines = v.partition("=")
        variants[name] = [x.strip() for x in lines.split(";") if x.strip()]
    out = RESULTS / "dft_scf_mixing.json"
    old = json.loads(out.read_text()) if out.exists() else {"rows": {}, "variants": {}}
    rows, known = old["rows"], old["variants"]
    for i in (int(x) for x in args.structures.split(",")):
        for name, extra in variants.items():
            if known.get(name, extra) != extra:
                raise SystemExit(f"variant {name!r} was {known[name]} before; give it a new name")
            print(f"structure {i}, {name} ...", flush=True)
            rows[f"{i}/{name}"] = run(i, extra, Path(args.work) / f"s{i}" / name)
    known |= variants
    meta = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "date": datetime.date.today().isoformat(),
        "structures": STRUCTURES.name,
    }
    out.write_text(json.dumps({"meta": meta, "variants": known, "rows": rows}, indent=1))
    ids = sorted({int(k.split("/")[0]) for k in rows})
    lines = [
        "# SCF steps of 20-atom CaTiO3 snapshots against ABINIT's mixing variables",
        "",
        f"{meta['machine']}, {meta['date']}; snapshots of {meta['structures']}; production "
        "ground state (SCF only, its stopping rule) at one k-point, 1 MPI rank, other jobs on "
        "the 2 cores. Every run so far; – not run.",
        "",
        "| variant | extra input | " + " | ".join(f"steps, snapshot {i}" for i in ids) + " |",
        "|---|---|" + "---|" * len(ids),
    ]
    for name, extra in known.items():
        steps = [rows.get(f"{i}/{name}", {}).get("steps", "–") for i in ids]
        lines.append(
            f"| {name} | {'; '.join(extra) or '–'} | " + " | ".join(map(str, steps)) + " |"
        )
    spread = 0.0
    for i in ids:
        e = [r["etotal_Ha"] for k, r in rows.items() if k.startswith(f"{i}/") and r["etotal_Ha"]]
        spread = max(spread, (max(e) - min(e)) * 27211.4)
    lines += [
        "",
        f"Largest spread of a snapshot's final energy over the variants: {spread:.2g} meV.",
    ]
    write_results_md(RESULTS / "dft_scf_mixing.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
