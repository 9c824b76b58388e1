"""Specialized MACE force fields: training with mace-torch's own trainer, loading, evaluation.

Training runs ``mace_run_train`` (mace-torch's CLI; bornfield does not re-implement MACE) on a
file with ``REF_`` keys, with E0s fitted from the data, float64 training, early stopping on a
validation split, seeded, and ``--restart_latest`` so that a killed run resumes from its last
checkpoint. The model is exported as float64 and float32 (for MD).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from ase import Atoms

from bornfield.data import io
from bornfield.data.validate import require_keys
from bornfield.errors import BornfieldError
from bornfield.parallel import die_with_parent

MODEL_NAME = "ff"


@dataclass(frozen=True)
class FFPreset:
    """MACE architecture and training hyper-parameters."""

    hidden_irreps: str = "32x0e"
    max_ell: int = 2
    r_max: float = 4.5
    correlation: int = 2
    num_interactions: int = 2
    max_num_epochs: int = 300
    patience: int = 30
    #: 1: 36.6 against 53.3 meV/Å at batch 4, same epochs (bench/results/ff_accuracy.md)
    batch_size: int = 1
    lr: float = 0.01
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    #: stress in eV/Å³ is ~100× smaller than forces in eV/Å: weight 10 left σ errors of 2.6 GPa
    #: on BaTiO3 (test split), so it is weighted like the forces' squared scale
    stress_weight: float = 1000.0
    valid_fraction: float = 0.1
    #: eV/atom added to the least-squares E0s, so that isolated atoms lie this far above the
    #: crystal. Without it a single-composition set (every frame ABO3) puts the free atoms at the
    #: crystal's mean energy: cohesion ~0.1 eV/atom, and NpT runs above ~300 K sublime. 6.3 eV
    #: is the experimental atomization energy of BaTiO3 and CaTiO3 (31.7 eV per formula unit).
    cohesive_energy: float = 6.3
    #: MACE's second stage (stochastic weight averaging with energy weight 1000) starts at this
    #: fraction of the epochs; it fixes the energy offset that force-dominated training leaves
    swa_start_fraction: float = 0.75
    ema_decay: float = 0.99  # exponential moving average of the weights (0: off)
    #: learning-rate schedule of the first stage: mace-torch's ReduceLROnPlateau (factor 0.8
    #: after ``scheduler_patience`` epochs without progress) or ExponentialLR (× ``lr_gamma``
    #: every epoch)
    scheduler: str = "ReduceLROnPlateau"
    scheduler_patience: int = 50
    lr_gamma: float = 0.9993
    #: training precision (MD always runs the float32 export): bench/results/ff_train_speed.md
    dtype: str = "float64"
    #: each frame's loss weight ∝ its atom count (mean 1 over the set), so that at batch size 1
    #: every atom counts alike, as in batched training; without it a 20-atom cell weighs as much
    #: as a 5-atom one. A frame's own ``config_weight`` (mace-torch's key) multiplies it.
    weight_by_atoms: bool = True
    #: train with bornfield's fused scalar convolutions where they apply (``models/mace_fused``:
    #: the same gradients, fewer operations; bench/results/ff_train_speed.md); on the CPU only,
    #: where it was measured, as ``MACEForceField`` fuses for inference
    fuse: bool = True


PRESETS: dict[str, FFPreset] = {
    # chosen for CPU MD speed: scalar messages, l_max 2, 4.5 Å
    "fast": FFPreset(),
    "accurate": FFPreset(
        hidden_irreps="64x0e+64x1o",
        max_ell=3,
        r_max=5.0,
        correlation=3,
        max_num_epochs=800,
        patience=60,
    ),
}


def ff_preset(name: str, **overrides) -> FFPreset:
    if name not in PRESETS:
        raise BornfieldError(
            f"unknown force-field preset {name!r}; choose from {', '.join(PRESETS)}"
        )
    return replace(PRESETS[name], **overrides)


def write_mace_file(
    frames: Sequence[Atoms], path: Path, with_stress: bool, weight_by_atoms: bool = False
) -> None:
    """A training file with mace-torch's REF_ keys (labels under names MACE will not overwrite)
    and each frame's ``config_weight`` (see :attr:`FFPreset.weight_by_atoms`)."""
    weights = np.array([float(a.info.get("config_weight", 1.0)) for a in frames])
    if weight_by_atoms:
        n = np.array([len(a) for a in frames], dtype=float)
        weights *= n / n.mean()
    out = []
    for a, w in zip(frames, weights, strict=True):
        b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
        b.info["config_weight"] = float(w)
        b.info["REF_energy"] = float(a.info["energy"])
        b.arrays["REF_forces"] = np.asarray(a.arrays["forces"])
        if with_stress:
            b.info["REF_stress"] = np.asarray(a.info["stress"]).reshape(9)
        out.append(b)
    from ase.io import write as ase_write

    path.parent.mkdir(parents=True, exist_ok=True)
    ase_write(path, out, format="extxyz")


def reference_energies(frames: Sequence[Atoms], cohesive_energy: float = 0.0) -> dict[int, float]:
    """Per-element E0s (eV): least-squares (minimum-norm) fit of the frame energies to the
    element counts, plus ``cohesive_energy`` per atom (see :class:`FFPreset`)."""
    from ase.data import atomic_numbers

    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
    counts = np.array([[a.get_chemical_symbols().count(e) for e in elements] for a in frames])
    energies = np.array([float(a.info["energy"]) for a in frames])
    e0, *_ = np.linalg.lstsq(counts.astype(float), energies, rcond=None)
    return {
        atomic_numbers[e]: float(v + cohesive_energy) for e, v in zip(elements, e0, strict=True)
    }


def train_ff(
    data: str | Path | Sequence[str | Path] | Sequence[Atoms],
    out_dir: str | Path,
    preset: FFPreset | str = "fast",
    seed: int = 0,
    valid: Sequence[Atoms] | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    init: str | Path | None = None,
    allow_mixed_dft: bool = False,
) -> Path:
    """Train a MACE model on frames with energy and forces (and stress if every frame has it).

    ``data``: a file, several files trained as one set (the union of materials, as the paper's
    dataset D; files labelled with different functionals are refused unless
    ``allow_mixed_dft``, see :func:`bornfield.data.io.read_union`), or frames.

    Returns the path of the float64 model; ``ff_float32.model`` and ``card.json`` sit beside it.
    Rerunning with the same ``out_dir`` resumes from the latest checkpoint; rerunning a finished
    training with the same data, preset and seed returns its model untouched.

    ``init``: a MACE model (file or bornfield model directory) whose weights the training starts
    from, e.g. one pretrained on many cheap labels (mace-torch's ``--foundation_model``, naive
    fine-tuning): its architecture replaces the preset's, the E0s come from ``data``.
    """
    cfg = ff_preset(preset) if isinstance(preset, str) else preset
    frames, source = io.read_union(data, allow_mixed_dft)
    require_keys(frames, ["energy", "forces"], source)
    with_stress = all("stress" in a.info for a in frames)
    if valid is None and len(frames) < 2:
        raise BornfieldError(
            f"{source}: {len(frames)} frame(s): need at least 2 to hold out a validation frame,"
            " or a validation file"
        )
    out = Path(out_dir)
    work = out / "mace"
    e0s = reference_energies(frames, cfg.cohesive_energy)
    init_path = _init_model(init, frames, source, e0s, work) if init is not None else None
    write_mace_file(frames, work / "train.xyz", with_stress, cfg.weight_by_atoms)
    args = [
        "--name", MODEL_NAME, "--model", "MACE", "--train_file", str(work / "train.xyz"),
        "--E0s", str(e0s), "--energy_key", "REF_energy", "--forces_key", "REF_forces",
        "--hidden_irreps", cfg.hidden_irreps, "--max_ell", str(cfg.max_ell),
        "--r_max", str(cfg.r_max), "--correlation", str(cfg.correlation),
        "--num_interactions", str(cfg.num_interactions),
        "--max_num_epochs", str(cfg.max_num_epochs), "--patience", str(cfg.patience),
        "--batch_size", str(cfg.batch_size), "--valid_batch_size", str(cfg.batch_size),
        "--lr", str(cfg.lr), "--scheduler", cfg.scheduler,
        "--scheduler_patience", str(cfg.scheduler_patience),
        "--lr_scheduler_gamma", str(cfg.lr_gamma), "--energy_weight", str(cfg.energy_weight),
        "--forces_weight", str(cfg.forces_weight), "--default_dtype", cfg.dtype,
        "--seed", str(seed), "--device", device, "--restart_latest", "--save_cpu",
        "--eval_interval", "1", "--error_table", "PerAtomMAE",
        "--work_dir", str(work), "--model_dir", str(work),
        "--checkpoints_dir", str(work / "checkpoints"),
        "--results_dir", str(work / "results"), "--log_dir", str(work / "logs"),
    ]  # fmt: skip
    if with_stress:
        w = str(cfg.stress_weight)
        args += ["--loss", "stress", "--stress_key", "REF_stress", "--stress_weight", w,
                 "--swa_stress_weight", w, "--compute_stress", "True"]  # fmt: skip
    else:
        args += ["--loss", "weighted"]
    if cfg.swa_start_fraction > 0:
        args += [
            "--swa",
            "--start_swa",
            str(max(1, int(cfg.swa_start_fraction * cfg.max_num_epochs))),
        ]
    if cfg.ema_decay > 0:
        args += ["--ema", "--ema_decay", str(cfg.ema_decay)]
    if init_path is not None:
        args += ["--foundation_model", str(init_path)]
    if valid is not None:
        write_mace_file(valid, work / "valid.xyz", with_stress, cfg.weight_by_atoms)
        args += ["--valid_file", str(work / "valid.xyz")]
    else:
        args += ["--valid_fraction", str(cfg.valid_fraction)]
    fingerprint = _fingerprint(args, cfg, work)
    final = out / "ff.model"
    if final.exists() and (out / "card.json").exists():
        if json.loads((out / "card.json").read_text()).get("fingerprint") == fingerprint:
            return final  # finished: a resumed mace-torch run would re-save a changed model
    # training time over all calls (a resumed run adds to it; a kill loses at most one epoch)
    wall_file = work / "wall_s"
    prior = float(wall_file.read_text()) if wall_file.exists() else 0.0
    t0 = time.perf_counter()

    def tick() -> None:
        wall_file.write_text(f"{prior + time.perf_counter() - t0:.1f}")

    _run_mace_train(args, work / "train.log", log, tick, cfg.fuse and device == "cpu")
    tick()
    wall = float(wall_file.read_text())
    model = work / f"{MODEL_NAME}_stagetwo.model"  # the SWA stage, when it ran
    if not model.exists():
        model = work / f"{MODEL_NAME}.model"
    if not model.exists():
        raise BornfieldError(f"mace_run_train finished without {model}; see {work / 'train.log'}")
    import torch

    from bornfield.models.mace_fused import unfuse_scalar_convolutions

    m = torch.load(model, map_location="cpu", weights_only=False)
    unfuse_scalar_convolutions(m)  # trained fused (mace_train); saved as mace-torch's layers
    # ff.model is float64 (relaxations, phonons) however trained
    torch.save(m.double(), final)
    export_float32(final, out / "ff_float32.model")
    card = {
        "kind": "MACE force field",
        "preset": asdict(cfg),
        "seed": seed,
        "n_train_frames": len(frames),
        "elements": sorted({s for a in frames for s in a.get_chemical_symbols()}),
        "trained_on_stress": with_stress,
        "E0s_eV": {str(k): v for k, v in e0s.items()},
        "wall_time_s": round(wall, 1),
        "epochs_run": _epochs_run(work / "train.log"),
        "mace_torch": _mace_version(),
        "fingerprint": fingerprint,
    }
    if init is not None:  # the architecture is the initial model's, not the preset's
        card["initialized_from"] = str(Path(init).resolve())
    (out / "card.json").write_text(json.dumps(card, indent=1))
    return final


def _fingerprint(args: list[str], cfg: FFPreset, work: Path) -> str:
    """Hash of a training's inputs: mace-torch's arguments, the preset and the data files."""
    import hashlib

    h = hashlib.sha256(json.dumps([args, asdict(cfg)]).encode())
    for name in ("train.xyz", "valid.xyz"):
        if (work / name).exists() and str(work / name) in args:
            h.update((work / name).read_bytes())
    if "--foundation_model" in args:  # the initial model's weights
        h.update(Path(args[args.index("--foundation_model") + 1]).read_bytes())
    return h.hexdigest()[:16]


def _init_model(
    init: str | Path, frames: Sequence[Atoms], source: str, e0s: dict[int, float], work: Path
) -> Path:
    """A copy of the float64 model of ``init`` (checked to be a MACE model that knows every
    element of ``frames``) with the E0s of the new data: mace-torch's fine-tuning keeps the
    initial model's E0s, which belong to its own labels (e.g. CHGNet's energy scale)."""
    import torch
    from ase.data import chemical_symbols

    path = Path(init)
    if path.is_dir():
        path = path / "ff.model"
    if not path.is_file():
        raise BornfieldError(f"{path}: no such model file (initial model)")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
        zs = [int(z) for z in model.atomic_numbers]
        energies = model.atomic_energies_fn.atomic_energies
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise BornfieldError(f"{path}: not a MACE model ({type(exc).__name__})") from None
    missing = sorted({s for a in frames for s in a.get_chemical_symbols()} - {
        chemical_symbols[z] for z in zs
    })  # fmt: skip
    if missing:
        raise BornfieldError(
            f"{source}: elements {', '.join(missing)} unknown to the initial model {path}"
        )
    with torch.no_grad():
        for i, z in enumerate(zs):
            if z in e0s:
                energies[..., i] = e0s[z]
    work.mkdir(parents=True, exist_ok=True)
    torch.save(model, work / "init.model")
    return work / "init.model"


def _run_mace_train(
    args: list[str],
    logfile: Path,
    log: Callable[[str], None],
    tick: Callable[[], None],
    fuse: bool = True,
) -> None:
    cmd = [sys.executable, "-m", "bornfield.models.mace_train", *args]
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", BORNFIELD_FUSE=str(int(fuse)))
    epoch = re.compile(
        r"Epoch (\d+).*?loss=([\d.e+-]+).*?MAE_E_per_atom=\s*([\d.]+) meV.*?MAE_F=\s*([\d.]+) meV"
    )
    with open(logfile, "a") as fh:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=die_with_parent,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            if m := epoch.search(line):
                tick()
                log(f"epoch {m.group(1)}: loss {m.group(2)}, valid MAE E {m.group(3)} meV/atom, "
                    f"F {m.group(4)} meV/Å")  # fmt: skip
        rc = proc.wait()
    if rc != 0:
        tail = logfile.read_text().strip().splitlines()[-3:]
        raise BornfieldError(f"mace_run_train failed ({rc}): {' | '.join(tail)}")


def _epochs_run(logfile: Path) -> int:
    found = re.findall(r"Epoch (\d+)", logfile.read_text()) if logfile.exists() else []
    return max(map(int, found), default=0)


def _mace_version() -> str:
    from importlib.metadata import version

    return version("mace-torch")


def export_float32(model_path: Path, out_path: Path) -> None:
    """A float32 copy of a MACE model, for fast MD."""
    import torch

    model = torch.load(model_path, map_location="cpu", weights_only=False)
    torch.save(model.float(), out_path)


def load_calculator(
    model_path: str | Path, device: str = "cpu", dtype: str = "float32", compile: bool = False
):
    """A lean ASE calculator (:class:`~bornfield.models.mace_calculator.MACEForceField`) for a
    bornfield model file or directory; results equal mace-torch's ``MACECalculator``.
    ``compile``: energy and forces from a ``torch.compile``-d model (``mace_compile``)."""
    path = Path(model_path)
    if path.is_dir():
        path = path / ("ff_float32.model" if dtype == "float32" else "ff.model")
    if not path.is_file():
        raise BornfieldError(f"{path}: no such model file")
    from bornfield.models.mace_calculator import MACEForceField

    return MACEForceField(path, device=device, dtype=dtype, compile=compile)


def model_elements(calc) -> set[str]:
    """Chemical symbols a MACE calculator was trained on."""
    from ase.data import chemical_symbols

    return {chemical_symbols[int(z)] for z in calc.models[0].atomic_numbers}


def check_elements(calc, atoms: Atoms, source: str = "structure") -> None:
    """Raise a one-line error when ``atoms`` holds elements the model was not trained on."""
    known = model_elements(calc)
    unknown = sorted(set(atoms.get_chemical_symbols()) - known)
    if unknown:
        raise BornfieldError(
            f"{source}: element(s) {', '.join(unknown)} unknown to the force field "
            f"(trained on {', '.join(sorted(known))})"
        )
