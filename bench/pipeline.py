"""Wall time of `bornfield run` on its embedded default (the README's first command).

    python bench/pipeline.py [--out DIR]              # runs the pipeline, timed
    python bench/pipeline.py --from DIR --wall SEC    # tabulates a finished run

Writes bench/results/pipeline_default.{json,md}: total wall, static-stage wall, per-run MD cost,
and the physics numbers the run produced (so a regression in either shows).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from results_md import write_results_md

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/bornfield_bench_pipeline")
    p.add_argument("--from", dest="src", help="an existing run directory")
    p.add_argument("--wall", type=float, help="its wall time in seconds (with --from)")
    args = p.parse_args()
    if args.src:
        out, wall = Path(args.src), args.wall
    else:
        out = Path(args.out)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bornfield.cli", "run", "--out", str(out)],
                       check=True)  # fmt: skip
        wall = time.perf_counter() - t0
    res = json.loads((out / "results.json").read_text())
    static_wall = json.loads((out / "static" / "stamp.json").read_text())["wall_s"]
    runs = [r for r in res["md_runs"] if "error" not in r]
    diel = {
        t: {
            "finite_field_diag": np.diag(v["finite_field"]["epsilon_ionic"]).round(1).tolist(),
            "finite_field_err": np.diag(v["finite_field"]["epsilon_ionic_error"]).round(1).tolist(),
            "fluctuation_diag": np.diag(v["fluctuation"]["epsilon_ionic"]).round(1).tolist(),
            "converged": v["assessment"]["converged"],
            "reasons": v["assessment"]["reasons"],
        }
        for t, v in res["dielectric"].items()
        if "finite_field" in v
    }
    row = {
        "machine": f"{platform.node()} {platform.machine()}, 2 cores, no GPU",
        "date": datetime.date.today().isoformat(),
        "system": res["system"],
        "wall_s": wall,
        "static_stage_s": static_wall,
        "md_runs": len(runs),
        "md_ms_per_step_median": float(np.median([r["ms_per_step"] for r in runs])),
        "static_eps_ionic_diag": np.diag(res["static"]["epsilon_ionic"]).round(2).tolist(),
        "phonon_eps_ionic_diag": np.diag(res["phonon"]["epsilon_ionic"]).round(2).tolist(),
        "md_eps_ionic": diel,
        "transition_lattice": res["phases"].get("transition_from_lattice"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pipeline_default.json").write_text(json.dumps(row, indent=1))
    md = [
        f"# `bornfield run` (embedded default), {row['machine']}, {row['date']}",
        "",
        f"- {row['system']['formula']} ({row['system']['atoms']} atoms): total wall "
        f"{row['wall_s'] / 60:.1f} min (goal ≤ 15 min); static stage {static_wall:.0f} s;",
        f"  {row['md_runs']} MD runs on 2 Dask workers, median {row['md_ms_per_step_median']:.0f}"
        " ms per step.",
        f"- ε_ion diagonal: static {row['static_eps_ionic_diag']}, phonons "
        f"{row['phonon_eps_ionic_diag']}",
    ]
    for t, v in diel.items():
        verdict = "converged" if v["converged"] else "NOT converged: " + "; ".join(v["reasons"])
        md.append(f"- {t} K: finite field {v['finite_field_diag']} ± {v['finite_field_err']}, "
                  f"fluctuations {v['fluctuation_diag']}; {verdict}")  # fmt: skip
    write_results_md(RESULTS / "pipeline_default.md", md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
