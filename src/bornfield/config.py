"""One typed configuration for the whole pipeline (`bornfield run config.toml`).

Every field has a default; a TOML file overrides what it names, section by section, and
unknown sections or keys are errors (a typo must not silently fall back to a default).
Presets: ``default`` (the embedded demo: shipped CaTiO3 models, an 80-atom Pnma cell, short
runs, ≤ 15 min on 2 cores), ``batio3`` (the shipped BaTiO3 models on a 40-atom cubic cell) and
``paper`` (640-atom Pnma CaTiO3, 1 K/ps heating; hours to days).
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
    structure: str = "pnma"  # "pnma" (CaTiO3), "cubic:<ABO3>" or a structure file
    # 80 atoms: 1.6× the step cost of the 20-atom cell and half its ε error bars
    supercell: tuple[int, int, int] = (2, 1, 2)
    b_site: str = "Ti"  # B cation and anion, for octahedral tilts
    x_site: str = "O"


@dataclass(frozen=True)
class ModelsConfig:
    ff: str = "models/catio3/ff"  # model directory or file (relative to the repo or the config)
    bec: str = "models/catio3/bec"
    train_data: str = ""  # labelled extxyz: train both models here when the files are missing
    ff_preset: str = "fast"
    ff_epochs: int = 0  # 0: the preset's
    bec_epochs: int = 0  # 0: BECTrainConfig's
    bec_channels: int = 16
    # electronic ε∞ (isotropic) added to the ionic part; None: the Born-charge model's ε∞ head
    # on the start structure when it has one, else no ε∞
    eps_inf: float | None = None
    device: str = "cpu"
    # torch.compile the force field for MD: 2.2–2.6× per field step on 2 threads, 1.8–2.2× on
    # 1 (CaTiO3, 160–1280 atoms, bench/results/fieldmd_catio3*.md), 8 s to compile per Dask
    # worker (about 60 s the first time on a machine); falls back to eager if compiling fails
    compile: bool = True


@dataclass(frozen=True)
class StaticConfig:
    enabled: bool = True
    # ε_ion is the slope over the two smallest fields (±E averaged): the shipped CaTiO3 model's
    # P/E falls by 20 % from 5e6 to 2e7 V/m along x, so they must be small, and fmax well below
    # the field's force on an ion (Z* E ≈ 7 × 5e6 V/m = 3.5e-3 eV/Å)
    fields_V_per_m: tuple[float, ...] = (0.0, 2.5e6, 5e6, 1e7, 2e7, 5e7, 1e8)
    directions: tuple[str, ...] = ("x", "y", "z", "-x", "-y", "-z")
    fmax: float = 1e-4  # eV/Å
    relax_cell: bool = False  # at every field (stress-free response, adds the piezo part)
    relax_cell_at_zero: bool = True  # zero-field cell relaxation: MD starts at zero pressure
    phonons: bool = True  # zero-T ε from the Γ mode sum as well
    rattle: float = 0.03  # Å, before the zero-field relaxation: leaves saddles (cubic BaTiO3)


@dataclass(frozen=True)
class DielectricConfig:
    enabled: bool = True
    temperatures: tuple[float, ...] = (300.0, 600.0, 900.0)
    # the paper's 5e7 V/m; several strengths (and "-x" directions) feed the linearity check
    field_V_per_m: tuple[float, ...] = (5e7,)
    directions: tuple[str, ...] = ("x", "y", "z")
    ensemble: str = "langevin"
    # the cell of each temperature's runs: "thermal", the mean cell of a zero-field NpT run at
    # that temperature (zero pressure; the 80-atom default's volume is 1.4 / 2.8 / 4.4 % above
    # the 0 K cell's at 300 / 600 / 900 K, bench/results/pipeline_default.md), or "relaxed",
    # the zero-field 0 K cell of [static]
    cell: str = "thermal"
    npt_steps: int = 2500  # the thermal cell's NpT run; its cell averaged over the last
    npt_average_ps: float = 3.0  # picoseconds (MTK with taup 1 ps: the volume rings at ~1.3 ps)
    timestep: float = 2.0
    steps: int = 3000
    equilibration: float = 0.2  # fraction of each run discarded
    log_interval: int = 5
    # Z* refreshed every k steps and extrapolated linearly from the last two refreshes between
    # them: at k = 15 ε_zz −0.2 % / −0.1 % at 300 / 900 K, against +0.6 % / +1.6 % with Z* held
    # at k = 10 and −0.4 % / −0.8 % extrapolated at k = 10, +0.8 % / +2.7 % at k = 20
    # (80-atom Pnma CaTiO3, paired runs; bench/results/bec_interval_catio3_extrapolated.md)
    bec_interval: int = 15
    bec_extrapolate: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.cell not in ("thermal", "relaxed"):
            raise BornfieldError(f"[dielectric] cell: 'thermal' or 'relaxed', got {self.cell!r}")


@dataclass(frozen=True)
class PhasesConfig:
    enabled: bool = True
    t_start: float = 300.0
    t_end: float = 1800.0  # the paper's range (Fig 4); Pnma -> I4/mcm at ~1500 K in experiment
    rate_K_per_ps: float = 100.0
    ensemble: str = "npt"
    timestep: float = 2.0
    traj_interval: int = 20
    # space groups and tilts of structures time-averaged over windows of this length: 1 ps
    # averages thermal motion out (Pnma at 300-650 K in 80 atoms; 0.2 ps read P2_1/m and P1)
    window_ps: float = 1.0
    order_parameter: str = "tilt"  # "tilt" (CaTiO3, a−a−c+), "polar" (BaTiO3) or "lattice"
    # the order parameter's components are averaged over this time before squaring, and Tc is
    # fitted to these means: a small cell hopping between tilt variants then reads disordered
    order_window_ps: float = 1.0
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
    scan_atoms: tuple[str, ...] = ("Ti", "Ca", "O")  # Fig 1: first atom of each element, along z
    scan_amplitudes: tuple[float, ...] = tuple(round(-0.1 + 0.02 * i, 2) for i in range(11))
    dft_scan: str = ""  # labelled scan (extxyz) drawn over the model curves
    # Fig 2a: a labelled test set and which frames of it (file order; empty: all). The default:
    # the held-out 20-atom Pnma snapshots (label ids 5 and 11, data/catio3/CARD.md)
    parity_data: str = "data/catio3/catio3_20atom_md.xyz"
    parity_indices: tuple[int, ...] = (1, 2)
    baselines: tuple[str, ...] = ("chgnet",)
    # Fig 2b: DFT energies along the polar soft mode of a cubic cell (its formula picks the cell)
    # and the force field drawn over them (empty: the run's); the shipped scan is BaTiO3's
    softmode_data: str = "data/batio3/softmode.xyz"
    softmode_ff: str = "models/batio3/ff"
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
    # the shipped BaTiO3 models on a 40-atom cubic cell: it stays rhombohedral up to ~150 K; from
    # 200 K on its polarization wanders between variants and 1500-step runs do not converge
    "batio3": {
        "system": {"structure": "cubic:BaTiO3", "supercell": (2, 2, 2)},
        "models": {"ff": "models/batio3/ff", "bec": "models/batio3/bec"},
        "static": {"fields_V_per_m": (0.0, 2e7, 4e7, 6e7, 8e7, 1e8), "fmax": 2e-3},
        "dielectric": {"temperatures": (50.0, 100.0, 150.0), "steps": 1500},
        "phases": {"t_start": 100.0, "t_end": 400.0, "order_parameter": "polar"},
        "report": {
            "scan_atoms": ("Ti", "O"),
            # the held-out test split of the third-party set the BaTiO3 model was not trained on
            "parity_data": "../shared/data/batio3-allegro-pol/BaTiO3.xyz",
            "parity_indices": (4, 8, 16, 20, 27, 34, 42, 51, 52, 56),
            "softmode_ff": "",
        },
    },
    # the paper's scale: 640-atom Pnma CaTiO3, heating 300 -> 1800 K at 1 K/ps in NpT
    "paper": {
        "system": {"supercell": (4, 2, 4)},
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
            "window_ps": 10.0,
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
