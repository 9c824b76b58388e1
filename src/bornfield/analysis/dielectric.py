"""Ionic dielectric tensor three ways: static relaxation in a field, phonon mode sum, MD.

Conventions: the field E in V/Å, polarization P in C/m², Z[atom, α, β] (α field, β force).
The ionic (lattice) part is ε_ion,αβ = ∂P_α/∂E_β / ε0; the total static tensor is
ε = ε∞ + ε_ion, with ε∞ = 1 (the bare lattice response) when the electronic part is unknown.

- :func:`static_response`: relax positions (and optionally the cell) at increasing fields along
  ±x, ±y, ±z; P(E) curves, ε_ion from the linear slope, and where nonlinearity sets in (Fig 3).
- :func:`phonon_epsilon`: Γ force constants from the force field through phonopy, Z* from the
  model, ε_ion,αβ = e²/(ε0 Ω) Σ_m Z̃_mα Z̃_mβ / ω_m² over the optical modes (zero-T points of Fig 5).
- :func:`finite_field_epsilon`: ε_αβ = ε∞ + (⟨P_α⟩_E − ⟨P_α⟩_0)/(ε0 E_β) from MD runs with and
  without field, block-averaged errors and a linearity check over ±E and field strengths (Fig 5).
- :func:`fluctuation_epsilon`: ε = ε∞ + Ω/(ε0 kB T) (⟨PP⟩ − ⟨P⟩⟨P⟩) from a zero-field run.
- :func:`md_epsilon`: both MD routes at one temperature and :func:`assess_epsilon`'s verdict
  (converged or not, and why).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from bornfield.analysis.stats import block_average, block_bootstrap, block_size
from bornfield.errors import BornfieldError
from bornfield.units import ELEMENTARY_CHARGE_C, EPSILON_0_SI, KB_EV

#: e²/(ε0 Å) in eV: turns Σ Z̃²/ω² (e²·Å²/eV, ω² in eV/Å²/amu) / Ω (Å³) into ε (dimensionless)
MODE_SUM_FACTOR = ELEMENTARY_CHARGE_C / (EPSILON_0_SI * 1e-10)
#: 1 V/Å in V/m
V_PER_A = 1e10
AXES = "xyz"


def _eps_total(eps_ion: np.ndarray, eps_inf: np.ndarray | None) -> np.ndarray:
    base = np.eye(3) if eps_inf is None else np.asarray(eps_inf, dtype=float)
    return base + eps_ion


def direction_vector(direction: str) -> np.ndarray:
    """'x', '-y', ... → unit vector."""
    sign = -1.0 if direction.startswith("-") else 1.0
    axis = direction.lstrip("+-")
    if axis not in AXES or len(axis) != 1:
        raise BornfieldError(f"field direction must be one of ±x, ±y, ±z, got {direction!r}")
    v = np.zeros(3)
    v[AXES.index(axis)] = sign
    return v


# --------------------------------------------------------------------------------------------
# static response


def relaxed_structure(atoms: Atoms, static: dict) -> Atoms:
    """The zero-field minimum that :func:`static_response` relaxed ``atoms`` to."""
    out = atoms.copy()
    out.calc = None
    out.set_cell(static["relaxed_cell_A"], scale_atoms=False)
    out.set_scaled_positions(static["relaxed_scaled_positions"])
    return out


def relax(atoms: Atoms, fmax: float = 1e-3, steps: int = 1000, relax_cell: bool = False) -> int:
    """Relax ``atoms`` (calculator attached) in place with BFGS; returns the steps taken."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    target = FrechetCellFilter(atoms) if relax_cell else atoms
    opt = BFGS(target, logfile=None)
    with warnings.catch_warnings():
        # scipy's logm (in the cell filter) warns about 1e-13 round-off at every step
        warnings.filterwarnings("ignore", message="logm result may be inaccurate")
        converged = opt.run(fmax=fmax, steps=steps)
    if not converged:
        raise BornfieldError(f"relaxation did not reach fmax={fmax} eV/Å in {steps} steps")
    return opt.get_number_of_steps()


def _sign(direction: str) -> float:
    return -1.0 if direction.startswith("-") else 1.0


def linear_response(fields: np.ndarray, pol: np.ndarray, odd: bool = True) -> np.ndarray:
    """dP/dE at E = 0 from P at a few small fields (rows of ``pol``, one per field).

    P/E is fitted as a + b E² when ``pol`` is the odd part (P(E) − P(−E))/2, else as a + b E,
    and a is returned: the leading nonlinearity extrapolated away, which the shipped CaTiO3
    model needs (its P/E along y falls from 1168 to 980 between 2.5e6 and 5e6 V/m; the fit
    gives 1231, its Γ mode sum 1229). One field: the secant P/E.
    """
    e = np.asarray(fields, dtype=float)
    r = np.asarray(pol, dtype=float) / e[:, None]
    if len(e) < 2:
        return r[0]
    x = e / e.max()  # scaled, for a well-conditioned fit
    coef, *_ = np.linalg.lstsq(np.stack([np.ones_like(x), x**2 if odd else x], 1), r, rcond=None)
    return coef[0]


def static_response(
    atoms: Atoms,
    calc,
    fields_V_per_m: Sequence[float] = (0.0, 2e7, 4e7, 6e7, 8e7, 1e8),
    directions: Sequence[str] = ("x", "y", "z", "-x", "-y", "-z"),
    fmax: float = 1e-3,
    relax_cell: bool = False,
    eps_inf: np.ndarray | None = None,
    linear_fields: int = 2,
    relax_cell_at_zero: bool = False,
    nonlinear_tolerance: float = 0.05,
    rattle: float = 0.0,
    log: Callable[[str], None] = print,
) -> dict:
    """P(E) by relaxation in a field; ε_ion from the ``linear_fields`` smallest nonzero fields
    along +x, +y, +z (averaged with −x, −y, −z where given; columns of field axes not given are
    NaN), their leading nonlinearity extrapolated away (:func:`linear_response`).

    ``calc`` is a :class:`~bornfield.calculators.FieldCalculator`; the zero-field relaxed
    structure is its polarization reference, so P(0) = 0. ``rattle`` (Å, seeded) displaces
    the atoms before that relaxation so that it leaves a saddle point such as cubic BaTiO3,
    whose unstable polar modes would otherwise make the response diverge.
    ``relax_cell_at_zero`` relaxes the cell at zero field only (a zero-pressure start), the
    field steps then being clamped-cell like the phonon route; ``relax_cell`` relaxes it at
    every field (the stress-free response, which adds the piezoelectric part). Returns a dict.
    """
    fields = np.sort(np.asarray(fields_V_per_m, dtype=float))
    if len(fields) == 0 or fields[0] < 0 or not np.isfinite(fields).all():
        raise BornfieldError("fields must be magnitudes ≥ 0 V/m (the directions carry the sign)")
    if len(fields[fields > 0]) < linear_fields:
        raise BornfieldError(f"need at least {linear_fields} nonzero fields for the linear slope")
    if fields[0] != 0.0:
        fields = np.concatenate([[0.0], fields])
    base = atoms.copy()
    if rattle > 0:
        base.positions += np.random.default_rng(0).normal(0, rattle, base.positions.shape)
    base.calc = calc
    calc.set_field(np.zeros(3))
    calc.ref_scaled = None
    n0 = relax(base, fmax, relax_cell=relax_cell or relax_cell_at_zero)
    calc.set_reference(base)
    log(f"zero-field relaxation: {n0} steps")
    curves: dict[str, list[list[float]]] = {}
    directions = [d.lstrip("+") for d in directions]  # "+x" is "x"
    for d in directions:
        vec = direction_vector(d)
        a = base.copy()
        a.calc = calc
        pol = []
        for e in fields:
            calc.set_field(vec * e / V_PER_A)
            relax(a, fmax, relax_cell=relax_cell)
            pol.append(calc.get_property("polarization", a).tolist())
        curves[d] = pol
        log(f"E along {d}: P at {fields[-1]:.3g} V/m = {np.round(pol[-1], 5)} C/m²")
    calc.set_field(np.zeros(3))
    lin = slice(1, 1 + linear_fields)
    slope = np.full((3, 3), np.nan)
    onset: dict[str, float | None] = {}
    for b, axis in enumerate(AXES):
        given = [d for d in (axis, "-" + axis) if d in curves]
        if given:
            p = np.mean([_sign(d) * np.asarray(curves[d])[lin] for d in given], axis=0)
            slope[:, b] = linear_response(fields[lin], p, odd=len(given) == 2)
    for d, p in curves.items():
        b = AXES.index(d.lstrip("+-"))
        lin_p = _sign(d) * slope[b, b] * fields
        dev = np.abs(np.asarray(p)[:, b] - lin_p) / np.maximum(np.abs(lin_p), 1e-30)
        bad = [f for f, x in zip(fields[1:], dev[1:], strict=True) if x > nonlinear_tolerance]
        onset[d] = float(bad[0]) if bad else None
    eps_ion = slope / EPSILON_0_SI
    return {
        "fields_V_per_m": fields.tolist(),
        "polarization_C_per_m2": curves,
        "epsilon_ionic": eps_ion.tolist(),
        "epsilon": _eps_total(eps_ion, eps_inf).tolist(),
        "eps_inf": None if eps_inf is None else np.asarray(eps_inf).tolist(),
        "linear_fit_fields_V_per_m": fields[lin].tolist(),
        "nonlinear_onset_V_per_m": onset,
        "nonlinear_tolerance": nonlinear_tolerance,
        "relax_cell": relax_cell,
        "relax_cell_at_zero": relax_cell_at_zero or relax_cell,
        "fmax_eV_per_A": fmax,
        "structure": base.get_chemical_formula(),
        "relaxed_cell_A": base.cell[:].tolist(),
        "relaxed_scaled_positions": calc.ref_scaled.tolist(),
        "volume_A3": base.get_volume(),
    }


# --------------------------------------------------------------------------------------------
# phonons


def gamma_force_constants(atoms: Atoms, ff, displacement: float = 0.01):
    """Γ-point phonopy object with force constants from ``ff`` (finite displacements in the cell).

    Force constants from the unit cell alone are the Γ-point sums over periodic images, which is
    all the Γ mode sum needs. Translational invariance is imposed by phonopy's symmetrization.
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    cell = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell[:],
        scaled_positions=atoms.get_scaled_positions(),
        masses=atoms.get_masses(),
    )
    ph = Phonopy(cell, supercell_matrix=np.eye(3, dtype=int), primitive_matrix=np.eye(3))
    ph.generate_displacements(distance=displacement, is_plusminus=True)
    forces = []
    for sc in ph.supercells_with_displacements:
        a = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        a.calc = ff
        forces.append(a.get_forces().copy())
    ph.forces = np.asarray(forces)
    ph.produce_force_constants()
    ph.symmetrize_force_constants()
    return ph


def phonon_epsilon(
    atoms: Atoms,
    ff,
    born_charges: np.ndarray,
    displacement: float = 0.01,
    eps_inf: np.ndarray | None = None,
    acoustic_tolerance: float = 1e-3,
) -> dict:
    """Zero-T ionic ε from the Γ modes: ε_ion = e²/(ε0 Ω) Σ_m Z̃_m Z̃_mᵀ / ω_m².

    Z̃_m,α = Σ_κβ Z_κ,αβ e_m,κβ / √M_κ is the mode effective charge. The three acoustic modes
    (the three smallest |ω²|) are left out of the sum, and so are unstable modes (ω² below
    −``acoustic_tolerance`` eV/Å²/amu) and soft ones (other modes with |ω²| within it, below
    0.49 THz, whose 1/ω² cannot be told from a division by zero); both are listed in the
    result, as ``unstable_modes_w2`` and ``soft_modes_w2``.
    """
    z = np.asarray(born_charges, dtype=float)
    if z.shape != (len(atoms), 3, 3):
        raise BornfieldError(f"Born charges of shape {z.shape} for {len(atoms)} atoms")
    ph = gamma_force_constants(atoms, ff, displacement)
    dm = _gamma_dynamical_matrix(ph)  # eV/Å²/amu
    w2, vecs = np.linalg.eigh(0.5 * (dm + dm.conj().T).real)
    masses = atoms.get_masses()
    # mode effective charges: (3N modes, 3)
    zt = np.einsum(
        "kab,kbm->ma", z, (vecs / np.sqrt(np.repeat(masses, 3))[:, None]).reshape(len(atoms), 3, -1)
    )
    acoustic = np.argsort(np.abs(w2))[:3]
    use = np.ones(len(w2), bool)
    use[acoustic] = False
    unstable = [float(x) for i, x in enumerate(w2) if use[i] and x < -acoustic_tolerance]
    soft = [float(x) for i, x in enumerate(w2) if use[i] and abs(x) <= acoustic_tolerance]
    use &= w2 > acoustic_tolerance
    contrib = (
        MODE_SUM_FACTOR
        / atoms.get_volume()
        * np.einsum("ma,mb->mab", zt[use], zt[use])
        / w2[use, None, None]
    )
    eps_ion = contrib.sum(0)
    thz = np.sign(w2) * np.sqrt(np.abs(w2)) * 1e10 * np.sqrt(1.602176634e-19 / 1.66053906660e-27)
    thz /= 2 * np.pi * 1e12
    return {
        "epsilon_ionic": eps_ion.tolist(),
        "epsilon": _eps_total(eps_ion, eps_inf).tolist(),
        "eps_inf": None if eps_inf is None else np.asarray(eps_inf).tolist(),
        "frequencies_THz": thz.tolist(),
        "mode_epsilon_trace": [float(np.trace(c)) for c in contrib],
        "mode_frequencies_THz": thz[use].tolist(),
        "unstable_modes_w2": unstable,
        "soft_modes_w2": soft,
        "displacement_A": displacement,
        "volume_A3": atoms.get_volume(),
    }


# --------------------------------------------------------------------------------------------
# molecular dynamics


def read_observables(path: str | Path, discard: float = 0.2) -> dict[str, np.ndarray]:
    """Columns of an ``observables.csv`` (from :func:`bornfield.md.run.run_md`), with the first
    ``discard`` fraction of rows dropped as equilibration."""
    path = Path(path)
    if path.is_dir():
        path = path / "observables.csv"
    if not path.exists():
        raise BornfieldError(f"{path}: no observables (run the MD first)")
    data = np.genfromtxt(path, delimiter=",", names=True)
    if data.size < 8:
        raise BornfieldError(f"{path}: only {data.size} rows, too few to average")
    start = int(discard * data.size)
    obs = {name: np.asarray(data[name][start:]) for name in data.dtype.names}
    if not all(np.isfinite(obs.get(f"P{a}_C_m2", [np.nan])).all() for a in AXES):
        raise BornfieldError(
            f"{path}: no finite polarization: the run had no Born-charge model (bornfield md --bec)"
        )
    return obs


def _blocks(x: np.ndarray) -> tuple[int, bool]:
    """Block length of 4 autocorrelation times, or len/4 when the run is shorter than 16 τ
    (then ``short`` is True and the errors are lower bounds)."""
    b = block_size(x)
    if len(x) // b >= 4:
        return b, False
    return max(1, len(x) // 4), True


def _pol(obs: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([obs["Px_C_m2"], obs["Py_C_m2"], obs["Pz_C_m2"]], axis=1)


def finite_field_epsilon(
    zero: dict[str, np.ndarray],
    runs: Sequence[tuple[np.ndarray, dict[str, np.ndarray]]],
    eps_inf: np.ndarray | None = None,
    agree_sigma: float = 3.0,
    paired: bool = False,
) -> dict:
    """ε from ⟨P⟩ with field (``runs``: (E vector in V/Å, observables)) and without (``zero``).

    Each run has E along one axis β and gives a column ε_ion[:, β] = ΔP/(ε0 E_β) with a block-
    averaging error (combined with the zero-field one). Several runs per axis (±E, two field
    strengths) are combined by inverse-variance weighting; ``linear`` says whether they agree
    within ``agree_sigma`` standard errors, which is the linearity check.

    ``paired``: runs that share the zero-field run's thermostat noise (same seed, same
    sampling steps) are averaged as the difference series P_E(t) − P_0(t), whose error is
    the right one for such correlated pairs (and much smaller when the response is linear).
    """
    b0, short0 = _blocks(_pol(zero))
    p0, s0, _ = block_average(_pol(zero), b0)
    per_axis: dict[int, list[dict]] = {0: [], 1: [], 2: []}
    for e_vec, obs in runs:
        e_vec = np.asarray(e_vec, dtype=float)
        nz = np.flatnonzero(e_vec)
        if len(nz) != 1:
            raise BornfieldError(f"finite-field runs need E along one axis, got {e_vec}")
        b = int(nz[0])
        e_si = e_vec[b] * V_PER_A
        same = len(obs["step"]) == len(zero["step"]) and np.array_equal(obs["step"], zero["step"])
        if paired and same:
            blk, short = _blocks(_pol(obs) - _pol(zero))
            dp, err_dp, _ = block_average(_pol(obs) - _pol(zero), blk)
        else:
            blk, short = _blocks(_pol(obs))
            short = short or short0
            p, s, _ = block_average(_pol(obs), blk)
            dp, err_dp = p - p0, np.sqrt(s**2 + s0**2)
        col = dp / (EPSILON_0_SI * e_si)
        err = err_dp / (EPSILON_0_SI * abs(e_si))
        per_axis[b].append(
            {
                "field_V_per_m": e_si,
                "column": col.tolist(),
                "error": err.tolist(),
                "block": blk,
                "short_run": short,  # shorter than 16 autocorrelation times: error is a bound
                "samples": len(obs["step"]),
                "paired": bool(paired and same),
            }
        )
    eps_ion = np.full((3, 3), np.nan)
    eps_err = np.full((3, 3), np.nan)
    linear: dict[str, bool | None] = {}
    for b, rows in per_axis.items():
        if not rows:
            continue
        cols, errs = np.array([r["column"] for r in rows]), np.array([r["error"] for r in rows])
        if not np.isfinite(errs).all():  # runs too short for block errors: plain mean, no error
            eps_ion[:, b] = cols.mean(0)
            linear[AXES[b]] = None
            continue
        w = 1.0 / np.maximum(errs, 1e-300) ** 2
        eps_ion[:, b] = (w * cols).sum(0) / w.sum(0)
        eps_err[:, b] = 1.0 / np.sqrt(w.sum(0))
        if len(rows) > 1:
            # a run's deviation from a weighted mean that includes it: variance σ_i² − σ_mean²
            var = np.maximum(errs[:, b] ** 2 - eps_err[b, b] ** 2, 1e-300)
            dev = np.abs(cols[:, b] - eps_ion[b, b]) / np.sqrt(var)
            linear[AXES[b]] = bool((dev < agree_sigma).all())
        else:
            linear[AXES[b]] = None
    return {
        "epsilon_ionic": eps_ion.tolist(),
        "epsilon_ionic_error": eps_err.tolist(),
        "epsilon": _eps_total(eps_ion, eps_inf).tolist(),
        "runs": {AXES[b]: rows for b, rows in per_axis.items() if rows},
        "linear": linear,
        "zero_field_P_C_per_m2": p0.tolist(),
        "zero_field_P_error_C_per_m2": s0.tolist(),
        "zero_field_block": b0,
    }


def fluctuation_epsilon(
    obs: dict[str, np.ndarray],
    temperature: float | None = None,
    eps_inf: np.ndarray | None = None,
    n_resamples: int = 200,
) -> dict:
    """ε = ε∞ + ⟨Ω⟩/(ε0 kB T) cov(P) from a zero-field run, with a block-bootstrap error.

    T defaults to the thermostat target (mean of ``target_K``). Valid for the tin-foil boundary
    conditions of periodic MD and for P that contains no free drift (Z* obeying the ASR).
    """
    pol = _pol(obs)
    t = float(np.mean(obs["target_K"])) if temperature is None else float(temperature)
    if t <= 0:
        raise BornfieldError("fluctuation formula needs T > 0")
    vol_m3 = float(np.mean(obs["volume_A3"])) * 1e-30
    factor = vol_m3 / (EPSILON_0_SI * KB_EV * t * ELEMENTARY_CHARGE_C)

    def cov(x: np.ndarray) -> np.ndarray:
        return np.cov(x.T, ddof=1)

    d = pol - pol.mean(0)
    blk, short = _blocks(np.einsum("ta,tb->tab", d, d).reshape(len(d), 9))  # PP correlation
    c, c_err = block_bootstrap(pol, cov, block=blk, n_resamples=n_resamples)
    eps_ion = factor * c
    return {
        "epsilon_ionic": eps_ion.tolist(),
        "epsilon_ionic_error": (factor * c_err).tolist(),
        "epsilon": _eps_total(eps_ion, eps_inf).tolist(),
        "temperature_K": t,
        "block": blk,
        "short_run": short,
        "samples": len(pol),
    }


def compare(a: dict, b: dict, n_sigma: float = 2.0) -> dict:
    """Where two ε estimates (each with ``epsilon_ionic_error``) agree within n_sigma."""
    ea, eb = np.asarray(a["epsilon_ionic"]), np.asarray(b["epsilon_ionic"])
    sa = np.asarray(a.get("epsilon_ionic_error", np.zeros((3, 3))))
    sb = np.asarray(b.get("epsilon_ionic_error", np.zeros((3, 3))))
    z = np.abs(ea - eb) / np.sqrt(sa**2 + sb**2 + 1e-300)
    return {"n_sigma": z.tolist(), "agree": (z < n_sigma).tolist(), "threshold": n_sigma}


def md_epsilon(
    zero: dict[str, np.ndarray],
    runs: Sequence[tuple[np.ndarray, dict[str, np.ndarray]]],
    eps_inf: np.ndarray | None = None,
) -> dict:
    """Both MD routes at one temperature, their agreement and :func:`assess_epsilon`'s verdict.

    ``runs`` share the zero-field run's seed and sampling steps (paired series)."""
    entry: dict = {"fluctuation": fluctuation_epsilon(zero, eps_inf=eps_inf)}
    if runs:
        entry["finite_field"] = finite_field_epsilon(zero, runs, eps_inf=eps_inf, paired=True)
        entry["agreement"] = compare(entry["finite_field"], entry["fluctuation"])
    entry["assessment"] = assess_epsilon(entry)
    return entry


def assess_epsilon(entry: dict, rel_error: float = 0.3, n_sigma: float = 3.0) -> dict:
    """Is the diagonal ε of one temperature converged? Returns the verdict and its reasons.

    A diagonal component fails when it is negative (an ionic response below zero is
    unphysical: the runs have not averaged out the thermal noise, or P switched between
    states), when its error is above ``rel_error`` of its value, when the runs are shorter than
    16 autocorrelation times (then errors are lower bounds), when the ±E runs disagree
    (nonlinear) or when finite-field and fluctuation values differ by more than ``n_sigma``.
    A mean zero-field P more than ``n_sigma`` errors from the reference structure's (P = 0)
    is reported, not failed: the thermal state has another polarization (a phase change or
    switching), so ε is the response around that state.

    Linearity: runs of one strength at ±E test only even orders in E, which vanish in a
    centrosymmetric state; several strengths test the cubic term. With one strength per axis
    (the default), only the agreement with the fluctuation route, the E → 0 response, shows
    whether the field is small enough.
    """
    ffe, fl = entry.get("finite_field"), entry["fluctuation"]
    main = ffe or fl  # the finite-field value is the one reported where it exists
    eps, err = np.asarray(main["epsilon_ionic"]), np.asarray(main["epsilon_ionic_error"])
    reasons: list[str] = []
    for a, ax in enumerate(AXES):
        if not np.isfinite(eps[a, a]):
            continue
        name = f"ε_{ax}{ax}"
        if eps[a, a] < 0:
            reasons.append(f"{name} negative ({eps[a, a]:.3g})")
        if not np.isfinite(err[a, a]):
            reasons.append(f"{name} has no error estimate (fewer than 4 blocks)")
        elif err[a, a] > rel_error * abs(eps[a, a]):
            reasons.append(f"{name} error {err[a, a]:.3g} above {rel_error:.0%} of its value")
        if ffe and ffe["linear"].get(ax) is False:
            reasons.append(f"{name}: the runs of different field strength or sign disagree")
        if "agreement" in entry and entry["agreement"]["n_sigma"][a][a] > n_sigma:
            z = entry["agreement"]["n_sigma"][a][a]
            reasons.append(f"{name}: finite field and fluctuations differ by {z:.1f} σ")
    short = fl.get("short_run") or any(
        r.get("short_run") for rows in (ffe or {}).get("runs", {}).values() for r in rows
    )
    if short:
        reasons.append("runs shorter than 16 autocorrelation times (errors are lower bounds)")
    shift = None
    if ffe and "zero_field_P_error_C_per_m2" in ffe:
        p0 = np.asarray(ffe["zero_field_P_C_per_m2"])
        s0 = np.asarray(ffe["zero_field_P_error_C_per_m2"])
        if np.all(np.isfinite(s0)) and np.any(np.abs(p0) > n_sigma * s0):
            shift = p0.tolist()
    return {"converged": not reasons, "reasons": reasons, "zero_field_P_shift_C_per_m2": shift}


def verdict_of(entry: dict) -> dict:
    """An entry's stored ``assessment``, or one made now (results written before it existed)."""
    return entry.get("assessment") or assess_epsilon(entry)


def _gamma_dynamical_matrix(ph) -> np.ndarray:
    """phonopy's dynamical matrix at Γ (3N×3N, eV/Å²/amu)."""
    return ph.run_qpoints([[0, 0, 0]], with_dynamical_matrices=True).dynamical_matrices[0]


def soft_mode_pattern(cell: Atoms, ff) -> np.ndarray:
    """Displacement pattern (N×3, largest component 1) of the softest z-polarized optical Γ mode
    of ``cell`` under ``ff`` (phonopy force constants), i.e. the polar soft mode."""
    ph = gamma_force_constants(cell, ff)
    dm = _gamma_dynamical_matrix(ph).real
    dzz = 0.5 * (dm[2::3, 2::3] + dm[2::3, 2::3].T)  # z displacements only (cubic: decoupled)
    w2, vecs = np.linalg.eigh(dzz)
    disp = vecs.T / np.sqrt(cell.get_masses())[None, :]
    for k in np.argsort(w2):
        d = disp[k]
        if np.ptp(d) > 0.1 * np.abs(d).max():  # not the rigid (acoustic) translation
            d = d - np.average(d, weights=cell.get_masses())
            pattern = np.zeros((len(cell), 3))
            pattern[:, 2] = d / np.abs(d).max()
            return pattern * np.sign(pattern[np.argmax(np.abs(d)), 2])
    raise ValueError("no optical z mode found")
