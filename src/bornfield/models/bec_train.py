"""Training of the Born-charge model: seeded, early stopping, progress, checkpoint and resume."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from bornfield.data import io
from bornfield.data.splits import random_split
from bornfield.data.validate import require_keys
from bornfield.errors import BornfieldError
from bornfield.models.bec import MODEL_FILE, build_graph, collate, run_model, save_model, write_card
from bornfield.models.bec_model import BECConfig, BECModel, config_dict

CHECKPOINT = "checkpoint.pt"
#: fewer validation frames than this steer the learning rate and early stopping by chance
#: (bench/results/catio3_bec.md, row 21)
MIN_VALID = 5


@dataclass(frozen=True)
class BECTrainConfig:
    max_epochs: int = 200
    #: one structure per step: at equal wall time it reaches lower errors than 2 or 4
    #: (bench/results/bec_training.md)
    batch_size: int = 1
    lr: float = 5e-3
    patience: int = 40
    valid_fraction: float = 0.1  # 0: no validation split (select on the training error)
    seed: int = 0
    ema_decay: float = 0.99  # validate and save an exponential moving average of the weights
    #: weight of the ε∞ term (models with an ε∞ head): each squared error is measured in units
    #: of its labels' spread (Z* and ε∞ about their isotropic means), so 1 weighs them alike
    eps_weight: float = 1.0


def _isotropic_means(frames: Sequence[Atoms]) -> dict[str, float]:
    sym = np.concatenate([a.get_chemical_symbols() for a in frames])
    tr = np.concatenate([np.trace(a.arrays["born_charges"], axis1=1, axis2=2) / 3 for a in frames])
    return {el: float(tr[sym == el].mean()) for el in dict.fromkeys(sym)}


def train_bec(
    data: str | Path | Sequence[str | Path] | Sequence[Atoms],
    out_dir: str | Path,
    model_cfg: dict | None = None,
    train_cfg: BECTrainConfig = BECTrainConfig(),
    valid: Sequence[Atoms] | None = None,
    log: Callable[[str], None] = print,
    allow_mixed_dft: bool = False,
) -> Path:
    """Train on frames with ``born_charges``; returns the path of the best model (``bec.pt``).
    ``data``: a file, several files as one set, or frames (:func:`bornfield.data.io.read_union`).

    Rerunning with the same ``out_dir`` resumes from ``checkpoint.pt`` (same seed, same split).
    """
    frames, source = io.read_union(data, allow_mixed_dft)
    with_eps = bool((model_cfg or {}).get("epsilon_head"))
    require_keys(frames, ["born_charges"] + ["epsilon_inf"] * with_eps, source)
    if valid is not None and with_eps:
        require_keys(valid, ["epsilon_inf"], "validation frames")
    if valid is None and train_cfg.valid_fraction == 0:
        # datasets too small to spare a frame: every frame trains, and model selection and
        # early stopping watch the training error (hold out a test set outside instead)
        log(f"{source}: no validation split (valid_fraction 0): selecting on the training error")
        train_frames, valid_frames = frames, frames
    elif valid is None:
        if len(frames) < 2:
            raise BornfieldError(f"{source}: need at least 2 frames to hold out a validation set")
        tr, va = random_split(len(frames), train_cfg.valid_fraction, train_cfg.seed)
        train_frames, valid_frames = [frames[i] for i in tr], [frames[i] for i in va]
        if len(va) < MIN_VALID:
            log(f"{source}: warning: {len(va)} validation frame(s) steer the learning rate "
                "and early stopping by chance; with few frames use valid_fraction 0 "
                "(--valid-fraction 0)")  # fmt: skip
    else:
        train_frames, valid_frames = frames, list(valid)
    torch.manual_seed(train_cfg.seed)
    elements = tuple(sorted({s for a in frames + valid_frames for s in a.get_chemical_symbols()}))
    cfg = BECConfig(elements=elements, **(model_cfg or {}))
    iso = _isotropic_means(train_frames)
    model = BECModel(cfg, iso)
    train_g = [build_graph(a, model, source=source) for a in train_frames]
    valid_g = [build_graph(a, model, source=source) for a in valid_frames]
    n_nb = sum(g.edge_index.shape[1] for g in train_g) / sum(len(g.species) for g in train_g)
    model = BECModel(replace(cfg, avg_num_neighbors=float(n_nb)), iso)
    resid = torch.cat([g.target for g in train_g]) - torch.stack(
        [torch.eye(3) * iso[s] for a in train_frames for s in a.get_chemical_symbols()]
    )
    model.scale.fill_(float(resid.pow(2).mean().sqrt()))
    if with_eps:  # ε∞ relative to the mean isotropic value of the training set, scaled to O(1)
        eps = np.stack([np.reshape(a.info["epsilon_inf"], (3, 3)) for a in train_frames])
        eps_iso = float(np.trace(eps, axis1=1, axis2=2).mean() / 3)
        eps_rms = float(np.sqrt(((eps - eps_iso * np.eye(3)) ** 2).mean()))
        model.eps_iso.fill_(eps_iso)
        model.eps_scale.fill_(eps_rms if eps_rms > 1e-6 else 1.0)
        eps_w = train_cfg.eps_weight * float(model.scale) ** 2 / float(model.eps_scale) ** 2
    opt = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, fused=True)  # 7x faster step
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(train_cfg.ema_decay)
    )
    best = ema.module if train_cfg.ema_decay > 0 else model  # the weights that are judged
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=15)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {"epoch": 0, "best_mae": float("inf"), "best_epoch": -1, "history": [], "wall": 0.0}
    ckpt = out / CHECKPOINT
    if ckpt.exists():
        c = torch.load(ckpt, weights_only=False)
        if c["config"] != config_dict(model.cfg):
            raise BornfieldError(f"{ckpt}: checkpoint of another model or data; use another --out")
        state = c["state"]
        if state["epoch"] < train_cfg.max_epochs:  # (a finished run only rewrites its card)
            try:
                model.load_state_dict(c["model"])
            except RuntimeError:  # e.g. the e3nn-module layers of model file format 1
                raise BornfieldError(
                    f"{ckpt}: checkpoint of an older model version; use another --out"
                ) from None
            ema.load_state_dict(c["ema"])
            opt.load_state_dict(c["opt"])
            sched.load_state_dict(c["sched"])
            torch.set_rng_state(c["rng"])
        log(f"resuming from epoch {state['epoch']} (best valid MAE {state['best_mae']:.4f} e)")
    valid_batch = collate(valid_g)
    rng = np.random.default_rng(train_cfg.seed + state["epoch"])
    for epoch in range(state["epoch"], train_cfg.max_epochs):
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(len(train_g))
        total = 0.0
        for k in range(0, len(order), train_cfg.batch_size):
            b = collate([train_g[i] for i in order[k : k + train_cfg.batch_size]])
            opt.zero_grad()
            if with_eps:
                z, eps = run_model(model, b, with_epsilon=True)
                loss = (z - b.target).pow(2).mean()
                loss = loss + eps_w * (eps - b.eps_target).pow(2).mean()
            else:
                loss = (run_model(model, b) - b.target).pow(2).mean()
            loss.backward()
            opt.step()
            ema.update_parameters(model)
            total += float(loss.detach()) * b.n_structures
        best.eval()
        with torch.no_grad():
            out_v = run_model(best, valid_batch, with_epsilon=with_eps)
            z_v = out_v[0] if with_eps else out_v
            mae = float((z_v - valid_batch.target).abs().mean())
            eps_mae = float((out_v[1] - valid_batch.eps_target).abs().mean()) if with_eps else None
        sched.step(mae)
        state["wall"] += time.perf_counter() - t0
        state["epoch"] = epoch + 1
        state["history"].append(
            {"epoch": epoch, "train_mse": total / len(train_g), "valid_mae_e": mae}
            | ({"valid_eps_mae": eps_mae} if with_eps else {})
        )
        improved = mae < state["best_mae"]
        if improved:
            state["best_mae"], state["best_epoch"] = mae, epoch
            state["best_eps_mae"] = eps_mae
            save_model(best, out / MODEL_FILE, {"valid_mae_e": mae, "epoch": epoch})
        torch.save(
            {"config": config_dict(model.cfg), "model": model.state_dict(), "ema": ema.state_dict(),
             "opt": opt.state_dict(),
             "sched": sched.state_dict(), "rng": torch.get_rng_state(), "state": state},
            ckpt.with_suffix(".tmp"),
        )  # fmt: skip
        ckpt.with_suffix(".tmp").replace(ckpt)
        log(
            f"epoch {epoch}: train RMSE {np.sqrt(total / len(train_g)):.4f} e,"
            f" valid MAE {mae:.4f} e"
            + (f", ε∞ {eps_mae:.4f}" if with_eps else "")
            + f"{' *' if improved else ''}"
            f" ({time.perf_counter() - t0:.2f} s)"
        )
        if epoch - state["best_epoch"] >= train_cfg.patience:
            log(f"early stop: no improvement for {train_cfg.patience} epochs")
            break
    write_card(
        out,
        {
            "kind": "equivariant Born-charge model (e3nn)",
            "config": config_dict(model.cfg),
            "train": asdict(train_cfg),
            "n_train_frames": len(train_frames),
            "n_valid_frames": len(valid_frames),
            "best_valid_mae_e": state["best_mae"],
            **({"best_valid_eps_inf_mae": state.get("best_eps_mae")} if with_eps else {}),
            "best_epoch": state["best_epoch"],
            "epochs_run": state["epoch"],
            "train_wall_s": round(state["wall"], 1),
        },
    )
    return out / MODEL_FILE
