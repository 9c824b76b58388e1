"""One Z* model for two materials (the paper's dataset D): CaTiO3 ∪ CaZrO3 against each alone.

The paper trains a model on the union of its CaTiO3, BaTiO3 and CaZrO3 sets (dataset D) and
compares it with the specialized ones. Here the union is of bornfield's own PBEsol sets
(`data/catio3/catio3_5atom*.xyz`, `data/cazro3/cazro3_5atom.xyz`; BaTiO3 is left out: its
labels are PBE, and `train --data` refuses to mix functionals). Three models, the recipe of
`bench/catio3_bec.py` (ε∞ head, 600 epochs, seed 0, no validation split below 50 training
frames): A (CaTiO3 training frames), C (CaZrO3) and A ∪ C; each is tested on every material's
held-out frames (`data/*/splits.json`) whose elements it knows. Rows go to
bench/results/union_bec.{json,md}.

    python bench/union_bec.py [--work /work/runs/union_bec] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

from results_md import write_results_md

from bornfield.data.splits import held_out_ids

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
EPOCHS = 600
MATERIALS = {
    "CaTiO3": {p: i for p, i in held_out_ids(ROOT / "data/catio3/splits.json").items()
               if "5atom" in p.name},
    "CaZrO3": held_out_ids(ROOT / "data/cazro3/splits.json"),
}  # fmt: skip
#: model name -> (its work directory, the materials it trains on)
MODELS = {
    "A (CaTiO3)": ("A", ["CaTiO3"]),
    "C (CaZrO3)": ("C", ["CaZrO3"]),
    "A ∪ C": ("AC", ["CaTiO3", "CaZrO3"]),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/work/runs/union_bec")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from bornfield.analysis.bec_errors import bec_metrics, eps_metrics
    from bornfield.data.splits import split_files
    from bornfield.models.bec import load_model, predict_bec, predict_epsilon
    from bornfield.models.bec_train import MIN_VALID, BECTrainConfig, train_bec

    splits = {m: split_files(ids) for m, ids in MATERIALS.items()}
    rows = []
    for name, (sub, mats) in MODELS.items():
        train = [a for m in mats for a in splits[m][0]]
        n = len(train)
        vf = 0.1 if round(0.1 * n) >= MIN_VALID else 0.0
        work = Path(args.work) / sub
        cfg = BECTrainConfig(seed=0, max_epochs=EPOCHS, valid_fraction=vf)
        path = train_bec(train, work, {"epsilon_head": True}, cfg, log=lambda m: None)
        card = json.loads((work / "card.json").read_text())  # its wall time, also when resumed
        row = {"model": name, "n_train": n, "train_wall_s": card["train_wall_s"]}
        model = load_model(path)
        for m in MATERIALS:
            test = splits[m][1]
            if not set(test[0].get_chemical_symbols()) <= set(model.cfg.elements):
                continue  # elements this model never saw
            pred = [predict_bec(model, a) for a in test]
            eps = [predict_epsilon(model, a) for a in test]
            got = bec_metrics(test, pred) | eps_metrics(test, eps)
            row[m] = {"n_test": len(test), "bec_mae_e": got["bec_mae_e"],
                      "eps_inf_mae": got["eps_inf_mae"]}  # fmt: skip
        print(json.dumps(row))
        rows.append(row)
    meta = {
        "machine": f"{platform.node()} {platform.machine()}, {args.threads} torch thread(s)",
        "date": datetime.date.today().isoformat(),
        "data": {m: [str(f.relative_to(ROOT)) for f in ids] for m, ids in MATERIALS.items()},
        "epochs": EPOCHS,
    }
    (RESULTS / "union_bec.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# One Z* model for CaTiO3 and CaZrO3 ({meta['machine']}, {meta['date']})",
        "",
        "`bench/union_bec.py`: models trained on each material's training frames and on their "
        f"union (ε∞ head, {EPOCHS} epochs, seed 0), tested on each material's held-out frames "
        "(CaTiO3: label ids 4, 9, 14, 19 of batch 1 and every fifth from 4 of batch 2; CaZrO3: "
        "4, 9, 14, 19). Z* MAE in e against the raw labels, ε∞ MAE per component.",
        "",
        "| model | training frames | CaTiO3 Z* MAE | CaZrO3 Z* MAE | CaTiO3 ε∞ MAE "
        "| CaZrO3 ε∞ MAE | train wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        z = [f"{r[m]['bec_mae_e']:.3f} ({r[m]['n_test']})" if m in r else "–" for m in MATERIALS]
        e = [f"{r[m]['eps_inf_mae']:.3f}" if m in r else "–" for m in MATERIALS]
        lines.append(f"| {r['model']} | {r['n_train']} | {' | '.join(z)} | {' | '.join(e)} "
                     f"| {r['train_wall_s']:.0f} |")  # fmt: skip
    write_results_md(RESULTS / "union_bec.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
