"""``bornfield`` command line: parses arguments and calls the stage functions, nothing more.

User errors (bad files, bad options) end with one line on stderr and exit status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from bornfield import __version__
from bornfield.errors import BornfieldError

EXIT_USER_ERROR = 2


def _int_list(text: str) -> list[int]:
    """``5,11`` or ``0-3,7`` -> [5, 11] or [0, 1, 2, 3, 7] (an argparse type)."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of indices: {text!r}") from None
    return out


def _cmd_data_inspect(args: argparse.Namespace) -> None:
    from bornfield.data import io
    from bornfield.data.inspect import FRAME_HEADER, frame_rows, plot_summary, summarize

    per_file = [io.read(f, format=args.format) for f in args.files]
    frames = [a for fs in per_file for a in fs]
    print(summarize(frames, " + ".join(args.files)))
    if args.frames:
        for name, fs in zip(args.files, per_file, strict=True):
            if len(per_file) > 1:
                print(f"{name}:")
            print(FRAME_HEADER)
            for row in frame_rows(fs):
                print(row)
    if args.plot:
        plot_summary(frames, args.plot, title=" + ".join(Path(f).name for f in args.files))
        print(f"  plot: {args.plot}")


def _cmd_data_validate(args: argparse.Namespace) -> None:
    from bornfield.data import io
    from bornfield.data.validate import asr_residual, fix_asr, validate

    frames = io.read(args.file, format=args.format)
    if args.require:
        from bornfield.data.validate import require_keys

        require_keys(frames, args.require.split(","), str(args.file))
    if args.fix_asr:
        if not args.out:
            raise BornfieldError("--fix-asr needs --out FILE (the input is never modified)")
        before = [
            asr_residual(a.arrays["born_charges"]) for a in frames if "born_charges" in a.arrays
        ]
        moved = fix_asr(frames)
        print(
            f"ASR fix: residual max {max(before, default=0):.3g} e -> 0; per-atom shift max "
            f"{max(moved, default=0):.3g} e, mean {sum(moved) / max(len(moved), 1):.3g} e"
        )
    validate(frames, str(args.file), asr_tol=args.asr_tol)
    if args.out:
        io.write(args.out, frames)
        print(f"wrote {len(frames)} frames to {args.out}")
    print(f"{args.file}: {len(frames)} frames OK")


def _cmd_data_convert(args: argparse.Namespace) -> None:
    from bornfield.data import io

    structure = io.read(args.structure)[-1] if args.structure else None
    frames = io.read(args.input, format=args.format, structure=structure)
    io.write(args.output, frames)
    print(f"wrote {len(frames)} frames to {args.output}")


def _cmd_data_split(args: argparse.Namespace) -> None:
    from bornfield.data import io
    from bornfield.data.splits import kfold, random_split, split_by_label_id

    frames = io.read(args.file)
    out = Path(args.out_dir)
    try:
        if args.kfold:
            for i, (train, test) in enumerate(kfold(len(frames), args.kfold, args.seed)):
                io.write(out / f"fold{i}_train.xyz", [frames[j] for j in train])
                io.write(out / f"fold{i}_test.xyz", [frames[j] for j in test])
            print(f"wrote {args.kfold} folds to {out}")
        else:
            if args.test_ids:
                ids = [int(x) for x in args.test_ids.split(",")]
                train, test = split_by_label_id(frames, ids)
            else:
                train, test = random_split(len(frames), args.test_fraction, args.seed)
            io.write(out / "train.xyz", [frames[j] for j in train])
            io.write(out / "test.xyz", [frames[j] for j in test])
            print(f"wrote {len(train)} train / {len(test)} test frames to {out}")
    except ValueError as exc:
        raise BornfieldError(f"{args.file}: {exc}") from None


def _read_all(paths: list[str] | None) -> list:
    """The frames of every file in ``paths`` (e.g. repeated ``--reference``), in order."""
    from bornfield.data import io

    return [a for f in paths or [] for a in io.read(f, check=False)]


def _cmd_data_sparsify(args: argparse.Namespace) -> None:
    from bornfield.data import io
    from bornfield.data.splits import farthest_point_sampling

    frames = io.read(args.file)
    reference = _read_all(args.reference)
    try:
        idx = farthest_point_sampling(
            frames, args.n, seed=args.seed, r_max=args.r_max, reference=reference
        )
    except ValueError as exc:
        raise BornfieldError(f"{args.file}: {exc}") from None
    io.write(args.out, [frames[i] for i in idx])
    print(f"picked {len(idx)} of {len(frames)} frames by farthest-point sampling -> {args.out}")


def _cmd_label(args: argparse.Namespace) -> None:
    import signal

    from bornfield.data import io
    from bornfield.label import label_structures, preset
    from bornfield.label.abinit import request_stop

    if args.calculator:  # a foundation model's labels, for pretraining (not DFT)
        from bornfield.label.surrogate import label_with_calculator

        n = label_with_calculator(io.read(args.structures), args.out, args.calculator)
        print(f"done: {n} new frames labelled with {args.calculator} -> {args.out}")
        return
    if args.status:  # where the queue stands; runs nothing
        from bornfield.label.queue import queue_status

        n = len(io.read(args.structures, check=False))
        print(queue_status(n, args.out, args.job_dir, args.ids))
        return
    # SIGTERM: checkpoint the run in flight, then stop (the rerun continues from there)
    signal.signal(signal.SIGTERM, lambda *_: request_stop())

    overrides = {"bec": not args.no_bec}
    if args.ecut:
        overrides["ecut"] = args.ecut
    if args.nstep:
        overrides["nstep"] = args.nstep
    if args.kpt_length:
        overrides["kpt_length"] = args.kpt_length
    if args.scf_toldff is not None:
        overrides["toldff_scf"] = args.scf_toldff or None
    if args.xc:
        from bornfield.label.abinit import FUNCTIONALS

        overrides["ixc"] = FUNCTIONALS[args.xc]
    settings = preset(args.preset, **overrides)
    checkpoint = {} if args.checkpoint_min is None else {"checkpoint_s": 60 * args.checkpoint_min}
    structures = io.read(args.structures)
    report = label_structures(
        structures, args.out, settings, job_dir=args.job_dir, nprocs=args.np,
        max_structures=args.max_structures, ids=args.ids, retry_failed=args.retry_failed,
        **checkpoint,
    )  # fmt: skip
    print(
        f"done: {len(report.done)} new, {len(report.skipped)} earlier, {len(report.failed)} failed"
    )
    if report.failed:
        for i, why in sorted(report.failed.items()):
            print(f"  structure {i}: {why}", file=sys.stderr)
        raise BornfieldError(f"{len(report.failed)} of {len(structures)} structures failed")


def _cmd_structures(args: argparse.Namespace) -> None:
    from bornfield.data import io
    from bornfield.label import generators as g

    if args.kind == "cubic":
        base = g.cubic_perovskite(args.formula, args.a)
    elif args.kind == "pnma":
        base = g.pnma_catio3()
    else:
        base = io.read(args.structure)[-1]
    if args.supercell:
        base = base.repeat([int(x) for x in args.supercell.split("x")])
    if args.softmode:
        from bornfield.analysis.dielectric import soft_mode_pattern
        from bornfield.models.force_field import load_calculator

        amps = [float(x) for x in args.amplitudes.split(",")]
        pattern = soft_mode_pattern(base, load_calculator(args.softmode, dtype="float64"))
        frames = g.softmode_frames(base, amps, pattern)
    elif args.md:
        from bornfield.label import snapshots

        if not args.n:
            raise BornfieldError("--md needs -n (snapshots per temperature)")
        temps = [float(t) for t in args.temperatures.split(",")]
        calc = snapshots.load_md_calculator(args.md)
        frames = snapshots.md_snapshots(
            base,
            calc,
            temps,
            args.n,
            interval=args.interval,
            equilibration=args.equilibration,
            seed=args.seed,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
        # --strain with --md only when asked for: snapshots keep the MD cell otherwise. The
        # strain comes after the selection (as the shipped batches were made), except against
        # --reference frames, which are compared strained with strained
        reference = _read_all(args.reference)
        if args.strain and reference:
            frames = g.strained(frames, args.strain, seed=args.seed)
        if args.sparsify:
            frames = snapshots.sparsify(frames, args.sparsify, seed=args.seed, reference=reference)
        if args.strain and not reference:
            frames = g.strained(frames, args.strain, seed=args.seed)
    elif args.atom is not None:
        amps = [float(x) for x in args.amplitudes.split(",")]
        frames = [
            f
            for i in args.atom.split(",")
            for f in g.displacement_scan(base, int(i), args.direction, amps)
        ]
    elif args.n:
        strain = 0.02 if args.strain is None else args.strain
        frames = g.perturbed(base, args.n, args.rattle, strain, args.seed)
    else:
        frames = [base]
    io.write(args.out, frames)
    print(f"wrote {len(frames)} structures ({len(frames[0])} atoms) to {args.out}")


def _cmd_train_ff(args: argparse.Namespace) -> None:
    from bornfield.models.force_field import ff_preset, train_ff

    overrides = {"max_num_epochs": args.epochs} if args.epochs else {}
    if args.cohesive_energy is not None:
        overrides["cohesive_energy"] = args.cohesive_energy
    if args.dtype:
        overrides["dtype"] = args.dtype
    if args.frame_weights:
        overrides["weight_by_atoms"] = args.frame_weights == "atoms"
    valid = None
    if args.valid:
        from bornfield.data import io

        valid = io.read(args.valid)
    model = train_ff(
        _data(args.data),
        args.out,
        ff_preset(args.preset, **overrides),
        seed=args.seed,
        valid=valid,
        device=args.device,
        init=args.init,
        allow_mixed_dft=args.allow_mixed_dft,
    )
    print(f"model: {model}")


def _data(paths: list[str]) -> str | list[str]:
    """One --data file as itself, several as their list (read as one set)."""
    return paths[0] if len(paths) == 1 else paths


def _cmd_evaluate_ff(args: argparse.Namespace) -> None:
    from bornfield.analysis.errors import evaluate_ff, write_json

    result = evaluate_ff(
        _data(args.data),
        model=args.model,
        folds=args.folds,
        learning_curve_sizes=args.learning_curve or [],
        preset=args.preset,
        epochs=args.epochs,
        seed=args.seed,
        out_dir=args.out,
        baselines=args.baseline or [],
        shift_data=args.shift_data,
        plot=args.plot,
        workers=args.workers,
        dtype=args.dtype,
        allow_mixed_dft=args.allow_mixed_dft,
    )
    for row in result.get("learning_curve", []):
        e, f = row["energy_mae_meV_per_atom"], row["force_mae_meV_per_A"]
        print(f"n_train {row['n_train']:4d}: E {e:.2f} meV/atom   F {f:.1f} meV/Å"
              f" (MAE on {row['n_test']} frames)")  # fmt: skip
    for name in [k for k in result if isinstance(result[k], dict) and k != "by_file"]:
        print(_ff_line(name, result[name]))
    for path, models in result.get("by_file", {}).items():
        print(path)
        for name, m in models.items():
            print("  " + _ff_line(name, m))
    if args.plot:
        print(f"parity plot: {args.plot}")
    if args.json:
        write_json(args.json, result)
        print(f"metrics: {args.json}")


def _ff_line(name: str, m: dict) -> str:
    """One line of force-field MAEs."""
    line = f"{name:10s} E {m['energy_mae_meV_per_atom']:.2f} meV/atom"
    line += f"   F {m['force_mae_meV_per_A']:.1f}"
    if "force_mae_meV_per_A_std" in m:
        line += f" ± {m['force_mae_meV_per_A_std']:.1f}"
    line += " meV/Å"
    if "stress_mae_GPa" in m:
        line += f"   σ {m['stress_mae_GPa']:.3f} GPa"
    return line + "   (MAE)"


def _bec_model_cfg(args: argparse.Namespace) -> dict:
    cfg = {"channels": args.channels, "r_max": args.r_max, "n_layers": args.layers}
    cfg = {k: v for k, v in cfg.items() if v}
    if args.scalar_messages:
        cfg["vector_messages"] = False
    if args.shared_weights:
        cfg["element_linear"] = False
    if args.epsilon_head:
        cfg["epsilon_head"] = True
    return cfg


def _cmd_train_bec(args: argparse.Namespace) -> None:
    from bornfield.models.bec_train import BECTrainConfig, train_bec

    valid = None
    if args.valid:
        from bornfield.data import io

        valid = io.read(args.valid)
    over = {"max_epochs": args.epochs, "ema_decay": args.ema_decay, "batch_size": args.batch_size,
            "lr": args.lr, "valid_fraction": args.valid_fraction}  # fmt: skip
    cfg = BECTrainConfig(seed=args.seed, **{k: v for k, v in over.items() if v is not None})
    path = train_bec(_data(args.data), args.out, _bec_model_cfg(args), cfg, valid=valid,
                     allow_mixed_dft=args.allow_mixed_dft)  # fmt: skip
    print(f"model: {path}")


def _cmd_evaluate_bec(args: argparse.Namespace) -> None:
    from bornfield.analysis.bec_errors import evaluate_bec
    from bornfield.analysis.errors import write_json

    result = evaluate_bec(
        _data(args.data),
        model=args.model,
        folds=args.folds,
        learning_curve_sizes=args.learning_curve or [],
        model_cfg=_bec_model_cfg(args),
        epochs=args.epochs,
        seed=args.seed,
        out_dir=args.out,
        plot=args.plot,
        workers=args.workers,
        valid_fraction=args.valid_fraction,
        allow_mixed_dft=args.allow_mixed_dft,
    )
    for row in result.get("learning_curve", []):
        print(f"n_train {row['n_train']:4d}: Z* MAE {row['bec_mae_e']:.4f} e")
    if "model" in result:
        print(_bec_lines(result["model"]))
    for path, m in result.get("by_file", {}).items():
        print(path + "\n  " + _bec_lines(m).replace("\n", "\n  "))
    if args.json:
        write_json(args.json, result)
        print(f"metrics: {args.json}")


def _bec_lines(m: dict) -> str:
    """Z* MAEs (total and per element) and, where scored, ε∞ MAEs."""
    std = f" ± {m['bec_mae_e_std']:.4f}" if "bec_mae_e_std" in m else ""
    els = "  ".join(
        f"{mm.group(1)} {v:.4f}"
        for k, v in m.items()
        if (mm := re.fullmatch(r"bec_mae_([A-Z][a-z]?)_e", k))
    )
    out = f"Z* MAE {m['bec_mae_e']:.4f}{std} e, RMSE {m['bec_rmse_e']:.4f} e;  per element: {els}"
    if "eps_inf_mae" in m:
        std = f" ± {m['eps_inf_mae_std']:.4f}" if "eps_inf_mae_std" in m else ""
        out += f"\nε∞ MAE {m['eps_inf_mae']:.4f}{std}, RMSE {m['eps_inf_rmse']:.4f}"
    return out


def _cmd_scan(args: argparse.Namespace) -> None:
    from bornfield.analysis.bec_errors import scan, scan_plot
    from bornfield.data import io

    structure = io.read(args.structure)[0]
    amps = [float(x) for x in args.amplitudes.split(",")]
    dft = io.read(args.dft) if args.dft else None
    amps_arr, z, dft_pts = scan(args.model, structure, args.atom, args.direction, amps, dft)
    k = args.atom
    for a, zz in zip(amps_arr, z, strict=True):
        d = np.diag(zz[k])
        print(f"{a:+.3f} Å: Z*[{k}] diag ({d[0]:+.3f}, {d[1]:+.3f}, {d[2]:+.3f})")
    if args.plot:
        shown = [k] + [int(x) for x in args.show.split(",")] if args.show else [k]
        labels = [f"{structure[i].symbol}{i}" for i in shown]
        scan_plot(amps_arr, z, args.plot, shown, labels, dft=dft_pts,
                  title=f"{structure[k].symbol}{k} displaced along {args.direction}")  # fmt: skip
        print(f"plot: {args.plot}")


def _vector(text: str, what: str) -> tuple[float, float, float]:
    try:
        v = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise BornfieldError(
            f"{what} must be three comma-separated numbers, got {text!r}"
        ) from None
    if len(v) != 3 or not all(np.isfinite(v)):
        raise BornfieldError(f"{what} must be three finite numbers, got {text!r}")
    return v  # type: ignore[return-value]


def _cmd_md(args: argparse.Namespace) -> None:
    from bornfield.md.run import MDConfig, run_md
    from bornfield.models.force_field import check_elements, load_calculator

    atoms = _load_structure(args.structure, args.supercell, check=True)
    field = _vector(args.field, "--field") if args.field else (0.0, 0.0, 0.0)
    ramp = None
    if args.ramp:
        try:
            ramp = tuple(float(x) for x in args.ramp.split(":"))
            assert len(ramp) == 3
        except (ValueError, AssertionError):
            raise BornfieldError(f"--ramp must be T0:T1:K_per_ps, got {args.ramp!r}") from None
    ff = load_calculator(args.ff, device=args.device, compile=args.compile)
    check_elements(ff, atoms, str(args.structure))
    calc = ff
    if args.bec:
        from bornfield.calculators.field_calculator import FieldCalculator
        from bornfield.models.bec import load_model

        calc = FieldCalculator(ff, load_model(args.bec, device=args.device), field,
                               bec_interval=args.bec_interval,
                               bec_extrapolate=args.bec_extrapolate)  # fmt: skip
    elif any(field):
        raise BornfieldError("a field needs a Born-charge model: add --bec MODEL")
    cfg = MDConfig(
        temperature=args.temperature,
        ramp=ramp,
        ensemble=args.ensemble,
        timestep=args.timestep,
        steps=args.steps,
        pressure=args.pressure,
        seed=args.seed,
        log_interval=args.log_interval,
        traj_interval=args.traj_interval,
        checkpoint_interval=args.checkpoint_interval,
        friction=args.friction,
        taut=args.taut,
        taup=args.taup,
    )
    print(f"{len(atoms)} atoms, {cfg.ensemble}, field {field} V/Å -> {args.out}")
    summary = run_md(atoms, calc, cfg, args.out)
    print(f"{summary['steps_done']} steps, {summary['ms_per_step']:.1f} ms/step, "
          f"{summary['ns_per_day']:.3f} ns/day")  # fmt: skip


def _load_structure(spec: str, supercell: str | None, check: bool = False):
    from bornfield.label.generators import named_structure

    atoms = named_structure(spec, check=check)
    if supercell:
        try:
            atoms = atoms.repeat([int(x) for x in supercell.split("x")])
        except ValueError:
            raise BornfieldError(f"--supercell must look like 2x2x2, got {supercell!r}") from None
    return atoms


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise BornfieldError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _cmd_dielectric_static(args: argparse.Namespace) -> None:
    from bornfield.analysis import dielectric as D
    from bornfield.analysis.errors import write_json
    from bornfield.calculators.field_calculator import FieldCalculator
    from bornfield.models.bec import load_model, predict_bec, predict_epsilon
    from bornfield.models.force_field import check_elements, load_calculator
    from bornfield.report.figures import fig3_polarization

    atoms = _load_structure(args.structure, args.supercell)
    ff = load_calculator(args.ff, dtype="float64")
    check_elements(ff, atoms, args.structure)
    model = load_model(args.bec)
    eps_inf = None if args.eps_inf is None else np.eye(3) * args.eps_inf
    if eps_inf is None and model.cfg.epsilon_head:
        eps_inf = predict_epsilon(model, atoms, args.structure)
        print("ε∞ from the Born-charge model's head:\n", np.round(eps_inf, 3))
    calc = FieldCalculator(ff, model)
    res = D.static_response(atoms, calc, _floats(args.fields, "--fields"),
                            args.directions.split(","), fmax=args.fmax,
                            relax_cell=args.relax_cell, eps_inf=eps_inf,
                            relax_cell_at_zero=args.relax_cell_at_zero,
                            rattle=args.rattle)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "static.json", res)
    fig3_polarization(res, out / "fig3_polarization.png")
    print("static ε_ion:\n", np.round(res["epsilon_ionic"], 3))
    if args.phonons:
        relaxed = D.relaxed_structure(atoms, res)
        ph = D.phonon_epsilon(relaxed, ff, predict_bec(model, relaxed), eps_inf=eps_inf)
        write_json(out / "phonon.json", ph)
        print("phonon ε_ion:\n", np.round(ph["epsilon_ionic"], 3))
        for kind in ("unstable", "soft"):
            if ph[f"{kind}_modes_w2"]:
                print(f"{kind} Γ modes left out of the sum (ω², eV/Å²/amu):",
                      np.round(ph[f"{kind}_modes_w2"], 5).tolist())  # fmt: skip
    print(f"-> {out}")


def _cmd_dielectric_md(args: argparse.Namespace) -> None:
    import json

    from bornfield.analysis import dielectric as D
    from bornfield.analysis.errors import write_json

    def field_of(run: str) -> np.ndarray:
        cfg = Path(run) / "config.json"
        if not cfg.exists():
            raise BornfieldError(f"{cfg}: not an MD run directory")
        f = json.loads(cfg.read_text()).get("field_V_per_A")
        if f is None:
            raise BornfieldError(f"{cfg}: run has no field recorded (not a field-MD run)")
        return np.asarray(f)

    eps_inf = None if args.eps_inf is None else np.eye(3) * args.eps_inf
    zero = D.read_observables(args.zero, args.discard)
    runs = []
    if args.runs:

        def reference_of(run: str) -> str | None:
            cfg = Path(run) / "config.json"
            return json.loads(cfg.read_text()).get("reference_sha256") if cfg.exists() else None

        ref0 = reference_of(args.zero)
        for r in args.runs:
            if reference_of(r) != ref0:
                raise BornfieldError(
                    f"{r}: measures P from another reference structure than {args.zero}; "
                    "start the zero-field and field runs from one structure"
                )
        runs = [(field_of(r), D.read_observables(r, args.discard)) for r in args.runs]
    res = D.md_epsilon(zero, runs, eps_inf=eps_inf)
    if runs:
        print("finite-field ε_ion:\n", np.round(res["finite_field"]["epsilon_ionic"], 3))
        print("±", np.round(res["finite_field"]["epsilon_ionic_error"], 3))
    print("fluctuation ε_ion:\n", np.round(res["fluctuation"]["epsilon_ionic"], 3))
    print("±", np.round(res["fluctuation"]["epsilon_ionic_error"], 3))
    reasons = res["assessment"]["reasons"]
    print("NOT converged: " + "; ".join(reasons) if reasons else "converged")
    if args.json:
        write_json(args.json, res)


def _cmd_phases(args: argparse.Namespace) -> None:
    import json
    from dataclasses import fields

    from bornfield.analysis.errors import write_json
    from bornfield.analysis.phases import MIN_POINTS
    from bornfield.md.run import MDConfig
    from bornfield.pipeline import analyze_heating_run
    from bornfield.report.figures import fig4_phases

    run = Path(args.run)
    if not (run / "trajectory.xyz").exists():
        raise BornfieldError(f"{run}: no trajectory.xyz (run `bornfield md` with a ramp first)")
    meta = json.loads((run / "config.json").read_text())
    # the MD settings only, not what the calculator added (field, reference, Z* schedule)
    meta = {k: v for k, v in meta.items() if k in {f.name for f in fields(MDConfig)}}
    if meta.get("ramp"):
        meta["ramp"] = tuple(meta["ramp"])
    res = analyze_heating_run(run, MDConfig(**meta), args.window_ps, args.order_window_ps,
                              b_site=args.b_site, x_site=args.x_site,
                              order_parameter=args.order_parameter)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "phases.json", res)
    fig4_phases(res, out / "fig4_phases.png")
    tc = res["transition"]
    if tc and tc["significant"]:
        print(f"Tc = {tc['Tc_K']:.0f} ± {tc['Tc_err_K']:.0f} K ({res['order_parameter']})")
    elif tc:  # the best kink, not a transition: too weak (p) or not an order parameter's shape
        print(
            f"no transition resolved ({res['order_parameter']}): best kink at {tc['Tc_K']:.0f} K,"
            f" p = {tc['p_value']:.2g}, vanishing shape: {tc['ordering']}"
        )
    else:
        print(f"no Tc fit: {len(res['order_values'])} order-parameter points of "
              f"{args.order_window_ps:g} ps ({MIN_POINTS} needed)")  # fmt: skip
    for g, a, b in res["space_group_sequence"].get("0.1", []):
        print(f"{g}: {a:.0f}-{b:.0f} K")
    print(f"-> {out}")


def _cmd_run(args: argparse.Namespace) -> None:
    from bornfield.config import load_config
    from bornfield.pipeline import estimate_cost, run_pipeline, with_out

    cfg = with_out(load_config(args.config, args.preset), args.out)
    est = estimate_cost(cfg)
    print(f"estimated MD cost: {est['md_steps']} steps of {est['atoms']} atoms, "
          f"~{est['estimated_hours']:.2g} h on {cfg.sweep.workers} workers")  # fmt: skip
    if args.estimate:
        return
    run_pipeline(cfg)


def _cmd_report(args: argparse.Namespace) -> None:
    import json

    from ase.io import read

    from bornfield.config import RunConfig, merge
    from bornfield.report import write_report

    out = Path(args.dir)
    if not (out / "results.json").exists():
        raise BornfieldError(f"{out}: no results.json (run `bornfield run` first)")
    data = json.loads((out / "config.json").read_text())
    base, outdir = data.pop("base_dir", ""), data.pop("out")
    cfg = merge(RunConfig(base_dir=base, out=outdir), data)
    results = json.loads((out / "results.json").read_text())
    relaxed_path = out / "static" / "relaxed.xyz"
    if relaxed_path.exists():
        relaxed = read(relaxed_path)
    else:
        from bornfield.pipeline import build_structure

        relaxed = build_structure(cfg)
    path = write_report(cfg, out, results, Path(results["models"]["ff"]),
                        Path(results["models"]["bec"]), relaxed)  # fmt: skip
    print(f"-> {path}")


def _add_mixed_dft_arg(q: argparse.ArgumentParser) -> None:
    q.add_argument(
        "--allow-mixed-dft", action="store_true",
        help="use files labelled with different functionals (by their provenance) as one set, "
        "e.g. PBEsol CaTiO3 with PBE BaTiO3; refused otherwise",
    )  # fmt: skip


def _add_evaluate_args(q: argparse.ArgumentParser) -> None:
    """Options shared by `evaluate ff` and `evaluate bec`."""
    q.add_argument(
        "--data", required=True, nargs="+", metavar="FILE",
        help="labelled frames; several files are scored as one set and file by file",
    )  # fmt: skip
    _add_mixed_dft_arg(q)
    q.add_argument("--model", help="model directory or file")
    q.add_argument("--folds", type=int, default=0, help="k-fold cross-validation (trains k models)")
    q.add_argument(
        "--workers",
        type=int,
        default=1,
        help="train the CV / learning-curve models in parallel: Dask processes, 1 thread each",
    )
    q.add_argument("--epochs", type=int)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", help="directory for the CV / learning-curve models and plots")
    q.add_argument("--plot", help="parity plot PNG")
    q.add_argument("--json", help="write every metric here")
    q.add_argument(
        "--learning-curve",
        type=_int_list,
        help="training-set sizes, e.g. 10,20,40: nested sets, one fixed 20%% test split",
    )


def _add_bec_arch_args(q: argparse.ArgumentParser) -> None:
    """Architecture options of the Z* model (`train bec`, `evaluate bec`)."""
    q.add_argument("--channels", type=int)
    q.add_argument("--r-max", type=float)
    q.add_argument("--layers", type=int, help="interaction layers (default 3)")
    q.add_argument(
        "--scalar-messages",
        action="store_true",
        help="pass only scalars between layers (no neighbour vector/l=2 features)",
    )
    q.add_argument(
        "--shared-weights",
        action="store_true",
        help="one output mix and readout for all elements (default: per element)",
    )
    q.add_argument(
        "--epsilon-head",
        action="store_true",
        help="also learn the electronic dielectric tensor ε∞ (frames need epsilon_inf)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bornfield",
        description="Dielectric response of polar crystals from DFT-trained MACE and Z* models.",
    )
    p.add_argument("--version", action="version", version=f"bornfield {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect, validate, convert, split and sparsify datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    fmt = {"choices": ["extxyz", "abinit", "vasp-outcar", "phonopy-born"], "default": None}

    q = dsub.add_parser("inspect", help="summary of a labelled dataset")
    q.add_argument(
        "files", nargs="+", metavar="FILE", help="one or more files, summarized as one set"
    )
    q.add_argument("--format", **fmt)
    q.add_argument("--plot", metavar="PNG", help="write histograms of E, |F| and Z*")
    q.add_argument(
        "--frames",
        action="store_true",
        help="one row per frame: energy, force components, pressure, ASR, ε∞, DFT wall/CPU time",
    )
    q.set_defaults(func=_cmd_data_inspect)

    q = dsub.add_parser("validate", help="check shapes, ranges, cells and the acoustic sum rule")
    q.add_argument("file")
    q.add_argument("--format", **fmt)
    q.add_argument("--asr-tol", type=float, default=0.1, help="max |Σ_k Z*| in e (default 0.1)")
    q.add_argument("--require", help="comma-separated keys every frame must carry")
    q.add_argument("--fix-asr", action="store_true", help="subtract the per-structure mean Z*")
    q.add_argument("--out", help="write the (fixed) frames here")
    q.set_defaults(func=_cmd_data_validate)

    q = dsub.add_parser("convert", help="import ABINIT/VASP/phonopy output to extxyz")
    q.add_argument("input")
    q.add_argument("output")
    q.add_argument("--format", **fmt)
    q.add_argument("--structure", help="structure file (needed for phonopy BORN)")
    q.set_defaults(func=_cmd_data_convert)

    q = dsub.add_parser("split", help="seeded random or k-fold split")
    q.add_argument("file")
    q.add_argument("--out-dir", required=True)
    q.add_argument("--test-fraction", type=float, default=0.1)
    q.add_argument("--kfold", type=int, default=0)
    q.add_argument(
        "--test-ids", default="", help="test = frames whose label_id is in this list (e.g. 4,9)"
    )
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_cmd_data_split)

    q = dsub.add_parser("sparsify", help="pick N frames by farthest-point sampling")
    q.add_argument("file")
    q.add_argument("-n", type=int, required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--r-max", type=float, default=6.0, help="descriptor cutoff (Å)")
    q.add_argument("--reference", action="append", metavar="XYZ",
                   help="frames already in the dataset (repeatable): pick those farthest from "
                   "them too")  # fmt: skip
    q.set_defaults(func=_cmd_data_sparsify)

    q = sub.add_parser(
        "label",
        help="DFT labels with ABINIT (energy, forces, stress, Z*, eps_inf)",
        description="Label structures with ABINIT, resumably (rerun the same command after a "
        "kill). SIGTERM stops after checkpointing the run in flight (within one SCF or DFPT step).",
    )
    q.add_argument("structures", help="extxyz file of structures to label")
    q.add_argument("--out", required=True, help="labelled frames are appended here")
    q.add_argument("--preset", default="production", help="test | production")
    q.add_argument("--np", type=int, default=2, help="MPI ranks (default 2)")
    q.add_argument("--no-bec", action="store_true", help="energy, forces, stress only")
    q.add_argument(
        "--calculator", metavar="SPEC",
        help="label with a foundation model instead of ABINIT (chgnet | mace-mp:PATH): energy, "
        "forces, stress, for pretraining a force field (train ff --init); not DFT",
    )  # fmt: skip
    q.add_argument("--job-dir", help="job directory (default OUT.job)")
    q.add_argument("--ecut", type=float, help="override the preset's ecut (Ha)")
    q.add_argument("--nstep", type=int, help="override the preset's max SCF steps")
    q.add_argument(
        "--checkpoint-min", type=float,
        help="minutes between checkpoints of a run (default 120; SIGTERM checkpoints anyway)",
    )  # fmt: skip
    q.add_argument(
        "--kpt-length", type=float, help="override the k-mesh density: n_i = ceil(L / a_i), L in Å"
    )
    q.add_argument(
        "--scf-toldff", type=float, metavar="HA_PER_BOHR",
        help="with --no-bec, stop the SCF when forces change by less than this twice in a row "
        "(the production preset's default: see data/catio3/CARD.md); 0: on the density residual",
    )  # fmt: skip
    q.add_argument("--xc", choices=["pbesol", "pbe"], help="functional (default PBEsol)")
    q.add_argument(
        "--max", type=int, dest="max_structures", help="stop after N structures (rest stay queued)"
    )
    q.add_argument(
        "--ids", type=_int_list,
        help="label only these structure indices, in this order (e.g. 5,11 or 0-9)",
    )  # fmt: skip
    q.add_argument("--retry-failed", action="store_true",
                   help="label again the structures (of --ids) that failed earlier")  # fmt: skip
    q.add_argument("--status", action="store_true",
                   help="print the queue's state (done, running with its stages, failed, "
                   "pending, time left) and exit; runs nothing")  # fmt: skip
    q.set_defaults(func=_cmd_label)

    train = sub.add_parser("train", help="train models").add_subparsers(dest="what", required=True)
    q = train.add_parser("ff", help="MACE force field (mace-torch trainer)")
    q.add_argument("--data", required=True, nargs="+", metavar="FILE",
                   help="extxyz with energy, forces (stress); several files train as one set "
                   "(a union of materials, the paper's dataset D)")  # fmt: skip
    _add_mixed_dft_arg(q)
    q.add_argument("--out", required=True, help="model directory (resumes if it exists)")
    q.add_argument("--preset", default="fast", help="fast | accurate")
    q.add_argument("--epochs", type=int, help="override the preset's max epochs")
    q.add_argument(
        "--cohesive-energy",
        type=float,
        help="eV/atom between free atoms and the crystal in the E0s (default 6.3)",
    )
    q.add_argument("--valid", help="validation file (default: a seeded 10%% split)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument(
        "--dtype",
        choices=["float64", "float32"],
        help="training precision (default: the preset's, float64); the shipped files are "
        "float64 and float32 either way",
    )
    q.add_argument(
        "--frame-weights", choices=["atoms", "equal"],
        help="loss weight per frame: ∝ atom count (default) or equal; a frame's own "
        "config_weight multiplies either",
    )  # fmt: skip
    q.add_argument(
        "--init", metavar="MODEL",
        help="start from this model's weights and architecture (e.g. one pretrained on "
        "foundation-model labels: `bornfield label --calculator chgnet`)",
    )  # fmt: skip
    q.set_defaults(func=_cmd_train_ff)

    q = train.add_parser("bec", help="equivariant Born-charge model (e3nn)")
    q.add_argument("--data", required=True, nargs="+", metavar="FILE",
                   help="extxyz with born_charges; several files train as one set")  # fmt: skip
    _add_mixed_dft_arg(q)
    q.add_argument("--out", required=True, help="model directory (resumes if it exists)")
    q.add_argument("--epochs", type=int)
    q.add_argument("--ema-decay", type=float, help="weight averaging (default 0.99; 0: off)")
    q.add_argument("--batch-size", type=int, help="structures per step (default 1)")
    q.add_argument("--lr", type=float, help="initial learning rate (default 5e-3)")
    _add_bec_arch_args(q)
    q.add_argument("--valid", help="validation file (default: a seeded 10%% split)")
    q.add_argument(
        "--valid-fraction",
        type=float,
        help="validation share of --data (default 0.1; 0: none, select on the training error)",
    )
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_cmd_train_bec)

    ev = sub.add_parser("evaluate", help="evaluate models").add_subparsers(
        dest="what", required=True
    )
    q = ev.add_parser("ff", help="force-field errors, parity plot, k-fold CV, baselines")
    _add_evaluate_args(q)
    q.add_argument("--preset", default="fast")
    q.add_argument(
        "--baseline", action="append",
        help="chgnet | mace-mp:PATH | sevennet:PYTHON (a Python with sevenn; repeatable)",
    )  # fmt: skip
    q.add_argument("--shift-data", help="frames to fit baseline energy shifts on (train set)")
    q.add_argument(
        "--dtype", choices=["float64", "float32"], help="training precision of the CV models"
    )
    q.set_defaults(func=_cmd_evaluate_ff)

    q = ev.add_parser("bec", help="Z* errors, parity plot, k-fold CV, learning curve")
    _add_evaluate_args(q)
    q.add_argument("--valid-fraction", type=float, help="of each training (0: none)")
    _add_bec_arch_args(q)
    q.set_defaults(func=_cmd_evaluate_bec)

    q = sub.add_parser("scan", help="Z* along a single-atom displacement (Fig. 1)")
    q.add_argument("--model", required=True)
    q.add_argument("--structure", required=True)
    q.add_argument("--atom", type=int, required=True)
    q.add_argument("--direction", default="z", choices=["x", "y", "z"])
    q.add_argument("--amplitudes", default="-0.1,-0.075,-0.05,-0.025,0,0.025,0.05,0.075,0.1")
    q.add_argument("--dft", help="labelled DFT scan frames to draw as points")
    q.add_argument("--show", help="more atom indices to plot, comma-separated")
    q.add_argument("--plot", help="PNG")
    q.set_defaults(func=_cmd_scan)

    q = sub.add_parser("md", help="MD with a force field, optionally in an electric field")
    q.add_argument("--structure", required=True, help="structure file, or 'pnma' (CaTiO3)")
    q.add_argument("--supercell", help="e.g. 4x2x4 (Pnma: b is the long axis; 640 atoms)")
    q.add_argument("--ff", required=True, help="force-field model directory or file")
    q.add_argument("--bec", help="Born-charge model (needed for a field)")
    q.add_argument("--field", help="Ex,Ey,Ez in V/Å (5e7 V/m = 0.005 V/Å)")
    q.add_argument(
        "--bec-interval",
        type=int,
        default=15,
        help="recompute Z* every k steps (default 15, extrapolated between: ε within 0.2 %% of "
        "k = 1, bench/results/bec_interval_catio3_extrapolated.md)",
    )
    q.add_argument(
        "--bec-extrapolate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="between refreshes, extrapolate Z* linearly from the last two (default) or hold it",
    )
    q.add_argument("--temperature", type=float, default=300.0, help="K")
    q.add_argument("--ramp", help="T0:T1:K_per_ps (overrides --temperature)")
    q.add_argument("--ensemble", default="langevin", help="nve | langevin | bussi | nhc | npt")
    q.add_argument("--pressure", type=float, default=0.0, help="GPa (npt)")
    q.add_argument("--timestep", type=float, default=2.0, help="fs")
    q.add_argument("--steps", type=int, default=1000)
    q.add_argument("--friction", type=float, default=0.01, help="1/fs (langevin)")
    q.add_argument("--taut", type=float, default=100.0, help="fs")
    q.add_argument("--taup", type=float, default=1000.0, help="fs")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--log-interval", type=int, default=10)
    q.add_argument("--traj-interval", type=int, default=100)
    q.add_argument("--checkpoint-interval", type=int, default=100)
    q.add_argument("--device", default="cpu", help="cpu | cuda")
    q.add_argument(
        "--compile", action="store_true",
        help="torch.compile the force field: 2.2-2.6x faster NVT and NpT steps on 2 threads "
        "(Pnma CaTiO3) after ~8 s of compiling (~60 s the first time on a machine)",
    )  # fmt: skip
    q.add_argument("--out", required=True, help="run directory (the same command resumes)")
    q.set_defaults(func=_cmd_md)

    di = sub.add_parser("dielectric", help="ionic dielectric tensor (static, phonons, MD)")
    dsub2 = di.add_subparsers(dest="how", required=True)
    q = dsub2.add_parser("static", help="P(E) by relaxation in a field; Γ phonon mode sum")
    q.add_argument("--structure", required=True, help="file, 'pnma' or 'cubic:BaTiO3'")
    q.add_argument("--supercell")
    q.add_argument("--ff", required=True)
    q.add_argument("--bec", required=True)
    q.add_argument("--fields", default="0,2e7,4e7,6e7,8e7,1e8", help="V/m, comma-separated")
    q.add_argument("--directions", default="x,y,z,-x,-y,-z")
    q.add_argument("--fmax", type=float, default=1e-3, help="eV/Å")
    q.add_argument("--relax-cell", action="store_true", help="at every field (stress-free)")
    q.add_argument(
        "--relax-cell-at-zero",
        action="store_true",
        help="relax the cell at zero field only (zero-pressure start)",
    )
    q.add_argument(
        "--rattle",
        type=float,
        default=0.0,
        help="Å of seeded noise before the zero-field relaxation (leaves saddles)",
    )
    q.add_argument("--phonons", action="store_true", help="also the Γ mode sum (phonopy)")
    q.add_argument(
        "--eps-inf",
        type=float,
        help="electronic ε∞ to add (isotropic; default: the Z* model's ε∞ head, if it has one)",
    )
    q.add_argument("--out", required=True)
    q.set_defaults(func=_cmd_dielectric_static)
    q = dsub2.add_parser("md", help="ε from MD runs: finite field and zero-field fluctuations")
    q.add_argument("--zero", required=True, help="zero-field run directory")
    q.add_argument("runs", nargs="*", help="run directories with a field along one axis")
    q.add_argument("--discard", type=float, default=0.2, help="equilibration fraction")
    q.add_argument("--eps-inf", type=float)
    q.add_argument("--json")
    q.set_defaults(func=_cmd_dielectric_md)

    q = sub.add_parser("phases", help="lattice, tilts, space groups and Tc of a heating run")
    q.add_argument("--run", required=True, help="MD run directory (with a --ramp)")
    q.add_argument(
        "--window-ps", type=float, default=1.0,
        help="space groups and tilts of structures time-averaged over this time (ps)",
    )  # fmt: skip
    q.add_argument("--b-site", default="Ti")
    q.add_argument("--x-site", default="O")
    q.add_argument(
        "--order-parameter", choices=["tilt", "polar", "lattice"], default="tilt",
        help="tilt: octahedral rotation modes (CaTiO3); polar: B off-centring (BaTiO3)",
    )  # fmt: skip
    q.add_argument(
        "--order-window-ps", type=float, default=1.0,
        help="average the order parameter's components over this time before squaring (ps)",
    )  # fmt: skip
    q.add_argument("--out", required=True)
    q.set_defaults(func=_cmd_phases)

    q = sub.add_parser("run", help="the whole pipeline from one TOML config, with a report")
    q.add_argument("config", nargs="?", help="TOML file (default: the embedded demo)")
    q.add_argument("--preset", default="default", help="default | batio3 | paper")
    q.add_argument("--out", help="output directory (overrides the config)")
    q.add_argument("--estimate", action="store_true", help="print the estimated cost and stop")
    q.set_defaults(func=_cmd_run)

    q = sub.add_parser("report", help="redraw figures 1-5 and report.html of a run directory")
    q.add_argument("dir")
    q.set_defaults(func=_cmd_report)

    q = sub.add_parser("structures", help="generate structures to label")
    q.add_argument("kind", choices=["cubic", "pnma", "file"])
    q.add_argument("--out", required=True)
    q.add_argument("--formula", default="CaTiO3")
    q.add_argument("--a", type=float, help="cubic lattice constant (Å)")
    q.add_argument("--structure", help="with 'file': the structure to start from")
    q.add_argument("--supercell", help="e.g. 2x2x2")
    q.add_argument("-n", type=int, default=0, help="number of strained, rattled copies")
    q.add_argument("--rattle", type=float, default=0.05, help="displacement std (Å)")
    q.add_argument(
        "--strain",
        type=float,
        help="max strain component (default 0.02 for -n copies; with --md each snapshot gets "
        "its own strain only when given)",
    )
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--atom", help="single-atom scans: atom indices, comma-separated")
    q.add_argument("--direction", default="z")
    q.add_argument("--amplitudes", default="-0.1,-0.05,0.05,0.1", help="Å, comma-separated")
    q.add_argument(
        "--md",
        metavar="CALC",
        help="thermal snapshots from Langevin MD with chgnet, mace-mp:PATH or a .model file "
        "(-n per temperature)",
    )
    q.add_argument("--temperatures", default="300,900,1500", help="with --md: K, comma-separated")
    q.add_argument("--interval", type=int, default=20, help="with --md: steps between snapshots")
    q.add_argument("--equilibration", type=int, default=200, help="with --md: steps")
    q.add_argument(
        "--softmode",
        metavar="FF",
        help="displace along FF's softest z-polarized Γ mode by each of --amplitudes (Fig 2b)",
    )
    q.add_argument("--sparsify", type=int, help="with --md: keep N by farthest-point sampling")
    q.add_argument("--reference", action="append", metavar="XYZ",
                   help="with --sparsify: structures already in the dataset (repeatable); the "
                   "N kept are the farthest from them too")  # fmt: skip
    q.set_defaults(func=_cmd_structures)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (BornfieldError, OSError) as exc:
        if args.debug:
            raise
        msg = (
            str(exc)
            if isinstance(exc, BornfieldError)
            else f"{exc.filename or ''}: {exc.strerror or exc}"
        )
        print(f"bornfield: error: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("bornfield: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
