"""Field MD on a GPU (issue: field-coupled MD, ``--device cuda``): agreement with the CPU, speed.

On a CUDA machine, with the shipped BaTiO3 models:
  agreement  the field calculator on CUDA against the same models on the CPU (a rattled
             640-atom cubic BaTiO3 cell, Z* every call), float32 and float64: energy, forces,
             stress, Z* and polarization
  speed      seconds per Langevin MD step, as in bench/fieldmd.py (minimum over interleaved
             rounds): the lean force field alone (bare), mace-torch's MACECalculator alone
             (bare_mace), the field calculator with Z* every step (field_k1) and every k steps
             (field_kK), and the paper-style composite (MACECalculator float64 + a separate Z*
             model, float64, through ASE every step); peak GPU memory per size
  cli        `bornfield md --device cuda` with a field and checkpoints: a run killed mid-way
             and resumed against an uninterrupted one

    python bench/fieldmd_cuda.py --ff models/batio3/ff --bec models/batio3/bec --out DIR

Writes DIR/fieldmd_cuda.json and .md (copy them to bench/results/).
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
from fieldmd import Composite, cell_of, time_interleaved

DEVICE = "cuda"  # --device cpu: a dry run of this script on a machine without a GPU


def agreement(ff: str, bec: str, field) -> dict:
    """Largest |CUDA − CPU| of each result, per dtype."""
    import torch

    from bornfield.calculators import FieldCalculator
    from bornfield.models.bec import load_model
    from bornfield.models.force_field import load_calculator

    atoms = cell_of(640)
    out = {}
    for dtype, tdtype in (("float32", torch.float32), ("float64", torch.float64)):
        res = {}
        for device in ("cpu", DEVICE):
            calc = FieldCalculator(
                load_calculator(ff, device=device, dtype=dtype),
                load_model(bec, dtype=tdtype, device=device),
                field,
                reference=atoms,
            )
            a = atoms.copy()
            a.positions += 0.02  # a displacement from the reference: P ≠ 0
            a.calc = calc
            res[device] = {
                "energy": a.get_potential_energy(),
                "forces": a.get_forces(),
                "stress": a.get_stress(),
                "born_charges": calc.get_property("born_charges", a),
                "polarization": calc.get_property("polarization", a),
            }
        cpu, gpu = res["cpu"], res[DEVICE]
        out[dtype] = {
            "energy_per_atom_eV": abs(cpu["energy"] - gpu["energy"]) / len(atoms),
            "forces_max_eV_per_A": float(np.abs(cpu["forces"] - gpu["forces"]).max()),
            "stress_max_eV_per_A3": float(np.abs(cpu["stress"] - gpu["stress"]).max()),
            "born_charges_max_e": float(np.abs(cpu["born_charges"] - gpu["born_charges"]).max()),
            "polarization_max_C_per_m2": float(
                np.abs(cpu["polarization"] - gpu["polarization"]).max()
            ),
            "forces_max_abs_eV_per_A": float(np.abs(cpu["forces"]).max()),
        }
    return out


def speed(ff: str, bec: str, field, sizes: list[int], k: int, repeats: int) -> dict:
    import torch
    from mace.calculators import MACECalculator

    from bornfield.calculators import FieldCalculator
    from bornfield.models.bec import BECCalculator, load_model
    from bornfield.models.force_field import load_calculator

    ff32 = load_calculator(ff, device=DEVICE, dtype="float32")
    bec32 = load_model(bec, dtype=torch.float32, device=DEVICE)
    mace32 = MACECalculator(model_paths=str(Path(ff) / "ff_float32.model"), device=DEVICE,
                            default_dtype="float32")  # fmt: skip
    mace64 = MACECalculator(model_paths=str(Path(ff) / "ff.model"), device=DEVICE,
                            default_dtype="float64")  # fmt: skip
    bec64 = BECCalculator(load_model(bec, dtype=torch.float64, device=DEVICE))
    rows = []
    for n in sizes:
        atoms = cell_of(n)
        calcs = {
            "bare": ff32,
            "bare_mace": mace32,
            "field_k1": FieldCalculator(ff32, bec32, field, bec_interval=1),
            f"field_k{k}": FieldCalculator(ff32, bec32, field, bec_interval=k),
            "composite": Composite(mace64, bec64, field),
        }
        steps = dict.fromkeys(calcs, 20) | {"composite": 10}
        if DEVICE == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time_interleaved(atoms, calcs, steps, repeats)
        row = {"n_atoms": len(atoms)} | {f"{name}_s": v for name, v in t.items()}
        row["peak_gpu_GiB"] = torch.cuda.max_memory_allocated() / 1024**3 if DEVICE == "cuda" else 0
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"rows": rows, "k": k}


def cli_resume(ff: str, bec: str, work: Path, steps: int) -> dict:
    """`bornfield md --device cuda`: uninterrupted vs killed after ~half and resumed."""
    from ase.io import read

    base = [sys.executable, "-m", "bornfield.cli", "md", "--structure", "cubic:BaTiO3",
            "--supercell", "8x4x4", "--ff", ff, "--bec", bec, "--field", "0,0,0.005",
            "--temperature", "300", "--steps", str(steps), "--device", DEVICE,
            "--checkpoint-interval", "20", "--traj-interval", "20", "--log-interval", "10"]  # fmt: skip
    t0 = time.perf_counter()
    a = subprocess.run([*base, "--out", str(work / "a")], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if a.returncode:
        return {"error": a.stderr[-2000:]}
    b = subprocess.Popen([*base, "--out", str(work / "b")], stdout=subprocess.PIPE, text=True)
    obs = work / "b" / "observables.csv"
    while b.poll() is None:  # kill once past the middle
        if obs.exists() and len(obs.read_text().splitlines()) > steps // 20 + 1:
            b.kill()
            break
        time.sleep(0.2)
    b.wait()
    killed_at = len(obs.read_text().splitlines()) - 1 if obs.exists() else 0
    r = subprocess.run([*base, "--out", str(work / "b")], capture_output=True, text=True)
    if r.returncode:
        return {"error": r.stderr[-2000:]}
    fa, fb = read(work / "a" / "trajectory.xyz", ":"), read(work / "b" / "trajectory.xyz", ":")
    return {
        "steps": steps,
        "wall_s_uninterrupted": wall,
        "observable_rows_before_kill": killed_at,
        "frames": [len(fa), len(fb)],
        "final_positions_max_diff_A": float(np.abs(fa[-1].positions - fb[-1].positions).max()),
        "log_tail": a.stdout.strip().splitlines()[-2:],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ff", required=True)
    p.add_argument("--bec", required=True)
    p.add_argument("--sizes", default="160,640,1280,5120,10240")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--md-steps", type=int, default=200)
    p.add_argument("--device", default="cuda", help="cpu: a dry run")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    import torch

    global DEVICE
    DEVICE = args.device
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    field = np.array([0.0, 0.0, 0.005])
    res = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} {platform.machine()}",
        "gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "none (dry run)",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
    }
    for name, fn in (
        ("agreement", lambda: agreement(args.ff, args.bec, field)),
        ("cli", lambda: cli_resume(args.ff, args.bec, out_dir / "md", args.md_steps)),
        ("speed", lambda: speed(args.ff, args.bec, field,
                                [int(s) for s in args.sizes.split(",")], args.k, args.repeats)),
    ):  # fmt: skip
        t0 = time.perf_counter()
        try:
            res[name] = fn()
        except Exception as exc:  # a GPU check: report and go on to the next part
            res[name] = {"error": f"{type(exc).__name__}: {exc}"}
        res[f"{name}_wall_s"] = time.perf_counter() - t0
        print(name, json.dumps(res[name])[:3000], flush=True)
        (out_dir / "fieldmd_cuda.json").write_text(json.dumps(res, indent=1, default=float))
    write_md(res, out_dir / "fieldmd_cuda.md")


def write_md(res: dict, path: Path) -> None:
    lines = [f"# Field MD on CUDA ({res['gpu']}, torch {res['torch']}, {res['date']})", ""]
    if "rows" in res.get("speed", {}):
        k = res["speed"]["k"]
        lines += [
            "Seconds per Langevin MD step (minimum over interleaved rounds), BaTiO3 models.",
            "",
            f"| atoms | bare (ms) | bare_mace (ms) | field_k1 (ms) | field_k{k} (ms) | "
            f"composite (ms) | P1 k={k} | P2 k={k} | µs/atom-step (field_k{k}) | peak GPU (GiB) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["speed"]["rows"]:
            fk = r[f"field_k{k}_s"]
            lines.append(
                f"| {r['n_atoms']} | {1e3 * r['bare_s']:.1f} | {1e3 * r['bare_mace_s']:.1f} | "
                f"{1e3 * r['field_k1_s']:.1f} | {1e3 * fk:.1f} | {1e3 * r['composite_s']:.1f} | "
                f"{fk / r['bare_s']:.2f} | {r['composite_s'] / fk:.2f} | "
                f"{1e6 * fk / r['n_atoms']:.1f} | {r['peak_gpu_GiB']:.2f} |"
            )
    lines += ["", "```", json.dumps({k: v for k, v in res.items() if k != "speed"}, indent=1,
                                    default=float), "```", ""]  # fmt: skip
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
