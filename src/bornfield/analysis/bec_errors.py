"""Born-charge model errors: metrics per element and tensor component, parity plots, k-fold CV,
learning curves (the paper's Fig. S1) and single-atom displacement scans (its Fig. 1)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

COMPONENTS = [a + b for a in "xyz" for b in "xyz"]


def bec_metrics(frames: Sequence[Atoms], predicted: Sequence[np.ndarray]) -> dict[str, float]:
    """MAE/RMSE (e) over all components, per element and per Cartesian component."""
    ref = np.concatenate([a.arrays["born_charges"] for a in frames])
    pred = np.concatenate(predicted)
    d = pred - ref
    sym = np.concatenate([a.get_chemical_symbols() for a in frames])
    m: dict[str, float] = {
        "n_frames": len(frames),
        "n_atoms": len(ref),
        "bec_mae_e": float(np.abs(d).mean()),
        "bec_rmse_e": float(np.sqrt((d**2).mean())),
        "bec_label_std_e": float(ref.std()),
    }
    for el in dict.fromkeys(sym):
        m[f"bec_mae_{el}_e"] = float(np.abs(d[sym == el]).mean())
        m[f"bec_rmse_{el}_e"] = float(np.sqrt((d[sym == el] ** 2).mean()))
    for k, comp in enumerate(COMPONENTS):
        m[f"bec_mae_{comp}_e"] = float(np.abs(d.reshape(-1, 9)[:, k]).mean())
    return m


def eps_metrics(frames: Sequence[Atoms], predicted: Sequence[np.ndarray]) -> dict[str, float]:
    """MAE/RMSE of ε∞ (dimensionless) over all 9 components of every frame."""
    ref = np.stack([np.reshape(a.info["epsilon_inf"], (3, 3)) for a in frames])
    d = np.stack(predicted) - ref
    return {
        "eps_inf_mae": float(np.abs(d).mean()),
        "eps_inf_rmse": float(np.sqrt((d**2).mean())),
        "eps_inf_label_std": float(ref.std()),
    }


def bec_parity_plot(
    frames: Sequence[Atoms], predicted: Sequence[np.ndarray], path: str | Path, title: str = ""
) -> None:
    """Predicted vs DFT Z* components per element (diagonal filled, off-diagonal open), PNG."""
    from bornfield.analysis.plotting import plt, save_png

    ref = np.concatenate([a.arrays["born_charges"] for a in frames])
    pred = np.concatenate(predicted)
    sym = np.concatenate([a.get_chemical_symbols() for a in frames])
    diag = np.eye(3, dtype=bool)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    for i, el in enumerate(dict.fromkeys(sym)):
        r, p = ref[sym == el], pred[sym == el]
        mae = np.abs(p - r).mean()
        ax.scatter(r[:, diag], p[:, diag], s=6, color=f"C{i}", label=f"{el} (MAE {mae:.3f} e)")
        ax.scatter(r[:, ~diag], p[:, ~diag], s=6, facecolors="none", edgecolors=f"C{i}", lw=0.5)
    lo, hi = ref.min() - 0.5, ref.max() + 0.5
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="DFT Z* (e)", ylabel="model Z* (e)", title=title)
    ax.legend(fontsize=8)
    save_png(fig, path, dpi=130)


def scan_plot(
    amplitudes: np.ndarray,
    z_model: np.ndarray,
    path: str | Path,
    atoms_shown: Sequence[int],
    labels: Sequence[str],
    components: Sequence[str] = ("xx", "yy", "zz"),
    dft: tuple[np.ndarray, np.ndarray] | None = None,
    title: str = "",
) -> None:
    """Z* components of chosen atoms vs displacement amplitude (lines) over DFT points (Fig. 1)."""
    from bornfield.analysis.plotting import plt, save_png

    fig, axes = plt.subplots(
        1, len(atoms_shown), figsize=(3.6 * len(atoms_shown), 3.4), squeeze=False
    )
    for ax, k, lab in zip(axes[0], atoms_shown, labels, strict=True):
        for c, comp in enumerate(components):
            a, b = "xyz".index(comp[0]), "xyz".index(comp[1])
            ax.plot(amplitudes, z_model[:, k, a, b], "-", color=f"C{c}", label=f"model {comp}")
            if dft is not None:
                ax.plot(
                    dft[0], dft[1][:, k, a, b], "o", color=f"C{c}", mfc="none", label=f"DFT {comp}"
                )
        ax.set(xlabel="displacement (Å)", ylabel="Z* (e)", title=lab)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    save_png(fig, path, dpi=130)


def evaluate_bec(
    data: str | Path | Sequence[str | Path],
    model: str | Path | None = None,
    folds: int = 0,
    learning_curve_sizes: Sequence[int] = (),
    model_cfg: dict | None = None,
    epochs: int | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    plot: str | Path | None = None,
    workers: int = 1,
    valid_fraction: float | None = None,
    allow_mixed_dft: bool = False,
) -> dict:
    """Z* errors of a model on ``data``, or k-fold CV / a learning curve of freshly trained ones.

    ``data``: one file, or several read as one set (:func:`bornfield.data.io.read_parts`); a
    given model on several files is also scored file by file (``result["by_file"][path]``).
    With ``workers`` > 1 the trainings run in parallel on a Dask LocalCluster;
    ``valid_fraction`` is the trainings' (see :class:`BECTrainConfig`)."""
    from bornfield.data import io
    from bornfield.data.validate import require_keys
    from bornfield.errors import BornfieldError
    from bornfield.models.bec import load_model, predict_bec, predict_epsilon
    from bornfield.models.bec_train import BECTrainConfig, train_bec

    parts = io.read_parts(data, allow_mixed_dft)
    for path, part in parts:
        require_keys(part, ["born_charges"], path)
    frames = [a for _, part in parts for a in part]
    title = " + ".join(Path(path).name for path, _ in parts)
    out = Path(out_dir or "eval_bec")
    over = {"max_epochs": epochs or None, "valid_fraction": valid_fraction}
    tcfg = BECTrainConfig(seed=seed, **{k: v for k, v in over.items() if v is not None})

    def train(tr: list[Atoms], d: Path) -> Path:
        return train_bec(tr, d, model_cfg, tcfg, log=lambda _: None)

    def load(path: Path) -> Callable[[Atoms], np.ndarray]:
        m = load_model(path)
        return lambda a: predict_bec(m, a)

    with_eps = all("epsilon_inf" in a.info for a in frames)  # every fold scores the same

    def add_eps(metrics: dict, m, test: list[Atoms], labelled: bool = with_eps) -> dict:
        """ε∞ errors too, where the model ``m`` has an ε∞ head and the frames have labels."""
        if m.cfg.epsilon_head and labelled:
            metrics |= eps_metrics(test, [predict_epsilon(m, a) for a in test])
        return metrics

    result: dict = {"data": [p for p, _ in parts] if len(parts) > 1 else parts[0][0]}
    if learning_curve_sizes:
        from bornfield.analysis.errors import learning_curve, learning_curve_plot

        def score(path: Path, test: list[Atoms]) -> dict:
            predict = load(path)
            return bec_metrics(test, [predict(a) for a in test])

        rows = learning_curve(
            frames, learning_curve_sizes, train, score, out, seed=seed, workers=workers
        )
        result["learning_curve"] = rows
        learning_curve_plot(rows, out / "learning_curve.png", "bec_mae", "e", "Z* MAE (e)",
                            title=title)  # fmt: skip
    if folds:
        from bornfield.analysis.errors import summarize_folds
        from bornfield.data.splits import kfold
        from bornfield.parallel import train_all

        splits = kfold(len(frames), folds, seed)
        jobs = [([frames[j] for j in tr], out / f"fold{i}") for i, (tr, _) in enumerate(splits)]
        fold_m, test, pred = [], [], []
        for path, (_, te) in zip(train_all(jobs, train, workers), splits, strict=True):
            m = load_model(path)
            t = [frames[j] for j in te]
            p = [predict_bec(m, a) for a in t]
            fold_m.append(add_eps(bec_metrics(t, p), m, t))
            test, pred = test + t, pred + p
        result["folds"] = fold_m
        result["model"] = summarize_folds(fold_m)
    elif model:
        m = load_model(model)
        test, pred = frames, []
        for path, part in parts:
            p = [predict_bec(m, a, f"{path}: frame {i}") for i, a in enumerate(part)]
            if len(parts) > 1:
                labelled = all("epsilon_inf" in a.info for a in part)
                result.setdefault("by_file", {})[path] = add_eps(bec_metrics(part, p), m, part,
                                                                 labelled)  # fmt: skip
            pred += p
        result["model"] = add_eps(bec_metrics(test, pred), m, test)
    elif not learning_curve_sizes:
        raise BornfieldError("evaluate bec needs a model, folds=K or learning-curve sizes")
    if plot and "model" in result:
        bec_parity_plot(test, pred, plot, title=title)
    return result


def scan(
    model: str | Path,
    structure: Atoms,
    atom: int,
    direction: str,
    amplitudes: Sequence[float],
    dft_frames: Sequence[Atoms] | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Model Z* along a single-atom displacement; DFT points (amplitude, Z*) from labelled frames.

    The amplitude of a DFT frame is its displacement of ``atom`` from ``structure`` along
    ``direction`` (minimum image); frames with the same atom count are used.
    """
    from bornfield.label.generators import displacement_scan
    from bornfield.models.bec import load_model, predict_bec

    m = load_model(model)
    amps = np.asarray(amplitudes, dtype=float)
    z = np.stack([predict_bec(m, a) for a in displacement_scan(structure, atom, direction, amps)])
    dft = None
    if dft_frames:
        axis = {"x": 0, "y": 1, "z": 2}[direction]
        pts = []
        for f in dft_frames:
            d = f.positions[atom] - structure.positions[atom]
            frac = np.linalg.solve(structure.cell[:].T, d)
            d = (frac - np.round(frac)) @ structure.cell[:]
            pts.append((d[axis], f.arrays["born_charges"]))
        pts.sort(key=lambda t: t[0])
        dft = (np.array([p[0] for p in pts]), np.stack([p[1] for p in pts]))
    return amps, z, dft
