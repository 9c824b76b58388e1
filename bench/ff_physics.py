"""Physics checks of BaTiO3 force fields, as in the model card: relaxed cell, cohesion, NpT heating.

For each model directory (``ff.model`` float64 for statics, ``ff_float32.model`` for MD):
  relaxed   a 2×2×2 cubic cell (a = 4.00 Å, rattled 0.02 Å, seed 0) relaxed with its cell
            (FIRE on ASE's FrechetCellFilter, fmax 0.005 eV/Å): lengths, angles, V / V_start
  cohesion  energy per atom of the cubic 5-atom cell expanded ×3 minus at a = 4.00 Å (free atoms
            should lie eV above the crystal; a least-squares E0 fit alone puts them at ~0.1 eV)
  npt       `bornfield md`'s MTK NpT, 40 atoms (2×2×2 from a = 4.00 Å), 100 → 500 K at
            100 K/ps (2000 steps of 2 fs), seed 0: V / V_start over the last quarter (mean ± std)
            and its maximum
Writes bench/results/ff_physics.{json,md} with machine and date.

    python bench/ff_physics.py models/batio3/ff /path/to/other/ff [--work /tmp/ff_physics]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import numpy as np
from results_md import write_results_md

RESULTS = Path(__file__).resolve().parent / "results"


def checks(model: Path, work: Path) -> dict:
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    from bornfield.label.generators import cubic_perovskite
    from bornfield.md.run import MDConfig, run_md
    from bornfield.models.force_field import load_calculator

    out: dict = {}
    calc = load_calculator(model / "ff.model", dtype="float64")
    a = cubic_perovskite("BaTiO3", a=4.0).repeat(2)
    a.rattle(0.02, seed=0)
    v_start = a.get_volume()
    a.calc = calc
    FIRE(FrechetCellFilter(a), logfile=None).run(fmax=0.005, steps=2000)
    par = a.cell.cellpar()
    out["relaxed_lengths_A"] = [round(float(x), 3) for x in par[:3]]
    out["relaxed_angles_deg"] = [round(float(x), 2) for x in par[3:]]
    out["relaxed_volume_ratio"] = a.get_volume() / v_start

    unit = cubic_perovskite("BaTiO3", a=4.0)
    far = unit.copy()
    far.set_cell(unit.cell * 3, scale_atoms=True)
    e = [calc.get_potential_energy(x) / len(x) for x in (unit, far)]
    out["expansion_x3_eV_per_atom"] = e[1] - e[0]

    md = cubic_perovskite("BaTiO3", a=4.0).repeat(2)
    cfg = MDConfig(ensemble="npt", ramp=(100.0, 500.0, 100.0), steps=2000, seed=0,
                   traj_interval=1000, checkpoint_interval=1000)  # fmt: skip
    d = work / model.resolve().as_posix().strip("/").replace("/", "_")
    run_md(md, load_calculator(model / "ff_float32.model"), cfg, d, log=lambda m: None)
    obs = np.genfromtxt(d / "observables.csv", delimiter=",", names=True)
    v = obs["volume_A3"] / md.get_volume()
    last = v[3 * len(v) // 4 :]
    out["npt_volume_ratio_last_quarter"] = [float(last.mean()), float(last.std())]
    out["npt_volume_ratio_max"] = float(v.max())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--work", default="/tmp/bornfield_ff_physics")
    args = p.parse_args()
    rows = {m: checks(Path(m), Path(args.work)) for m in args.models}
    meta = {
        "machine": f"{platform.node()} {platform.machine()}",
        "date": datetime.date.today().isoformat(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ff_physics.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# BaTiO3 force-field physics checks ({meta['machine']}, {meta['date']})",
        "",
        "| model | relaxed a, b, c (Å) | angles (°) | V/V_start relaxed | E(×3) − E (eV/atom) "
        "| NpT 100→500 K: V/V_start last quarter | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, r in rows.items():
        mean, std = r["npt_volume_ratio_last_quarter"]
        lines.append(
            f"| {m} | {' / '.join(map(str, r['relaxed_lengths_A']))} "
            f"| {' / '.join(map(str, r['relaxed_angles_deg']))} | {r['relaxed_volume_ratio']:.3f} "
            f"| {r['expansion_x3_eV_per_atom']:.2f} | {mean:.3f} ± {std:.3f} "
            f"| {r['npt_volume_ratio_max']:.3f} |"
        )
    write_results_md(RESULTS / "ff_physics.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
