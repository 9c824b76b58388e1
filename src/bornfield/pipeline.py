"""`bornfield run`: models → static response → MD sweeps → analysis → report, from one config.

Each stage writes into the output directory and a stamp (a hash of its configuration and of
the model files); a stage whose stamp matches and whose outputs exist is skipped. MD runs live
in directories named by the hash of their settings and resume from their checkpoints, so a
killed pipeline, rerun with the same command, continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from ase import Atoms

from bornfield.config import RunConfig
from bornfield.errors import BornfieldError

AXES = "xyz"


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if p.suffix in {".model", ".pt", ".json"}:
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


class Stage:
    """Skip-if-up-to-date bookkeeping for one stage's outputs."""

    def __init__(self, out: Path, name: str, key: dict, outputs: list[str]):
        self.dir = out / name
        self.stamp = self.dir / "stamp.json"
        self.key = _hash(key)
        self.outputs = [self.dir / o for o in outputs]

    def fresh(self) -> bool:
        if not self.stamp.exists() or not all(p.exists() for p in self.outputs):
            return False
        return json.loads(self.stamp.read_text()).get("key") == self.key

    def done(self, wall: float) -> None:
        self.stamp.write_text(json.dumps({"key": self.key, "wall_s": round(wall, 1)}))


def build_structure(cfg: RunConfig) -> Atoms:
    """The simulation cell named by [system]."""
    from bornfield.label.generators import named_structure

    s = cfg.system.structure
    spec = s if s == "pnma" or s.startswith("cubic:") else str(cfg.path(s))
    return named_structure(spec).repeat(cfg.system.supercell)


def resolve_models(cfg: RunConfig, out: Path, log: Callable[[str], None]) -> tuple[Path, Path]:
    """Model paths. Missing ones are trained from [models] train_data into ``out/models``
    (once: a finished model there is reused; an unfinished training resumes)."""
    m = cfg.models
    ff, bec = cfg.path(m.ff), cfg.path(m.bec)
    if ff.exists() and bec.exists():
        return ff, bec
    if not m.train_data:
        missing = ff if not ff.exists() else bec
        raise BornfieldError(f"model {missing} not found and no [models] train_data to train it")
    data = cfg.path(m.train_data)
    if not ff.exists():
        from bornfield.models.force_field import ff_preset, train_ff

        ff = out / "models" / "ff"
        if not (ff / "card.json").exists():  # written when training ends
            log(f"training the force field on {data} -> {ff}")
            epochs = {"max_num_epochs": m.ff_epochs} if m.ff_epochs else {}
            train_ff(data, ff, preset=ff_preset(m.ff_preset, **epochs), log=log)
    if not bec.exists():
        from bornfield.models.bec_train import BECTrainConfig, train_bec

        bec = out / "models" / "bec"
        if not (bec / "card.json").exists():  # written when training ends
            log(f"training the Born-charge model on {data} -> {bec}")
            tcfg = BECTrainConfig(**({"max_epochs": m.bec_epochs} if m.bec_epochs else {}))
            train_bec(data, bec, {"channels": m.bec_channels}, tcfg, log=log)
    return ff, bec


def electronic_epsilon(cfg: RunConfig, bec: Path, atoms: Atoms) -> dict | None:
    """ε∞ added to the ionic ε: [models] eps_inf, else the Born-charge model's ε∞ head on the
    (unrelaxed) simulation cell, else none."""
    if cfg.models.eps_inf is not None:
        return {"tensor": (np.eye(3) * cfg.models.eps_inf).tolist(), "source": "[models] eps_inf"}
    from bornfield.models.bec import load_model, predict_epsilon

    model = load_model(bec)
    if not model.cfg.epsilon_head:
        return None
    eps = predict_epsilon(model, atoms, str(bec))
    return {"tensor": eps.tolist(), "source": f"the ε∞ head of {bec}"}


def _eps_inf(results_eps: dict | None) -> np.ndarray | None:
    return None if results_eps is None else np.asarray(results_eps["tensor"])


def ff_file(ff: Path, md: bool = True) -> Path:
    """The model file in a force-field directory: float32 for MD, float64 for relaxations,
    phonons and errors (the other one when only one exists)."""
    if ff.is_dir():
        names = ("ff_float32.model", "ff.model")
        for name in names if md else names[::-1]:
            if (ff / name).exists():
                return ff / name
    return ff


def run_static(
    cfg, atoms, ff: Path, bec: Path, out: Path, log, eps_inf: np.ndarray | None = None
) -> tuple[dict, dict | None, Atoms]:
    from bornfield.analysis import dielectric as D
    from bornfield.analysis.errors import write_json
    from bornfield.calculators.field_calculator import FieldCalculator
    from bornfield.models.bec import load_model, predict_bec
    from bornfield.models.force_field import load_calculator

    st = cfg.static
    stage = Stage(
        out,
        "static",
        {
            "static": asdict(st),
            "system": asdict(cfg.system),
            "ff": _file_hash(ff),
            "bec": _file_hash(bec),
            "eps_inf": None if eps_inf is None else np.round(eps_inf, 6).tolist(),
        },
        ["static.json", "relaxed.xyz"] + (["phonon.json"] if st.phonons else []),
    )
    from ase.io import read, write

    if stage.fresh():
        log("static: up to date")
        res = json.loads((stage.dir / "static.json").read_text())
        ph = json.loads((stage.dir / "phonon.json").read_text()) if st.phonons else None
        return res, ph, read(stage.dir / "relaxed.xyz")
    t0 = time.perf_counter()
    stage.dir.mkdir(parents=True, exist_ok=True)
    ffc = load_calculator(ff_file(ff, md=False), dtype="float64")
    model = load_model(bec)
    calc = FieldCalculator(ffc, model)
    res = D.static_response(
        atoms,
        calc,
        st.fields_V_per_m,
        st.directions,
        fmax=st.fmax,
        relax_cell=st.relax_cell,
        relax_cell_at_zero=st.relax_cell_at_zero,
        eps_inf=eps_inf,
        rattle=st.rattle,
        log=log,
    )
    write(stage.dir / "relaxed.xyz", D.relaxed_structure(atoms, res), format="extxyz")
    # MD starts from the structure as read back, bit for bit what a rerun reads: the in-memory
    # one differs in the last digits, enough to change the MD runs' reference hash
    relaxed = read(stage.dir / "relaxed.xyz")
    write_json(stage.dir / "static.json", res)
    ph = None
    if st.phonons:
        z = predict_bec(model, relaxed)
        ph = D.phonon_epsilon(relaxed, ffc, z, eps_inf=eps_inf)
        write_json(stage.dir / "phonon.json", ph)
        log(
            f"phonons: ε_ion diagonal {np.round(np.diag(ph['epsilon_ionic']), 2)}, "
            f"static slope {np.round(np.diag(res['epsilon_ionic']), 2)}"
        )
    stage.done(time.perf_counter() - t0)
    return res, ph, relaxed


def _fields(d) -> list[tuple[str, np.ndarray]]:
    """(run name, field in V/m) of one temperature: zero field, then each direction at each
    strength ("x", or "x@2.5e+07" when there are several strengths)."""
    from bornfield.analysis.dielectric import direction_vector

    out = [("0", np.zeros(3))]
    for name in d.directions:
        for e in d.field_V_per_m:
            tag = name if len(d.field_V_per_m) == 1 else f"{name}@{e:g}"
            out.append((tag, direction_vector(name) * e))
    return out


def _inputs(cfg: RunConfig, start: Atoms, ff: Path, bec: Path) -> dict:
    """What names a run directory besides its MD settings: a changed model or start structure
    gives a new directory instead of resuming a stale checkpoint."""
    return {
        "ff": _file_hash(ff),
        "bec": _file_hash(bec),
        "start": np.round(
            np.concatenate([start.positions.ravel(), start.cell[:].ravel()]), 6
        ).tolist(),
        "numbers": start.numbers.tolist(),
        "device": cfg.models.device,
    }


def _zero_field_task(cfg: RunConfig, name: str, start: Atoms, ff: Path, bec: Path, md, out: Path):
    """A zero-field run (heating, thermal cell) in ``out/md/NAME_HASH``."""
    from bornfield.md.sweep import MDTask

    key = _hash({"md": asdict(md), **_inputs(cfg, start, ff, bec)})
    return MDTask(
        name,
        start,
        str(ff_file(ff)),
        str(bec),
        (0.0, 0.0, 0.0),
        md,
        str(out / "md" / f"{name}_{key}"),
        10,  # zero field: Z* only feeds the polarization output, refreshed every 10 steps
        cfg.models.device,
        cfg.models.compile,
    )


def npt_tasks(cfg: RunConfig, start: Atoms, ff: Path, bec: Path, out: Path) -> list:
    """One zero-field NpT run per dielectric temperature, for its thermal cell."""
    from bornfield.md.run import MDConfig

    d = cfg.dielectric
    tasks = []
    for t in d.temperatures:
        md = MDConfig(
            temperature=t,
            ensemble="npt",
            timestep=d.timestep,
            steps=d.npt_steps,
            seed=d.seed,
            log_interval=10,
            traj_interval=10,
            checkpoint_interval=200,
        )
        tasks.append(_zero_field_task(cfg, f"T{t:g}_npt", start, ff, bec, md, out))
    return tasks


def thermal_cell(run: str | Path, start: Atoms, average_ps: float, md) -> Atoms:
    """``start`` (its fractional coordinates) in the mean cell of the last ``average_ps`` of an
    NpT run's trajectory: the zero-pressure cell at the run's temperature."""
    from ase.io import read

    frames = read(Path(run) / "trajectory.xyz", index=":")
    n = min(frames_in(average_ps, md, "npt_average_ps"), len(frames))
    cell = np.mean([f.cell[:] for f in frames[-n:]], axis=0)
    atoms = start.copy()
    atoms.set_cell(cell, scale_atoms=True)
    return atoms


def thermal_starts(
    cfg: RunConfig, start: Atoms, npt: list, results: list[dict], log: Callable[[str], None]
) -> tuple[dict[float, Atoms], dict[str, dict]]:
    """Each dielectric temperature's start structure and a record of its cell. With
    [dielectric] cell = "thermal": ``start`` scaled to the mean cell of that temperature's
    finished NpT run (``npt``, from :func:`npt_tasks`, and their ``results``; a failed run
    leaves its temperature out); else ``start`` at every temperature."""
    d = cfg.dielectric
    if d.cell == "relaxed":
        rec = {"cell": "relaxed", "volume_A3": start.get_volume()}
        return {t: start for t in d.temperatures}, {f"{t:g}": dict(rec) for t in d.temperatures}
    starts, cells = {}, {}
    for t, task, r in zip(d.temperatures, npt, results, strict=True):
        if "error" in r:
            cells[f"{t:g}"] = {"cell": "thermal", "error": f"NpT run: {r['error']}"}
            continue
        atoms = thermal_cell(task.out, start, d.npt_average_ps, task.md)
        starts[t] = atoms
        v = atoms.get_volume()
        cells[f"{t:g}"] = {
            "cell": "thermal",
            "volume_A3": v,
            "volume_change": v / start.get_volume() - 1,
            "cellpar": atoms.cell.cellpar().tolist(),
            "npt_run": task.out,
        }
        log(f"{t:g} K: thermal cell {v:.1f} Å³ ({100 * (v / start.get_volume() - 1):+.2f} %)")
    return starts, cells


def md_tasks(
    cfg: RunConfig,
    start: Atoms,
    ff: Path,
    bec: Path,
    out: Path,
    starts: dict[float, Atoms] | None = None,
    heating: bool = True,
) -> list:
    """Dielectric runs (each T: zero field + each direction) and, with ``heating``, the
    heating run. ``starts`` gives each temperature's start structure (default ``start``; a
    temperature missing from it gets no runs)."""
    from bornfield.analysis.dielectric import V_PER_A
    from bornfield.md.run import MDConfig
    from bornfield.md.sweep import MDTask

    tasks = []
    starts = {t: start for t in cfg.dielectric.temperatures} if starts is None else starts
    d = cfg.dielectric
    if d.enabled:
        for t in d.temperatures:
            if t not in starts:
                continue
            t_inputs = _inputs(cfg, starts[t], ff, bec)
            # one seed per temperature: zero-field and field runs share their thermostat noise,
            # so ⟨P⟩_E − ⟨P⟩_0 is estimated from paired series (common random numbers)
            md = MDConfig(
                temperature=t,
                ensemble=d.ensemble,
                timestep=d.timestep,
                steps=d.steps,
                seed=d.seed,
                log_interval=d.log_interval,
                traj_interval=d.steps,
                checkpoint_interval=max(d.log_interval, 200),
            )
            for name, e in _fields(d):
                field = tuple(float(x) for x in e / V_PER_A)
                schedule = {"bec_interval": d.bec_interval}
                if d.bec_extrapolate:  # (absent when False: earlier runs keep their folders)
                    schedule["bec_extrapolate"] = True
                key = _hash({"md": asdict(md), "field": field, **schedule, **t_inputs})
                tasks.append(
                    MDTask(
                        f"T{t:g}_E{name}",
                        starts[t],
                        str(ff_file(ff)),
                        str(bec),
                        field,
                        md,
                        str(out / "md" / f"T{t:g}_E{name}_{key}"),
                        d.bec_interval,
                        cfg.models.device,
                        cfg.models.compile,
                        d.bec_extrapolate,
                    )
                )
    heat = heating_task(cfg, start, ff, bec, out) if heating else None
    return tasks + ([heat] if heat else [])


def heating_task(cfg: RunConfig, start: Atoms, ff: Path, bec: Path, out: Path):
    """The zero-field heating run of [phases] (None when it is off)."""
    from bornfield.md.run import MDConfig

    p = cfg.phases
    if not p.enabled:
        return None
    md = MDConfig(
        ramp=(p.t_start, p.t_end, p.rate_K_per_ps),
        temperature=p.t_start,
        ensemble=p.ensemble,
        timestep=p.timestep,
        steps=p.steps,
        seed=p.seed,
        log_interval=10,
        traj_interval=p.traj_interval,
        checkpoint_interval=p.traj_interval * 5,
    )
    return _zero_field_task(cfg, "heating", start, ff, bec, md, out)


def analyze_dielectric(
    cfg: RunConfig,
    tasks,
    results,
    out: Path,
    log: Callable[[str], None] = print,
    eps_inf: np.ndarray | None = None,
    cells: dict[str, dict] | None = None,
) -> dict:
    """ε per temperature from the paired runs, with the cell they ran in (``cells``, from
    :func:`thermal_starts`)."""
    from bornfield.analysis import dielectric as D

    d = cfg.dielectric
    cells = cells or {}
    by_name = {t.name: (t, r) for t, r in zip(tasks, results, strict=True)}
    table = {}
    for t in d.temperatures:
        cell = cells.get(f"{t:g}", {})
        zero = by_name.get(f"T{t:g}_E0")
        if zero is None or "error" in zero[1]:
            err = cell.get("error") or (zero or [None, {"error": "missing"}])[1]["error"]
            table[f"{t:g}"] = {"error": err, "cell": cell}
            continue
        z_obs = D.read_observables(zero[0].out, d.equilibration)
        runs = []
        for name, _ in _fields(d)[1:]:
            task, r = by_name[f"T{t:g}_E{name}"]
            if "error" not in r:
                runs.append((np.asarray(task.field), D.read_observables(task.out, d.equilibration)))
        entry = D.md_epsilon(z_obs, runs, eps_inf=eps_inf)
        entry["mean_T_K"] = float(z_obs["temperature_K"].mean())
        entry["cell"] = cell
        table[f"{t:g}"] = entry
        verdict = entry["assessment"]
        eps = np.diag(entry.get("finite_field", entry["fluctuation"])["epsilon_ionic"])
        log(
            f"{t:g} K: ε_ion diagonal {np.round(eps, 1).tolist()}"
            + ("" if verdict["converged"] else "; NOT converged: " + "; ".join(verdict["reasons"]))
        )
    return table


def frames_in(window_ps: float, md, what: str = "window") -> int:
    """Trajectory frames in ``window_ps`` picoseconds of an MD run (at least one)."""
    if not window_ps >= 0:
        raise BornfieldError(f"{what} must be >= 0 ps, got {window_ps}")
    return max(1, round(window_ps * 1000 / (md.timestep * md.traj_interval)))


def analyze_heating_run(
    run: str | Path, md, window_ps: float, order_window_ps: float, **kwargs
) -> dict:
    """:func:`~bornfield.analysis.phases.analyze_heating` of an MD run's trajectory, with its
    space-group windows and order-parameter blocks given in ps (a window longer than the run
    is the whole run); ``kwargs`` go on to it."""
    from ase.io import read

    from bornfield.analysis.phases import analyze_heating

    frames = read(Path(run) / "trajectory.xyz", index=":")
    temps = [md.target(i * md.traj_interval) for i in range(len(frames))]
    res = analyze_heating(
        frames,
        temps,
        window=min(frames_in(window_ps, md), len(frames)),
        order_window=frames_in(order_window_ps, md, "order window"),
        **kwargs,
    )
    return res | {"window_ps": window_ps, "order_window_ps": order_window_ps}


def analyze_phases(cfg: RunConfig, tasks, results) -> dict | None:
    for t, r in zip(tasks, results, strict=True):
        if t.name != "heating":
            continue
        if "error" in r:
            return {"error": r["error"]}
        res = analyze_heating_run(
            t.out,
            t.md,
            cfg.phases.window_ps,
            cfg.phases.order_window_ps,
            b_site=cfg.system.b_site,
            x_site=cfg.system.x_site,
            order_parameter=cfg.phases.order_parameter,
        )
        res["observables"] = str(Path(t.out) / "observables.csv")
        return res
    return None


def _sweep(cfg: RunConfig, tasks: list, log: Callable[[str], None]) -> list[dict]:
    from bornfield.md.sweep import run_sweep

    return run_sweep(
        tasks, cfg.sweep.scheduler, cfg.sweep.workers, cfg.sweep.threads_per_worker, log=log
    )


def run_pipeline(cfg: RunConfig, log: Callable[[str], None] = print) -> dict:
    """Run every enabled stage; returns the results that also go to ``results.json``."""
    from bornfield.analysis.errors import write_json
    from bornfield.report import write_report

    out = Path(cfg.out) if Path(cfg.out).is_absolute() else Path(cfg.base_dir or ".") / cfg.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1, default=str))
    t0 = time.perf_counter()
    ff, bec = resolve_models(cfg, out, log)
    atoms = build_structure(cfg)
    log(f"{atoms.get_chemical_formula()} ({len(atoms)} atoms); ff {ff}; bec {bec} -> {out}")
    eps_el = electronic_epsilon(cfg, bec, atoms)
    if eps_el:
        log(f"ε∞ diagonal {np.round(np.diag(eps_el['tensor']), 2).tolist()} ({eps_el['source']})")
    static = phonon = None
    start = atoms
    if cfg.static.enabled:
        static, phonon, start = run_static(cfg, atoms, ff, bec, out, log, _eps_inf(eps_el))
    # Two sweeps: first the runs that need only the relaxed structure (the NpT runs for the
    # thermal cells, with the heating run beside them), then the field runs in those cells.
    # The heating run, the longest, leads its sweep so that it does not run alone at the end.
    d = cfg.dielectric
    heat = heating_task(cfg, start, ff, bec, out)
    npt = npt_tasks(cfg, start, ff, bec, out) if d.enabled and d.cell == "thermal" else []
    early = [heat] if heat and npt else []
    if npt:
        log(f"thermal cells: {len(npt)} NpT runs of {d.npt_steps} steps"
            + (", beside the heating run" if early else ""))  # fmt: skip
    early_results = _sweep(cfg, early + npt, log)
    npt_results = early_results[len(early) :]
    starts = cells = None
    if d.enabled:
        starts, cells = thermal_starts(cfg, start, npt, npt_results, log)
    tasks = ([heat] if heat and not early else []) + md_tasks(
        cfg, start, ff, bec, out, starts, heating=False
    )
    log(f"MD sweep: {len(tasks)} runs on {cfg.sweep.scheduler or 'a local Dask cluster'}")
    results = _sweep(cfg, tasks, log)
    tasks, results = early + tasks, early_results[: len(early)] + results
    results_json = {
        "system": {"formula": atoms.get_chemical_formula(), "atoms": len(atoms)},
        "models": {
            "ff": str(ff),
            "bec": str(bec),
            "ff_sha": _file_hash(ff),
            "bec_sha": _file_hash(bec),
        },
        "eps_inf": eps_el,
        "static": static,
        "phonon": phonon,
        "dielectric": analyze_dielectric(cfg, tasks, results, out, log, _eps_inf(eps_el), cells)
        if cfg.dielectric.enabled
        else None,
        "phases": analyze_phases(cfg, tasks, results),
        "md_runs": npt_results + results,
    }
    write_json(out / "results.json", results_json)
    write_report(cfg, out, results_json, ff=ff, bec=bec, relaxed=start, log=log)
    log(f"done in {(time.perf_counter() - t0) / 60:.1f} min: {out / 'report.html'}")
    return results_json


def estimate_cost(
    cfg: RunConfig, ms_per_step: float = 10.7, ms_per_atom_step: float = 0.15
) -> dict:
    """Rough wall time of the MD part, divided over the sweep's workers. One worker's field-MD
    step with the shipped CaTiO3 models on one thread (Z* every 10 steps) costs ``ms_per_step``
    + ``ms_per_atom_step`` × atoms: measured 13.5 ms at 20 atoms, 22 ms at 80 (`bornfield run`)
    and 107–112 ms at 640 (bench/results/fieldmd_catio3_t1.md), 2026-11-27."""
    n = len(build_structure(cfg))
    d, p = cfg.dielectric, cfg.phases
    per_t = len(_fields(d)) * d.steps + (d.npt_steps if d.cell == "thermal" else 0)
    steps = (len(d.temperatures) * per_t if d.enabled else 0) + (p.steps if p.enabled else 0)
    ms = ms_per_step + ms_per_atom_step * n
    if cfg.models.compile:  # 1.8–2.2× at 160–1280 atoms (bench/results/fieldmd_catio3_t1.md)
        ms /= 2.0
    hours = steps * ms / 1e3 / 3600 / max(cfg.sweep.workers, 1)
    return {"atoms": n, "md_steps": steps, "estimated_hours": hours}


def with_out(cfg: RunConfig, out: str | None) -> RunConfig:
    return replace(cfg, out=out) if out else cfg
