"""Force-field errors against DFT labels: metrics (units in their names), parity plots, k-fold CV,
and the learning curve that both models share (test error vs training-set size).

Energies of foundation baselines are compared after a per-element reference shift fitted by least
squares on the training frames (their absolute energies refer to other pseudopotentials).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from bornfield.units import EV_PER_A3_TO_GPA


def predict(calc, frames: Sequence[Atoms], with_stress: bool = True) -> list[dict]:
    """Energy, forces (and stress) of each frame from an ASE calculator."""
    out = []
    for a in frames:
        b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
        b.calc = calc
        p = {"energy": b.get_potential_energy(), "forces": b.get_forces()}
        if with_stress:
            p["stress"] = b.get_stress(voigt=False)
        out.append(p)
    return out


def composition_matrix(frames: Sequence[Atoms], elements: Sequence[str]) -> np.ndarray:
    return np.array([[a.get_chemical_symbols().count(e) for e in elements] for a in frames], float)


def fit_energy_shift(frames: Sequence[Atoms], predicted: Sequence[dict]) -> dict[str, float]:
    """Per-element shifts μ_e minimizing Σ (E_DFT − E_model − Σ_e n_e μ_e)²."""
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
    x = composition_matrix(frames, elements)
    y = np.array([a.info["energy"] - p["energy"] for a, p in zip(frames, predicted, strict=True)])
    mu, *_ = np.linalg.lstsq(x, y, rcond=None)
    return dict(zip(elements, mu.tolist(), strict=True))


def ff_metrics(
    frames: Sequence[Atoms], predicted: Sequence[dict], shift: dict[str, float] | None = None
) -> dict[str, float]:
    """MAE/RMSE of energy (meV/atom), forces (meV/Å, also per element) and stress (GPa)."""
    n = np.array([len(a) for a in frames])
    e_pred = np.array([p["energy"] for p in predicted])
    if shift:
        elements = list(shift)
        e_pred = e_pred + composition_matrix(frames, elements) @ np.array(
            [shift[e] for e in elements]
        )
    de = (e_pred - np.array([a.info["energy"] for a in frames])) / n * 1e3
    df = np.concatenate(
        [p["forces"] - a.arrays["forces"] for a, p in zip(frames, predicted, strict=True)]
    )
    sym = np.concatenate([a.get_chemical_symbols() for a in frames])
    m = {
        "n_frames": len(frames),
        "energy_mae_meV_per_atom": float(np.abs(de).mean()),
        "energy_rmse_meV_per_atom": float(np.sqrt((de**2).mean())),
        "force_mae_meV_per_A": float(np.abs(df).mean() * 1e3),
        "force_rmse_meV_per_A": float(np.sqrt((df**2).mean()) * 1e3),
        "force_label_mean_abs_meV_per_A": float(
            np.abs(np.concatenate([a.arrays["forces"] for a in frames])).mean() * 1e3
        ),
    }
    for el in dict.fromkeys(sym):
        m[f"force_mae_{el}_meV_per_A"] = float(np.abs(df[sym == el]).mean() * 1e3)
    if all("stress" in p and "stress" in a.info for a, p in zip(frames, predicted, strict=True)):
        ds = np.array(
            [p["stress"] - a.info["stress"] for a, p in zip(frames, predicted, strict=True)]
        )
        m["stress_mae_GPa"] = float(np.abs(ds).mean() * EV_PER_A3_TO_GPA)
        m["stress_rmse_GPa"] = float(np.sqrt((ds**2).mean()) * EV_PER_A3_TO_GPA)
    return m


def force_parity_plot(
    frames: Sequence[Atoms],
    predictions: dict[str, Sequence[dict]],
    path: str | Path,
    title: str = "",
) -> None:
    """Predicted vs DFT force components for one or more models (the paper's Fig. 2a), PNG."""
    from bornfield.analysis.plotting import plt, save_png

    ref = np.concatenate([a.arrays["forces"].ravel() for a in frames])
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    for i, (name, pred) in enumerate(predictions.items()):
        y = np.concatenate([p["forces"].ravel() for p in pred])
        mae = np.abs(y - ref).mean() * 1e3
        ax.scatter(ref, y, s=3, alpha=0.5, color=f"C{i}", label=f"{name} (MAE {mae:.0f} meV/Å)")
    lim = np.abs(ref).max() * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    ax.set(
        xlim=(-lim, lim), ylim=(-lim, lim), xlabel="DFT force (eV/Å)", ylabel="model force (eV/Å)"
    )
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    save_png(fig, path, dpi=130)


def summarize_folds(fold_metrics: Sequence[dict]) -> dict[str, float]:
    """Mean and standard deviation over folds of every numeric metric."""
    out: dict[str, float] = {"n_folds": len(fold_metrics)}
    for key in fold_metrics[0]:
        vals = np.array([m[key] for m in fold_metrics if key in m], dtype=float)
        out[key] = float(vals.mean())
        out[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return out


def write_json(path: str | Path, obj: dict) -> None:
    from bornfield.data.io import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1))


def cross_validate(
    frames: Sequence[Atoms],
    k: int,
    train: Callable[[list[Atoms], Path], Path],
    load: Callable[[Path], object],
    out_dir: Path,
    seed: int = 0,
    with_stress: bool = True,
    workers: int = 1,
) -> tuple[list[dict], list[Atoms], list[dict]]:
    """k-fold CV: ``train(train_frames, fold_dir)`` returns a model path (folds in parallel on
    Dask with ``workers`` > 1), ``load(path)`` a calculator; each fold is evaluated.

    Returns per-fold metrics, and all test frames with their predictions (for one parity plot).
    """
    from bornfield.data.splits import kfold
    from bornfield.parallel import train_all

    splits = kfold(len(frames), k, seed)
    jobs = [([frames[j] for j in tr], out_dir / f"fold{i}") for i, (tr, _) in enumerate(splits)]
    metrics, test_frames, preds = [], [], []
    for path, (_, te) in zip(train_all(jobs, train, workers), splits, strict=True):
        test = [frames[j] for j in te]
        p = predict(load(path), test, with_stress)
        metrics.append(ff_metrics(test, p))
        test_frames += test
        preds += p
    return metrics, test_frames, preds


def learning_curve(
    frames: Sequence[Atoms],
    sizes: Sequence[int],
    train: Callable[[list[Atoms], Path], Path],
    score: Callable[[Path, list[Atoms]], dict],
    out_dir: Path,
    test_fraction: float = 0.2,
    seed: int = 0,
    workers: int = 1,
) -> list[dict]:
    """Test errors vs number of training structures on one fixed held-out set (the paper's
    Fig. S1): each size trains on the first n of one seeded order of the other frames, so the
    sets are nested. ``train(frames, dir)`` returns a model path, ``score(path, test)`` its
    metrics. Sizes larger than the training pool are dropped."""
    from bornfield.data.splits import random_split
    from bornfield.parallel import train_all

    tr, te = random_split(len(frames), test_fraction, seed)
    test = [frames[i] for i in te]
    order = np.random.default_rng(seed).permutation(tr)
    sizes = [n for n in sizes if n <= len(order)]
    jobs = [([frames[i] for i in order[:n]], out_dir / f"n{n}") for n in sizes]
    paths = train_all(jobs, train, workers)
    return [
        {"n_train": int(n), "n_test": len(test), **score(path, test)}
        for n, path in zip(sizes, paths, strict=True)
    ]


def learning_curve_plot(
    rows: Sequence[dict], path: str | Path, metric: str, unit: str, label: str, title: str = ""
) -> None:
    """Log-log test error ``{metric}_{unit}`` vs training structures, overall and per element
    (``{metric}_{El}_{unit}``)."""
    import re

    from bornfield.analysis.plotting import plt, save_png

    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    n = [r["n_train"] for r in rows]
    ax.loglog(n, [r[f"{metric}_{unit}"] for r in rows], "o-", label="all")
    pattern = rf"{re.escape(metric)}_([A-Z][a-z]?)_{re.escape(unit)}"
    elements = [m.group(1) for k in rows[0] if (m := re.fullmatch(pattern, k))]
    for i, el in enumerate(elements):
        ax.loglog(
            n, [r[f"{metric}_{el}_{unit}"] for r in rows], "s--", ms=4, color=f"C{i + 1}", label=el
        )
    ax.set(xlabel="training structures", ylabel=label, title=title)
    ax.legend(fontsize=8)
    save_png(fig, path, dpi=130)


def evaluate_ff(
    data: str | Path | Sequence[str | Path],
    model: str | Path | None = None,
    folds: int = 0,
    learning_curve_sizes: Sequence[int] = (),
    preset: str = "fast",
    epochs: int | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    baselines: Sequence[str] = (),
    shift_data: str | Path | None = None,
    plot: str | Path | None = None,
    workers: int = 1,
    dtype: str | None = None,
    allow_mixed_dft: bool = False,
) -> dict:
    """Errors of a bornfield MACE model (or of k-fold CV models) and of baselines on ``data``;
    with ``learning_curve_sizes``, also the errors of models trained on that many frames.

    ``data``: one file, or several read as one set (:func:`bornfield.data.io.read_parts`).
    ``dtype``: training precision of the CV models (default: the preset's); every model is
    evaluated in float64.

    Returns ``{"model": metrics, <baseline>: metrics, "folds": [...]}``; metric keys carry units.
    A given model on several files is also scored file by file: ``{"by_file": {path: {"model":
    metrics, <baseline>: metrics}}}``.
    """
    from bornfield.data import io
    from bornfield.data.validate import require_keys
    from bornfield.errors import BornfieldError
    from bornfield.models.force_field import ff_preset, load_calculator, train_ff

    parts = io.read_parts(data, allow_mixed_dft)
    for path, part in parts:
        require_keys(part, ["energy", "forces"], path)
    frames = [a for _, part in parts for a in part]
    title = " + ".join(Path(path).name for path, _ in parts)
    with_stress = all("stress" in a.info for a in frames)
    result: dict = {"data": [p for p, _ in parts] if len(parts) > 1 else parts[0][0]}
    over = {"max_num_epochs": epochs, "dtype": dtype}
    cfg = ff_preset(preset, **{k: v for k, v in over.items() if v})
    out = Path(out_dir or "cv_ff")

    def train(tr: list[Atoms], fold_dir: Path) -> Path:
        return train_ff(tr, fold_dir, cfg, seed=seed)

    def load(path: Path):
        return load_calculator(path, dtype="float64")

    if learning_curve_sizes:
        rows = learning_curve(
            frames, learning_curve_sizes, train,
            lambda path, test: ff_metrics(test, predict(load(path), test, with_stress)),
            out, seed=seed, workers=workers,
        )  # fmt: skip
        result["learning_curve"] = rows
        learning_curve_plot(rows, out / "learning_curve.png", "force_mae", "meV_per_A",
                            "force MAE (meV/Å)", title=title)  # fmt: skip
        if not (folds or model):
            return result
    if folds:
        fold_m, test, pred = cross_validate(
            frames, folds, train, load, out, seed, with_stress, workers
        )
        result["folds"] = fold_m
        result["model"] = summarize_folds(fold_m)
    else:
        if not model:
            raise BornfieldError("evaluate ff needs a model, folds=K or learning-curve sizes")
        from bornfield.models.force_field import check_elements

        test = frames
        calc = load_calculator(model, dtype="float64")
        for path, part in parts:
            for i, a in enumerate(part):
                check_elements(calc, a, f"{path}: frame {i}")
        pred = predict(calc, test, with_stress)
        result["model"] = ff_metrics(test, pred)
    predictions = {"bornfield MACE" + (f" ({folds}-fold CV)" if folds else ""): pred}
    shifts: dict[str, dict[str, float]] = {}
    for spec in baselines:
        from bornfield.models.baselines import load_baseline

        name = spec.split(":")[0]
        calc = load_baseline(spec)
        pred_b = predict(calc, test, with_stress)
        ref = io.read(shift_data) if shift_data else test
        shift = fit_energy_shift(ref, pred_b if not shift_data else predict(calc, ref, False))
        result[name] = ff_metrics(test, pred_b, shift)
        result[name]["energy_shift_fitted_on"] = (
            str(shift_data) if shift_data else " + ".join(path for path, _ in parts)
        )
        predictions[name], shifts[name] = pred_b, shift
    if not folds and len(parts) > 1:
        result["by_file"] = {}
        start = 0
        for path, part in parts:
            stop = start + len(part)
            result["by_file"][path] = {
                "model": ff_metrics(part, pred[start:stop]),
                **{n: ff_metrics(part, predictions[n][start:stop], s) for n, s in shifts.items()},
            }
            start = stop
    if plot:
        force_parity_plot(test, predictions, plot, title=title)
    return result
