"""FieldCalculator (eqs. 1-2): forces and stress as derivatives of U, signs, units, polarization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import Springs

from bornfield.calculators import FieldCalculator
from bornfield.errors import BornfieldError
from bornfield.label.generators import cubic_perovskite
from bornfield.models.bec import predict_bec
from bornfield.models.bec_model import BECConfig, BECModel
from bornfield.units import E_PER_A2_TO_C_PER_M2


def _bec(noise: float = 0.3) -> BECModel:
    torch.manual_seed(1)
    m = BECModel(
        BECConfig(elements=("Ca", "O", "Ti"), channels=8), {"Ca": 2.6, "Ti": 7.0, "O": -3.2}
    )
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(noise)
    return m.double().eval()


def _setup(field=(0.01, -0.02, 0.03), noise=0.3, interval=10**9):
    ref = cubic_perovskite().repeat((2, 1, 1))
    atoms = ref.copy()
    atoms.rattle(0.05, seed=3)
    calc = FieldCalculator(
        Springs(ref, k=4.0), _bec(noise), field, reference=ref, bec_interval=interval
    )
    atoms.calc = calc
    return atoms, ref, calc


def test_forces_are_minus_gradient_of_eq2_energy():
    atoms, _, calc = _setup()
    f = atoms.get_forces()  # the first call fixes Z* (interval 1e9)
    h = 1e-5
    for k, c in [(0, 2), (1, 0), (6, 1)]:
        e = []
        for s in (+1, -1):
            b = atoms.copy()
            b.positions[k, c] += s * h
            b.calc = calc
            e.append(b.get_potential_energy())
        assert -(e[0] - e[1]) / (2 * h) == pytest.approx(f[k, c], abs=1e-7)


def test_stress_is_strain_derivative_of_eq2_energy():
    atoms, _, calc = _setup()
    sigma = atoms.get_stress(voigt=False)
    assert np.abs(sigma).max() > 1e-5
    h = 1e-6
    for i, j in [(0, 0), (2, 2), (0, 2)]:
        e = []
        for s in (+1, -1):
            eps = np.eye(3)
            eps[i, j] += s * h / 2
            eps[j, i] += s * h / 2
            b = atoms.copy()
            b.set_cell(atoms.cell[:] @ eps, scale_atoms=True)
            b.calc = calc
            e.append(b.get_potential_energy())
        fd = (e[0] - e[1]) / (2 * h) / atoms.get_volume()
        assert fd == pytest.approx(sigma[i, j], abs=1e-9)


def test_field_pushes_cations_up_and_anions_down():
    from ase.optimize import FIRE

    atoms, ref, calc = _setup(field=(0.0, 0.0, 0.01), noise=0.05)
    atoms.positions = ref.positions.copy()
    FIRE(atoms, logfile=None).run(fmax=1e-6, steps=500)
    u = atoms.positions - ref.positions
    sym = np.array(atoms.get_chemical_symbols())
    assert (u[sym != "O", 2] > 1e-4).all() and (u[sym == "O", 2] < -1e-5).all()
    # harmonic crystal: u = Zᵀ E / k exactly (Z fixed), and P = e/Ω Σ Z u
    z = atoms.calc.results["born_charges"]
    np.testing.assert_allclose(u, np.einsum("a,kab->kb", calc.field, z) / 4.0, atol=1e-6)
    p = atoms.calc.get_property("polarization", atoms)
    expected = np.einsum("kab,kb->a", z, u) / atoms.get_volume() * E_PER_A2_TO_C_PER_M2
    np.testing.assert_allclose(p, expected, rtol=1e-6)
    assert p[2] > 0


def test_reference_follows_the_cell():
    atoms, ref, calc = _setup()
    atoms.positions = ref.positions.copy()
    atoms.set_cell(atoms.cell[:] * 1.02, scale_atoms=True)
    assert np.abs(atoms.get_potential_energy()) < 1e-12  # no displacement, no field energy
    assert np.abs(atoms.calc.results["polarization"]).max() < 1e-12


def test_instantaneous_and_path_polarization():
    """Equal when Z* is constant along the path; differ at O(dZ/du u²) when it is refreshed."""
    for interval, small in ((10**9, True), (1, False)):
        atoms, ref, calc = _setup(noise=1.0, interval=interval)
        atoms.positions = ref.positions.copy()
        atoms.get_potential_energy()
        direction = np.random.default_rng(0).normal(size=atoms.positions.shape)
        for _ in range(20):
            atoms.positions += 0.02 * direction
            atoms.get_potential_energy()
        p, pp = calc.results["polarization"], calc.results["polarization_path"]
        if small:
            np.testing.assert_allclose(pp, p, atol=1e-10)
        else:
            assert np.abs(pp - p).max() > 1e-4


def test_extrapolated_born_charges():
    """Between refreshes along a straight path, held Z* err at first order in the step and
    extrapolated Z* at second order; both keep the acoustic sum rule and equal the model's at
    each refresh."""
    errors = {}
    for extrapolate in (False, True):
        for h in (0.002, 0.001):  # Å per step along a random direction
            atoms, ref, calc = _setup(noise=1.0, interval=5)
            calc.bec_extrapolate = extrapolate
            start = atoms.positions.copy()
            direction = np.random.default_rng(0).normal(size=atoms.positions.shape)
            err = []
            for step in range(16):
                atoms.positions = start + h * step * direction
                z = atoms.calc.get_property("born_charges", atoms)
                exact = predict_bec(calc.bec, atoms)
                assert np.abs(z.sum(axis=0)).max() < 1e-10  # Σ_k Z*_k = 0
                if step % 5 == 0:
                    np.testing.assert_allclose(z, exact, atol=1e-12)
                elif step > 5:  # two refreshes behind it
                    err.append(np.abs(z - exact).max())
            errors[extrapolate, h] = max(err)
    assert 1.6 < errors[False, 0.002] / errors[False, 0.001] < 2.5  # O(h)
    assert errors[True, 0.002] / errors[True, 0.001] > 3.2  # O(h²)
    assert errors[True, 0.001] < 0.5 * errors[False, 0.001]


def test_new_reference_drops_cached_results():
    atoms, ref, calc = _setup()
    e_old = atoms.get_potential_energy()
    calc.set_reference(atoms)  # no displacement from the current geometry: no field energy
    assert atoms.get_potential_energy() != e_old
    assert np.abs(calc.results["polarization"]).max() < 1e-12


def test_npt_evaluates_the_force_field_once_per_step():
    """After the first stress request every call brings stress along (MTK asks separately)."""
    atoms, ref, calc = _setup()
    calls = []
    ff_calculate = calc.ff.calculate
    calc.ff.calculate = lambda *a, **k: calls.append(1) or ff_calculate(*a, **k)
    atoms.get_forces()
    atoms.get_stress()  # the first request: one more evaluation at the same geometry
    n = len(calls)
    for _ in range(3):
        atoms.positions[0, 0] += 0.01
        atoms.get_forces()
        atoms.get_stress()
    assert len(calls) - n == 3


def test_bad_inputs():
    ref = cubic_perovskite()
    with pytest.raises(BornfieldError, match="field must be 3 finite numbers"):
        FieldCalculator(Springs(ref), _bec(), (0.0, float("nan"), 0.0))
    with pytest.raises(BornfieldError, match="1e8 V/m is 0.01 V/Å"):
        FieldCalculator(Springs(ref), _bec(), (0.0, 0.0, 5e7))  # a field in V/m
    with pytest.raises(BornfieldError, match="bec_interval"):
        FieldCalculator(Springs(ref), _bec(), (0, 0, 0), bec_interval=0)
    bto = cubic_perovskite("BaTiO3")
    bto.calc = FieldCalculator(Springs(bto), _bec(), (0, 0, 0.01))
    with pytest.raises(BornfieldError, match="Ba unknown to the Born-charge model"):
        bto.get_forces()
    with pytest.raises(BornfieldError, match=r"fixed Born charges must be N×3×3, got \(5, 3\)"):
        FieldCalculator(Springs(ref), np.zeros((5, 3)), (0, 0, 0.01))
    two = ref.repeat((2, 1, 1))
    two.calc = FieldCalculator(Springs(two), np.zeros((5, 3, 3)), (0, 0, 0.01))  # Z* for 5 atoms
    with pytest.raises(BornfieldError, match="5 fixed Born charges for 10 atoms"):
        two.get_forces()
    two.calc = FieldCalculator(Springs(two), _bec(), (0, 0, 0.01), reference=ref)  # 5-atom ref
    with pytest.raises(BornfieldError, match="reference structure and atoms differ in length"):
        two.get_forces()
