"""One typed configuration for the whole pipeline (`bornfield run config.toml`).

Every field has a default; a TOML file overrides what it names, section by section, and
unknown sections or keys are errors (a typo must not silently fall back to a default).
Presets: ``default`` (the embedded demo: shipped BaTiO3 models, a 40-atom cell, short runs,
≈ 15 min on 2 cores) and ``paper`` (640-atom Pnma CaTiO3, 1 K/ps heating; hours to days).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from bornfield.errors import BornfieldError

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SystemConfig:
    structure: str = "cubic:BaTiO3"  # "cubic:<ABO3>", "pnma" (CaTiO3) or a structure file
    supercell: tuple[int, int, int] = (2, 2, 2)
    b_site: str = "Ti"  # B cation and anion, for octahedral tilts
    x_site: str = "O"


@dataclass(frozen=True)
class ModelsConfig:
    ff: str = "models/batio3/ff"  # model directory or file (relative to the repo or the config)
    bec: str = "models/batio3/bec"
    train_data: str = ""  # labelled extxyz: train both models here when the files are missing
    ff_preset: str = "fast"
    ff_epochs: int = 0  # 0: the preset's
    bec_epochs: int = 0  # 0: BECTrainConfig's
    bec_channels: int = 16
    eps_inf: float | None = None  # electronic ε∞ (isotropic) added to the ionic part
    device: str = "cpu"
    #: torch.compile the force field for MD (1.05–1.3× per NVT step, ~12 s to compile per task)
    compile: bool = False


@dataclass(frozen=True)
class StaticConfig:
    enabled: bool = True
    fields_V_per_m: tuple[float, ...] = (0.0, 2e7, 4e7, 6e7, 8e7, 1e8)
    directions: tuple[str, ...] = ("x", "y", "z", "-x", "-y", "-z")
    fmax: float = 2e-3  # eV/Å
    relax_cell: bool = False  # at every field (stress-free response, adds the piezo part)
    relax_cell_at_zero: bool = True  # zero-field cell relaxation: MD starts at zero pressure
    phonons: bool = True  # zero-T ε from the Γ mode sum as well
    rattle: float = 0.03  # Å, before the zero-field relaxation: leaves saddles (cubic BaTiO3)


@dataclass(frozen=True)
class DielectricConfig:
    enabled: bool = True
    # the default's 40-atom BaTiO3 cell stays in its rhombohedral state up to ~150 K; from 200 K
    # on its polarization wanders between variants and 1500-step runs do not converge (flagged)
    temperatures: tuple[float, ...] = (50.0, 100.0, 150.0)
    field_V_per_m: float = 5e7  # the paper's 5e7 V/m
    directions: tuple[str, ...] = ("x", "y", "z")
    ensemble: str = "langevin"
    timestep: float = 2.0
    steps: int = 1500
    equilibration: float = 0.2  # fraction of each run discarded
    log_interval: int = 5
    bec_interval: int = 10  # Z* refresh: shifts ε by 0.1 % (bench/results/bec_interval.md)
    seed: int = 0


@dataclass(frozen=True)
class PhasesConfig:
    enabled: bool = True
    t_start: float = 100.0
    t_end: float = 400.0
    rate_K_per_ps: float = 100.0
    ensemble: str = "npt"
    timestep: float = 2.0
    traj_interval: int = 20
    window: int = 5  # frames per time-averaged window
    order_parameter: str = "polar"  # "tilt" (CaTiO3, a−a−c+), "polar" (BaTiO3) or "lattice"
    seed: int = 0

    @property
    def steps(self) -> int:
        return int(round((self.t_end - self.t_start) / self.rate_K_per_ps * 1000 / self.timestep))


@dataclass(frozen=True)
class SweepConfig:
    scheduler: str = ""  # address of an existing Dask scheduler; empty: a LocalCluster
    workers: int = 2
    threads_per_worker: int = 1


@dataclass(frozen=True)
class ReportConfig:
    scan_atoms: tuple[str, ...] = ("Ti", "O")  # Fig 1: first atom of each element, along z
    scan_amplitudes: tuple[float, ...] = tuple(round(-0.1 + 0.02 * i, 2) for i in range(11))
    dft_scan: str = ""  # labelled scan (extxyz) drawn over the model curves
    # Fig 2a: a labelled test set (and which frames of it); the default is the held-out test
    # split of the third-party BaTiO3 set that the shipped model was not trained on
    parity_data: str = "../shared/data/batio3-allegro-pol/BaTiO3.xyz"
    parity_indices: tuple[int, ...] = (4, 8, 16, 20, 27, 34, 42, 51, 52, 56)
    baselines: tuple[str, ...] = ("chgnet",)
    softmode_data: str = "data/batio3/softmode.xyz"  # DFT soft-mode energies for Fig 2b
    softmode_amplitudes: tuple[float, ...] = tuple(round(0.02 * i, 2) for i in range(-8, 9))


@dataclass(frozen=True)
class RunConfig:
    out: str = "bornfield_run"
    system: SystemConfig = field(default_factory=SystemConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    static: StaticConfig = field(default_factory=StaticConfig)
    dielectric: DielectricConfig = field(default_factory=DielectricConfig)
    phases: PhasesConfig = field(default_factory=PhasesConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    base_dir: str = ""  # where relative paths are resolved (the config file's folder)

    def path(self, p: str) -> Path:
        """Resolve a path: absolute, else relative to the config's folder, else to the repo."""
        q = Path(p)
        if q.is_absolute():
            return q
        if self.base_dir and (Path(self.base_dir) / q).exists():
            return Path(self.base_dir) / q
        return ROOT / q if (ROOT / q).exists() else Path(self.base_dir or ".") / q


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # the paper's scale: 640-atom Pnma CaTiO3, heating 300 -> 1800 K at 1 K/ps in NpT
    "paper": {
        "system": {"structure": "pnma", "supercell": (4, 2, 4)},
        "models": {"ff": "models/catio3/ff", "bec": "models/catio3/bec"},
        "report": {
            "parity_data": "data/catio3/catio3_5atom.xyz",
            "parity_indices": (),
            "softmode_data": "",  # the shipped DFT soft mode is BaTiO3's
            "scan_atoms": ("Ti", "Ca", "O"),
        },
        "dielectric": {
            "temperatures": (300.0, 600.0, 900.0, 1200.0, 1500.0),
            "steps": 50000,
            "ensemble": "npt",
        },
        "phases": {
            "t_start": 300.0,
            "t_end": 1800.0,
            "rate_K_per_ps": 1.0,
            "traj_interval": 500,
            "window": 10,
            "order_parameter": "tilt",
        },
        "sweep": {"workers": 2, "threads_per_worker": 1},
    },
}


def _coerce(cls, section: str, values: dict[str, Any]):
    names = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise BornfieldError(f"[{section}]: unknown key(s) {', '.join(sorted(unknown))}")
    out = {}
    for k, v in values.items():
        default = getattr(cls(), k)
        if isinstance(default, tuple):
            v = tuple(v) if isinstance(v, list | tuple) else (v,)
        elif isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        elif default is not None and not isinstance(v, type(default)):
            raise BornfieldError(f"[{section}] {k}: expected {type(default).__name__}, got {v!r}")
        out[k] = v
    return out


def merge(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with nested overrides ({"dielectric": {"steps": 100}, "out": ...})."""
    top = {}
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise BornfieldError(f"unknown config section {k!r}")
        cur = getattr(cfg, k)
        if is_dataclass(cur):
            if not isinstance(v, dict):
                raise BornfieldError(f"[{k}] must be a table")
            top[k] = replace(cur, **_coerce(type(cur), k, v))
        else:
            top[k] = v
    return replace(cfg, **top)


def load_config(path: str | Path | None = None, preset: str = "default") -> RunConfig:
    """The preset, overridden by the TOML file at ``path`` (whose folder resolves paths)."""
    if preset not in PRESETS:
        raise BornfieldError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    cfg = merge(RunConfig(), PRESETS[preset])
    if path is None:
        return cfg
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BornfieldError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise BornfieldError(f"{path}: invalid TOML ({exc})") from None
    preset_in_file = data.pop("preset", None)
    if preset_in_file:
        cfg = load_config(None, preset_in_file)
    try:
        cfg = merge(cfg, data)
    except BornfieldError as exc:
        raise BornfieldError(f"{path}: {exc}") from None
    return replace(cfg, base_dir=str(path.resolve().parent))


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return asdict(cfg)
