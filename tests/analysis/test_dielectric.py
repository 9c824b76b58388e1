"""The three routes to the ionic dielectric tensor agree on an exactly harmonic crystal with
fixed, non-symmetric Born charges, where ε_ion = e²/(ε0 Ω) Z Φ⁺ Zᵀ is known in closed form."""

from dataclasses import replace

import numpy as np
import pytest
from helpers import HarmonicCrystal, analytic_epsilon_ionic, cubic_catio3, random_born_charges

from bornfield.analysis import dielectric as D
from bornfield.calculators.field_calculator import FieldCalculator
from bornfield.errors import BornfieldError
from bornfield.label.generators import perturbed
from bornfield.md.run import MDConfig, run_md
from bornfield.units import ELEMENTARY_CHARGE_C, EPSILON_0_SI, KB_EV


@pytest.fixture(scope="module")
def crystal():
    atoms = perturbed(cubic_catio3(), 1, rattle=0.05, strain=0.03, seed=3)[0]
    calc = HarmonicCrystal(atoms)
    z = random_born_charges(len(atoms))
    return atoms, calc, z, analytic_epsilon_ionic(atoms, calc.phi, z)


def test_phonon_mode_sum_equals_closed_form(crystal):
    atoms, calc, z, exact = crystal
    res = D.phonon_epsilon(atoms, calc, z)
    assert np.allclose(res["epsilon_ionic"], exact, rtol=1e-6, atol=1e-8)
    assert res["unstable_modes_w2"] == [] and res["soft_modes_w2"] == []
    # three acoustic modes near zero, the rest positive
    w = np.sort(np.abs(res["frequencies_THz"]))
    assert w[2] < 1e-3 < w[3]
    # in THz: √(1 eV/Å²/amu)/2π = 15.6333 THz, from Φ's own eigenvalues
    m = np.repeat(atoms.get_masses(), 3)
    w2 = np.linalg.eigvalsh(calc.phi / np.sqrt(np.outer(m, m)))
    assert np.allclose(w[3:], np.sort(np.sqrt(np.abs(w2)))[3:] * 15.6333, rtol=1e-4)


def test_soft_modes_are_listed_not_dropped_silently(crystal):
    """Springs 10⁴ times weaker put every optical mode below the acoustic tolerance (ω² ~ 1e-5
    eV/Å²/amu): none is summed, and all 12 are listed as soft, none as unstable."""
    atoms, _, z, _ = crystal
    res = D.phonon_epsilon(atoms, HarmonicCrystal(atoms, k_iso=2e-4, k_central=6e-4), z)
    assert len(res["soft_modes_w2"]) == 12 and res["unstable_modes_w2"] == []
    assert np.allclose(res["epsilon_ionic"], 0)


def test_static_relaxation_slope_equals_phonons(crystal):
    atoms, calc, z, exact = crystal
    fc = FieldCalculator(calc, z)
    res = D.static_response(
        atoms, fc, fields_V_per_m=(0, 1e7, 2e7, 1e8), fmax=1e-6, log=lambda s: None
    )
    assert np.allclose(res["epsilon_ionic"], exact, rtol=1e-3, atol=1e-3)
    # P(E) is exactly linear here, and −E mirrors +E
    assert all(v is None for v in res["nonlinear_onset_V_per_m"].values())
    p = res["polarization_C_per_m2"]
    assert np.allclose(p["x"], -np.asarray(p["-x"]), atol=1e-8)
    assert np.allclose(res["epsilon"], np.eye(3) + np.asarray(res["epsilon_ionic"]))
    # "+z" is "z"; the columns of axes without a field are not measured (NaN), not zero
    one = D.static_response(atoms, fc, fields_V_per_m=(0, 1e7, 2e7), directions=("+z",),
                            fmax=1e-6, log=lambda s: None)  # fmt: skip
    eps = np.asarray(one["epsilon_ionic"])
    assert np.allclose(eps[:, 2], np.asarray(exact)[:, 2], rtol=1e-3, atol=1e-3)
    assert np.isnan(eps[:, :2]).all() and list(one["polarization_C_per_m2"]) == ["z"]


def test_linear_response_extrapolates_the_leading_nonlinearity():
    chi1, chi2, chi3 = np.array([3.0, -0.1, 0.2]), 0.7, -40.0
    e = np.array([0.05, 0.1])

    def pol(field):  # P(E) of an anharmonic response: χ1 E + χ2 E² + χ3 E³ per component
        return np.outer(field, chi1) + chi2 * field[:, None] ** 2 + chi3 * field[:, None] ** 3

    odd = (pol(e) - pol(-e)) / 2
    assert np.allclose(D.linear_response(e, odd), chi1, atol=1e-12)
    # the secant over the same fields is off by χ3 E², what the fit removes
    assert not np.allclose(odd[0] / e[0], chi1, atol=1e-2)
    # one sign only: the quadratic term is removed, the cubic one is left at O(E²)
    no_cubic = np.outer(e, chi1) + chi2 * e[:, None] ** 2
    assert np.allclose(D.linear_response(e, no_cubic, odd=False), chi1, atol=1e-12)
    assert np.allclose(D.linear_response(e[:1], odd[:1]), odd[0] / e[0])


def test_finite_field_and_fluctuation_md_agree_with_phonons(tmp_path):
    atoms = cubic_catio3().repeat(2)
    calc = HarmonicCrystal(atoms)
    z = np.tile(random_born_charges(5, seed=1), (8, 1, 1))
    exact = analytic_epsilon_ionic(atoms, calc.phi, z)
    cfg = MDConfig(temperature=100, ensemble="langevin", timestep=2.0, steps=4000, friction=0.02,
                   log_interval=5, traj_interval=10**6, checkpoint_interval=10**6)  # fmt: skip
    e = 0.02  # V/Å; independent seeds, so the errors are honest (a shared seed cancels noise)
    obs = {}
    for seed, (name, field) in enumerate(
        [("0", (0, 0, 0)), ("x", (e, 0, 0)), ("y", (0, e, 0)), ("z", (0, 0, e)), ("-x", (-e, 0, 0))]
    ):
        run_md(atoms, FieldCalculator(calc, z, field=field), replace(cfg, seed=seed),
               tmp_path / name, log=lambda s: None)  # fmt: skip
        obs[name] = (np.asarray(field, float), D.read_observables(tmp_path / name))
    ff = D.finite_field_epsilon(obs["0"][1], [obs[k] for k in ("x", "y", "z", "-x")])
    fl = D.fluctuation_epsilon(obs["0"][1])
    for res in (ff, fl):
        dev = np.abs(np.asarray(res["epsilon_ionic"]) - exact)
        err = np.asarray(res["epsilon_ionic_error"])
        assert (err > 0).all() and (err < 0.2 * np.abs(exact).max()).all()
        assert (np.diag(dev) < 3 * np.diag(err)).all(), (res["epsilon_ionic"], exact)
        assert (dev < 4 * err).all()
    assert ff["linear"]["x"] is True and ff["linear"]["y"] is None
    cmp = D.compare(ff, fl, n_sigma=4)
    assert np.all(cmp["agree"])
    verdict = D.assess_epsilon({"finite_field": ff, "fluctuation": fl, "agreement": cmp})
    assert verdict["converged"], verdict["reasons"]
    # a run with the field along two axes at once is refused
    with pytest.raises(BornfieldError, match="one axis"):
        D.finite_field_epsilon(obs["0"][1], [(np.array([e, e, 0]), obs["x"][1])])


def test_direction_vector():
    assert np.allclose(D.direction_vector("-y"), [0, -1, 0])
    with pytest.raises(BornfieldError, match="±x"):
        D.direction_vector("w")


def test_observables_without_polarization_are_refused(tmp_path):
    cols = ["step", "Px_C_m2", "Py_C_m2", "Pz_C_m2"]
    rows = "\n".join(f"{i},nan,nan,nan" for i in range(20))
    (tmp_path / "observables.csv").write_text(",".join(cols) + "\n" + rows + "\n")
    with pytest.raises(BornfieldError, match="observables.csv: no finite polarization"):
        D.read_observables(tmp_path)


def _synthetic_obs(p: np.ndarray) -> dict[str, np.ndarray]:
    """Observables of a polarization series at 100 K in 1000 Å³."""
    n = len(p)
    obs = {f"P{a}_C_m2": p[:, i] for i, a in enumerate("xyz")}
    return obs | {"step": np.arange(n), "target_K": np.full(n, 100.0), "volume_A3": np.full(n, 1e3)}


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_negative_epsilon_is_not_converged(sign):
    """White-noise P whose variance means ε_ion = 50 (fluctuation formula) and field runs that
    shift it by ε0·50·E: converged. A response against the field along z (what an unaveraged
    polarization switch gives) is flagged. A mean P away from the reference is reported."""
    rng = np.random.default_rng(0)
    n, eps, e = 4000, 50.0, 1e-3  # samples, ε_ion, field (V/Å)
    factor = 1e-27 / (EPSILON_0_SI * KB_EV * ELEMENTARY_CHARGE_C * 100.0)
    shift = np.array([0.0, 0.0, 0.02])  # C/m², the thermal state's P from the reference
    p0 = rng.normal(0, np.sqrt(eps / factor), (n, 3)) + shift
    runs = []
    for i in range(3):
        dp = np.eye(3)[i] * EPSILON_0_SI * eps * e * 1e10 * (sign if i == 2 else 1.0)
        runs.append((np.eye(3)[i] * e, _synthetic_obs(p0 + dp + rng.normal(0, 1e-3, (n, 3)))))
    entry = D.md_epsilon(_synthetic_obs(p0), runs)
    verdict = entry["assessment"]
    assert verdict["zero_field_P_shift_C_per_m2"] == pytest.approx(shift, abs=2e-3)
    ff = np.diag(entry["finite_field"]["epsilon_ionic"])
    assert ff == pytest.approx([eps, eps, sign * eps], rel=0.02)
    assert np.diag(entry["fluctuation"]["epsilon_ionic"]) == pytest.approx(eps, rel=0.1)
    if sign > 0:
        assert verdict["converged"], verdict["reasons"]
    else:
        assert not verdict["converged"]
        assert verdict["reasons"][0].startswith("ε_zz negative"), verdict["reasons"]
