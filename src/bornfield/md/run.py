"""Molecular dynamics with ASE integrators: NVE, NVT (Langevin, Bussi, Nosé-Hoover chains), NpT
with a fully flexible cell (MTK), temperature ramps, observables, atomic checkpoints and resume.

On resume the outputs are cut back to the checkpoint and the integrator state (positions,
momenta, cell, thermostat/barostat variables, RNG state, Z* reference, path polarization) is
restored, so on CPU with the same seed the continued run equals an uninterrupted one.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from bornfield.errors import BornfieldError
from bornfield.units import EV_PER_A3_TO_GPA

ENSEMBLES = ("nve", "langevin", "bussi", "nhc", "npt")
STOCHASTIC = ("langevin", "bussi")
CHECKPOINT = "checkpoint.pkl"
COLUMNS = [
    "step", "time_fs", "temperature_K", "target_K", "pressure_GPa", "epot_eV", "etot_eV",
    "a_A", "b_A", "c_A", "alpha_deg", "beta_deg", "gamma_deg", "volume_A3",
    "Px_C_m2", "Py_C_m2", "Pz_C_m2", "Px_path_C_m2", "Py_path_C_m2", "Pz_path_C_m2",
]  # fmt: skip


@dataclass(frozen=True)
class MDConfig:
    """One MD run. Temperatures in K, time in fs, pressure in GPa, field in V/Å."""

    temperature: float = 300.0
    ramp: tuple[float, float, float] | None = None  # (T0, T1, K per ps)
    ensemble: str = "langevin"
    timestep: float = 2.0
    steps: int = 1000
    friction: float = 0.01  # 1/fs (Langevin)
    taut: float = 100.0  # fs (Bussi, NHC, NpT)
    taup: float = 1000.0  # fs (NpT)
    pressure: float = 0.0  # GPa
    seed: int = 0
    log_interval: int = 10
    traj_interval: int = 100
    checkpoint_interval: int = 100
    max_force: float = 50.0  # eV/Å: larger forces stop the run as a blow-up
    min_distance: float = 0.6  # Å
    max_volume_change: float = 0.5  # NpT: |V/V0 − 1| above this stops the run as a blow-up

    def target(self, step: int) -> float:
        if self.ramp is None:
            return self.temperature
        t0, t1, rate = self.ramp
        t = t0 + np.sign(t1 - t0) * rate * step * self.timestep / 1000.0
        return float(min(t, t1) if t1 >= t0 else max(t, t1))

    def validate(self) -> None:
        if self.ensemble not in ENSEMBLES:
            raise BornfieldError(
                f"unknown ensemble {self.ensemble!r}; choose {', '.join(ENSEMBLES)}"
            )
        if self.ensemble != "nve" and self.target(0) <= 0:
            raise BornfieldError(f"{self.ensemble} needs a temperature above 0 K")
        if self.timestep <= 0 or self.steps < 0:
            raise BornfieldError("timestep must be > 0 and steps >= 0")
        for name in ("log_interval", "traj_interval", "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise BornfieldError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("friction", "taut", "taup"):
            if not getattr(self, name) > 0:
                raise BornfieldError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.ramp is not None and not (self.ramp[2] > 0 and min(self.ramp[:2]) > 0):
            raise BornfieldError(f"ramp T0:T1:rate needs T0, T1 > 0 K and rate > 0: {self.ramp}")


def _integrator(atoms: Atoms, cfg: MDConfig, rng: np.random.Generator):
    from ase.md.bussi import Bussi
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import MTKNPT, NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    dt, t = cfg.timestep * units.fs, cfg.target(0)
    if cfg.ensemble == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    if cfg.ensemble == "langevin":
        return Langevin(atoms, timestep=dt, temperature_K=t, friction=cfg.friction / units.fs,
                        fixcm=False, rng=rng)  # fmt: skip
    if cfg.ensemble == "bussi":
        return Bussi(atoms, timestep=dt, temperature_K=t, taut=cfg.taut * units.fs, rng=rng)
    if cfg.ensemble == "nhc":
        dyn = NoseHooverChainNVT(atoms, timestep=dt, temperature_K=t, tdamp=cfg.taut * units.fs)
    else:
        dyn = MTKNPT(atoms, timestep=dt, temperature_K=t, pressure_au=cfg.pressure * units.GPa,
                     tdamp=cfg.taut * units.fs, pdamp=cfg.taup * units.fs)  # fmt: skip
    # ASE's chains thermostat 3N degrees of freedom, but the momenta start without a
    # centre-of-mass part and the chains keep it so: 3N - 3 are thermal. Counting 3N ran the
    # crystal 3N/(3N - 3) too hot (2.6 % at 40 atoms, 11 % at 10), unseen in ASE's temperature,
    # which counts 3N too (see `temperature`)
    dyn._thermostat._num_atoms_global = thermal_dof(atoms, cfg.ensemble) / 3
    return dyn


def thermal_dof(atoms: Atoms, ensemble: str) -> int:
    """Degrees of freedom that hold kinetic energy: 3N − 3 under every thermostat (the centre
    of mass is held still: FixCom for Langevin and Bussi, zero total momentum kept by the
    Nosé-Hoover chains and MTK); what ASE counts in NVE (3N less constraints)."""
    if ensemble == "nve":
        return int(atoms.get_number_of_degrees_of_freedom())
    return 3 * len(atoms) - 3


def temperature(atoms: Atoms, ensemble: str) -> float:
    """Kinetic temperature (K) over :func:`thermal_dof`."""
    return 2 * atoms.get_kinetic_energy() / (thermal_dof(atoms, ensemble) * units.kB)


def _set_temperature(dyn, t: float) -> None:
    """Move the thermostat target to t (K) for ramps (Langevin, Bussi, NHC and MTK NpT)."""
    kt = units.kB * t
    if hasattr(dyn, "target_kinetic_energy"):  # Bussi: no setter, two derived attributes
        dyn.temp = kt
        dyn.target_kinetic_energy = 0.5 * kt * dyn.ndof
    elif hasattr(dyn, "set_temperature"):  # Langevin
        dyn.set_temperature(temperature_K=t)
    for part in ("_thermostat", "_barostat"):  # NHC / MTK (chain masses stay as initialised)
        if hasattr(dyn, part):
            getattr(dyn, part)._kT = kt
    if hasattr(dyn, "_kT"):
        dyn._kT = kt


def reference_hash(ref_scaled: np.ndarray) -> str:
    """Short hash of a polarization reference (scaled positions to 1e-8)."""
    import hashlib

    return hashlib.sha256(np.round(ref_scaled, 8).tobytes()).hexdigest()[:16]


#: settings a resumed run may change: its length and the blow-up thresholds
RESUMABLE_CHANGES = ("steps", "max_force", "min_distance", "max_volume_change")
#: settings recorded only since a later version: a checkpoint without one ran under the value
#: given here (None: not known, so any value resumes it)
LATER_KEYS = {"bec_interval": None, "bec_extrapolate": False}


def _changed(old: dict, new: dict, key: str) -> bool:
    if key in RESUMABLE_CHANGES:
        return False
    if key not in old and key in LATER_KEYS:
        return LATER_KEYS[key] is not None and new.get(key) != LATER_KEYS[key]
    return old.get(key) != new.get(key)


def _check_same_run(path: Path, meta: dict) -> None:
    """Refuse to resume a checkpoint under other physics (ensemble, field, timestep, ...)."""
    old = json.loads(path.read_text())
    diff = [k for k in sorted(set(old) | set(meta)) if _changed(old, meta, k)]
    if diff:
        changes = ", ".join(f"{k} {old.get(k, LATER_KEYS.get(k))} -> {meta.get(k)}" for k in diff)
        raise BornfieldError(
            f"{path.parent}: holds a checkpoint of another run ({changes}); "
            "resume with the same settings or use another output folder"
        )


def _state_of(obj) -> dict:
    return {k: v for k, v in vars(obj).items() if isinstance(v, np.ndarray | float | int)}


def _save_checkpoint(
    path: Path, atoms: Atoms, dyn, step: int, rng, calc, n_rows: int, n_frames: int, v0: float
):
    state = {
        "step": step,
        "v0": v0,
        "positions": atoms.positions.copy(),
        "momenta": atoms.get_momenta(),
        "cell": atoms.cell[:].copy(),
        "dyn": _state_of(dyn),
        "parts": {
            p: _state_of(getattr(dyn, p)) for p in ("_thermostat", "_barostat") if hasattr(dyn, p)
        },
        "rng": rng.bit_generator.state,
        "n_rows": n_rows,
        "n_frames": n_frames,
    }
    if hasattr(calc, "ref_scaled"):
        state["calc"] = {"ref_scaled": calc.ref_scaled, "path_dipole": calc.path_dipole,
                         "prev": calc._prev, "z": calc._z, "n_calls": calc.n_calls,
                         "last": calc._last, "refreshed": calc._refreshed}  # fmt: skip
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(state, fh)
    tmp.replace(path)


def _restore_atoms(path: Path, atoms: Atoms) -> dict:
    """The checkpoint's cell, positions and momenta into ``atoms`` (before the integrator is
    made: Bussi's refuses atoms at rest); returns the whole checkpoint."""
    with open(path, "rb") as fh:
        state = pickle.load(fh)
    atoms.set_cell(state["cell"], scale_atoms=False)
    atoms.positions = state["positions"]
    # as saved: FixCom would otherwise remove a 1e-17 centre-of-mass momentum again, and the
    # resumed trajectory would differ from the uninterrupted one in the last bits
    atoms.set_momenta(state["momenta"], apply_constraint=False)
    return state


def _restore(state: dict, dyn, rng, calc) -> None:
    """The integrator's, random stream's and field calculator's state from a checkpoint."""
    for k, v in state["dyn"].items():
        setattr(dyn, k, v)
    for p, d in state["parts"].items():
        for k, v in d.items():
            setattr(getattr(dyn, p), k, v)
    rng.bit_generator.state = state["rng"]
    if "calc" in state:
        c = state["calc"]
        calc.ref_scaled, calc.path_dipole, calc._prev = c["ref_scaled"], c["path_dipole"], c["prev"]
        calc._z, calc.n_calls, calc._last = c["z"], c["n_calls"], c["last"]
        calc._refreshed = c.get("refreshed", [] if c["z"] is None else [c["z"]])


def _truncate(path: Path, keep_lines: int) -> None:
    if path.exists():
        lines = path.read_text().splitlines(keepends=True)[:keep_lines]
        path.write_text("".join(lines))


def _truncate_traj(path: Path, n_frames: int) -> None:
    if not path.exists():
        return
    from ase.io import read, write

    frames = read(path, index=f":{n_frames}") if n_frames else []
    write(path, frames, format="extxyz") if frames else path.unlink()


def run_md(
    atoms: Atoms,
    calc,
    cfg: MDConfig,
    out_dir: str | Path,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> dict:
    """Run (or resume) MD in ``out_dir``: observables.csv, trajectory.xyz, checkpoint.pkl.

    ``stop_after`` ends the call after that many steps of this call (for tests and chunked runs).
    Returns a summary (steps done, ns/day, reason it stopped).
    """
    cfg.validate()
    if len(atoms) == 0:
        raise BornfieldError("empty structure: no atoms to simulate")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(calc, "set_reference") and getattr(calc, "ref_scaled", None) is None:
        calc.set_reference(atoms)
    meta = asdict(cfg)
    if getattr(calc, "field", None) is not None:
        meta["field_V_per_A"] = [float(x) for x in calc.field]
    if hasattr(calc, "bec_interval"):  # the Z* schedule: refresh interval, held or extrapolated
        meta["bec_interval"] = int(calc.bec_interval)
        meta["bec_extrapolate"] = bool(getattr(calc, "bec_extrapolate", False))
    if getattr(calc, "ref_scaled", None) is not None:  # P is measured from this structure
        meta["reference_sha256"] = reference_hash(calc.ref_scaled)
    meta = json.loads(json.dumps(meta))  # tuples as lists, as read back
    if (out / CHECKPOINT).exists() and (out / "config.json").exists():
        _check_same_run(out / "config.json", meta)
    (out / "config.json").write_text(json.dumps(meta, indent=1))
    atoms = atoms.copy()
    atoms.calc = calc
    if cfg.ensemble in ("langevin", "bussi"):
        # Langevin's random forces move the centre of mass; P = Σ Z*·u is blind to that (ASR)
        # only until an atom wraps by a cell vector. FixCom keeps it still (ASE's replacement for
        # the deprecated fixcm=True) and takes its 3 degrees of freedom out of the temperature
        # and out of Bussi's target kinetic energy (5 % at 20 atoms). ASE's Nosé-Hoover chains
        # and MTK NpT refuse constraints.
        from ase.constraints import FixCom

        atoms.set_constraint(FixCom())
    rng = np.random.default_rng(cfg.seed)
    obs, traj, ckpt = out / "observables.csv", out / "trajectory.xyz", out / CHECKPOINT
    step = n_rows = n_frames = 0
    v0 = atoms.get_volume()
    state = _restore_atoms(ckpt, atoms) if ckpt.exists() else None
    if cfg.ensemble != "nve" and state is None:
        thermalize_momenta(atoms, cfg.target(0), rng=rng)
        Stationary(atoms)
    dyn = _integrator(atoms, cfg, rng)
    if state is not None:
        _restore(state, dyn, rng, calc)
        step, n_rows, n_frames = state["step"], state["n_rows"], state["n_frames"]
        v0 = state.get("v0", v0)
        _truncate(obs, n_rows + 1)
        _truncate_traj(traj, n_frames)
        log(f"resuming at step {step} from {ckpt}")
    else:
        obs.write_text(",".join(COLUMNS) + "\n")
        traj.unlink(missing_ok=True)
    from ase.io import write as ase_write

    def observe() -> None:
        nonlocal n_rows, n_frames
        if step % cfg.log_interval == 0:
            epot = atoms.get_potential_energy()
            ekin = atoms.get_kinetic_energy()
            stress = atoms.get_stress(include_ideal_gas=True) if cfg.ensemble == "npt" else None
            p = -stress[:3].mean() * EV_PER_A3_TO_GPA if stress is not None else float("nan")
            res = getattr(atoms.calc, "results", {})
            pol = res.get("polarization", np.full(3, np.nan))
            pol_path = res.get("polarization_path", np.full(3, np.nan))
            row = [step, step * cfg.timestep, temperature(atoms, cfg.ensemble), cfg.target(step), p,
                   epot, epot + ekin, *atoms.cell.cellpar(), atoms.get_volume(), *pol,
                   *pol_path]  # fmt: skip
            with open(obs, "a") as fh:
                fh.write(",".join(f"{x:.10g}" for x in row) + "\n")
            n_rows += 1
        if step % cfg.traj_interval == 0:
            ase_write(traj, atoms, format="extxyz", append=True)
            n_frames += 1

    def check_blowup() -> str | None:
        f = atoms.get_forces()
        if not np.isfinite(f).all() or np.abs(f).max() > cfg.max_force:
            return f"force runaway (max |F| {np.abs(f).max():.3g} eV/Å > {cfg.max_force})"
        t = temperature(atoms, cfg.ensemble)
        if t > 5 * max(cfg.target(step), 300.0) + 1000:
            return f"temperature runaway ({t:.0f} K)"
        dv = atoms.get_volume() / v0 - 1
        if abs(dv) > cfg.max_volume_change:
            return (
                f"cell volume runaway ({100 * dv:+.0f} % from the start; is the force field "
                "outside its training data?)"
            )
        if len(atoms) > 1:
            from bornfield.models.neighbours import min_distance

            d = min_distance(atoms, cfg.min_distance)
            if d is not None:
                return f"atoms too close ({d:.3f} Å)"
        return None

    if step == 0 and not ckpt.exists():
        observe()
    t0, start, reason = time.perf_counter(), step, "finished"
    last_report = t0
    while step < cfg.steps:
        if stop_after is not None and step - start >= stop_after:
            reason = "stopped"
            break
        if cfg.ramp is not None:
            _set_temperature(dyn, cfg.target(step))
        dyn.run(1)
        step += 1
        observe()
        if step % cfg.log_interval == 0 and (why := check_blowup()):
            reason = f"blow-up at step {step}: {why}"
            ase_write(out / "blowup.xyz", atoms, format="extxyz")
            break
        if step % cfg.checkpoint_interval == 0:
            _save_checkpoint(ckpt, atoms, dyn, step, rng, atoms.calc, n_rows, n_frames, v0)
        now = time.perf_counter()
        if now - last_report > 10 or step == cfg.steps:
            rate = (step - start) / (now - t0)
            ns_day = rate * cfg.timestep * 86400 / 1e6
            eta = (cfg.steps - step) / rate / 60
            t_now = temperature(atoms, cfg.ensemble)
            log(f"step {step}/{cfg.steps}  T {t_now:.0f} K  {ns_day:.3f} ns/day"
                f"  {1e3 / rate:.1f} ms/step  ETA {eta:.1f} min")  # fmt: skip
            last_report = now
    elapsed = time.perf_counter() - t0
    if reason == "finished" or reason == "stopped":
        _save_checkpoint(ckpt, atoms, dyn, step, rng, atoms.calc, n_rows, n_frames, v0)
    summary = {
        "steps_done": step,
        "steps_this_call": step - start,
        "wall_s": elapsed,
        "ms_per_step": 1e3 * elapsed / max(step - start, 1),
        "ns_per_day": (step - start) * cfg.timestep * 86400 / 1e6 / max(elapsed, 1e-9),
        "stopped_because": reason,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if reason.startswith("blow-up"):
        raise BornfieldError(f"{out}: {reason}; outputs so far kept, last frame in blowup.xyz")
    return summary
