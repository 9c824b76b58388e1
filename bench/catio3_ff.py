"""The CaTiO3 force field's recipe as one command (issue: force field): train, test, Pnma check.

As `data/catio3/` grows, this retrains the `fast` MACE model the way its card says and measures
it the same way each time:
  split   the dataset's fixed validation ids are the test frames (5-atom batch 1: 4, 9, 14, 19;
          batch 2: every fifth from 4; 20-atom MD snapshots: 5, 11; `data/catio3/CARD.md`); the
          rest train
  train   `train ff --preset fast`, seed 0 (mace-torch's trainer, float64); frames weighted by
          atom count (the preset's default) or, with --frame-weights equal, alike
  test    energy / force / stress errors on the held-out frames, per cell size, beside CHGNet
          on the same frames (its energies shifted per element, fitted on the training frames)
  Pnma    the experimental Pnma cell (Sasaki et al. 1987) relaxed with the model, cell and
          positions: lattice lengths against experiment, space group (spglib, 0.01–0.1 Å),
          octahedral tilts against experiment, and E(Pnma) − E(cubic), each relaxed. A force
          field that has seen no tilted cell need not keep Pnma; this is the check that says so.
Each run adds a row per training set to bench/results/catio3_ff.{json,md} (the learning curve
as the data grew); --ship copies the model files into models/catio3/ff (the card by hand, after
`bench/ff_md_check.py`, the card's MD check, and `bench/pipeline.py`, the README's numbers).

    python bench/catio3_ff.py [--ship] [--frame-weights atoms|equal] [--work /work/runs/catio3_ff]
        [--init MODEL --init-name NAME]   # start from a pretrained model (train ff --init)
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
from pathlib import Path

import numpy as np
from catio3_data import TEST_IDS
from results_md import write_results_md

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
SHIP = ROOT / "models/catio3/ff"


def relax(atoms, calc, fmax: float = 0.005, steps: int = 500):
    """Positions and cell relaxed (`bornfield.analysis.dielectric.relax`); returns a copy, also
    when the relaxation ran out of steps (a collapsing cell may)."""
    from bornfield.analysis.dielectric import relax as relax_in_place
    from bornfield.errors import BornfieldError

    a = atoms.copy()
    a.calc = calc
    try:
        relax_in_place(a, fmax=fmax, steps=steps, relax_cell=True)
    except BornfieldError:
        pass
    return a


def pnma_check(calc) -> dict:
    """Relaxed Pnma against experiment and against the relaxed cubic cell."""
    from bornfield.analysis.phases import pseudocubic_axes, space_group, tilt_angles
    from bornfield.errors import BornfieldError
    from bornfield.label.generators import cubic_perovskite, pnma_catio3

    exp = pnma_catio3()
    p, c = relax(exp, calc), relax(cubic_perovskite("CaTiO3", 3.84), calc)
    de = (p.get_potential_energy() / 4 - c.get_potential_energy()) * 1000  # per formula unit
    try:
        tilts = tilt_angles(p, pseudocubic_axes(p))
    except BornfieldError:  # no Ti–O–Ti network left
        tilts = np.full(3, np.nan)
    strain = 100 * (p.cell.lengths() / exp.cell.lengths() - 1)
    return {
        "pnma_lengths_A": p.cell.lengths().round(4).tolist(),
        "pnma_length_err_pct": strain.round(2).tolist(),
        "pnma_space_group": space_group(p),
        "pnma_tilts_deg": np.round(tilts, 2).tolist(),
        "exp_tilts_deg": np.round(tilt_angles(exp, pseudocubic_axes(exp)), 2).tolist(),
        "pnma_minus_cubic_meV_per_fu": round(float(de), 1),
        "cubic_a_A": round(float(np.cbrt(c.get_volume())), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/work/runs/catio3_ff")
    p.add_argument("--ship", action="store_true", help="copy the model into models/catio3/ff")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frame-weights", choices=["atoms", "equal"], default="atoms")
    p.add_argument("--init", metavar="MODEL", help="start from this model (train ff --init)")
    p.add_argument("--init-name", help="what the initial model is, for the table (needs --init)")
    args = p.parse_args()
    if bool(args.init) != bool(args.init_name):
        raise SystemExit("--init and --init-name go together")
    import torch

    torch.set_num_threads(args.threads)
    from bornfield.analysis.errors import evaluate_ff
    from bornfield.data import io
    from bornfield.data.splits import split_files
    from bornfield.models.baselines import load_baseline
    from bornfield.models.force_field import ff_preset, load_calculator, train_ff

    train, held_out = split_files(TEST_IDS)
    tests: dict[str, list] = {}
    for a in held_out:  # by cell size
        tests.setdefault(f"{len(a)}-atom", []).append(a)
    sizes = {f"n_train_{k}": sum(len(a) == n for a in train) for k, n in (("5", 5), ("20", 20))}
    by_atoms = args.frame_weights == "atoms"
    # (rows before 2026-11-27 session 16 weighed frames alike, in the unsuffixed work dirs)
    suffix = ("_wa" if by_atoms else "") + (f"_init-{args.init_name}" if args.init else "")
    work = Path(args.work) / f"n{sizes['n_train_5']}_{sizes['n_train_20']}{suffix}"
    work.mkdir(parents=True, exist_ok=True)
    io.write(work / "train.xyz", train)
    cfg = ff_preset("fast", weight_by_atoms=by_atoms)
    model = train_ff(train, work / "ff", cfg, seed=0, log=lambda m: None, init=args.init)
    # training time over all calls (a finished model in the work dir is reused, not retrained)
    wall = json.loads((work / "ff" / "card.json").read_text())["wall_time_s"]
    row = {"date": datetime.date.today().isoformat(), **sizes, "frame_weights": args.frame_weights,
           "init": args.init_name or "scratch", "train_wall_s": wall}  # fmt: skip
    for name, frames in tests.items():
        io.write(work / f"test_{name}.xyz", frames)
        res = evaluate_ff(work / f"test_{name}.xyz", model=model, baselines=["chgnet"],
                          shift_data=work / "train.xyz", plot=work / f"parity_{name}.png")  # fmt: skip
        for who in ("model", "chgnet"):
            m = res[who]
            row[f"{name} {who}"] = {
                k: round(m[k], 3)
                for k in ("energy_mae_meV_per_atom", "force_mae_meV_per_A", "stress_mae_GPa")
            } | {"n_frames": m["n_frames"]}
    row["pnma"] = pnma_check(load_calculator(model, dtype="float64"))
    row["pnma_chgnet"] = pnma_check(load_baseline("chgnet"))
    print(json.dumps(row, indent=1))
    if args.ship:
        SHIP.mkdir(parents=True, exist_ok=True)
        for f in ("ff.model", "ff_float32.model", "card.json"):
            shutil.copy(work / "ff" / f, SHIP / f)
        (SHIP / "test_metrics.json").write_text(json.dumps(row, indent=1))

    out = RESULTS / "catio3_ff.json"
    rows = json.loads(out.read_text())["rows"] if out.exists() else []

    def key(r: dict) -> tuple:
        return (r["n_train_20"], r["n_train_5"], r.get("frame_weights", "equal"),
                r.get("init", "scratch"))  # fmt: skip

    rows = [r for r in rows if key(r) != key(row)] + [row]
    rows.sort(key=key)
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, {args.threads} torch thread(s)",
        "date": row["date"],
        "data": [str(p.relative_to(ROOT)) for p in TEST_IDS],
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_results_md(RESULTS / "catio3_ff.md", table(rows, meta))


def table(rows: list[dict], meta: dict) -> list[str]:
    def err(m: dict | None) -> str:
        if not m:
            return "–"
        return (
            f"{m['energy_mae_meV_per_atom']:.1f} / {m['force_mae_meV_per_A']:.1f} / "
            f"{m['stress_mae_GPa']:.2f}"
        )

    def pnma(q: dict) -> str:
        sg = sorted(set(q["pnma_space_group"].values()))
        return (
            f"{', '.join(sg)}; {' × '.join(f'{x:.2f}' for x in q['pnma_lengths_A'])} Å; "
            f"tilts {' / '.join(f'{t:.1f}' for t in q['pnma_tilts_deg'])}°; "
            f"{q['pnma_minus_cubic_meV_per_fu']:.0f}"
        )

    lines = [
        f"# CaTiO3 force field vs training set ({meta['machine']}, {meta['date']})",
        "",
        "`bench/catio3_ff.py`: `fast` preset, seed 0, trained on the CaTiO3 frames outside the "
        "fixed validation split, each frame's loss weighted by its atom count (`atoms`) or alike "
        "(`equal`); errors are MAE on the held-out frames as E (meV/atom) / F "
        "(meV/Å) / σ (GPa). Pnma: the experimental cell relaxed (cell and positions): space "
        "group(s) over spglib tolerances 0.01–0.1 Å; a × b × c; octahedral tilts about the "
        "three pseudo-cubic axes; E(Pnma) − E(cubic) in meV per formula unit. Experiment: "
        f"{' × '.join(f'{x:.2f}' for x in (5.442, 7.640, 5.380))} Å, tilts "
        f"{' / '.join(f'{t:.1f}' for t in rows[-1]['pnma']['exp_tilts_deg'])}°.",
        "",
        "| 5-atom / 20-atom training frames | frame weights | start | date | 5-atom test: model "
        "| 5-atom test: CHGNet "
        "| 20-atom test: model | 20-atom test: CHGNet | Pnma, model | Pnma, CHGNet "
        "| train wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_train_5']} / {r['n_train_20']} | {r.get('frame_weights', 'equal')} "
            f"| {r.get('init', 'scratch')} "
            f"| {r['date']} "
            f"| {err(r.get('5-atom model'))} | {err(r.get('5-atom chgnet'))} "
            f"| {err(r.get('20-atom model'))} | {err(r.get('20-atom chgnet'))} "
            f"| {pnma(r['pnma'])} | {pnma(r['pnma_chgnet'])} | {r['train_wall_s']:.0f} |"
        )
    return lines


if __name__ == "__main__":
    main()
