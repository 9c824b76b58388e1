"""Foundation baselines (CHGNet offline) and the per-element energy shift used to compare them."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from bornfield.analysis.errors import ff_metrics, fit_energy_shift
from bornfield.errors import BornfieldError
from bornfield.label.generators import cubic_perovskite
from bornfield.models.baselines import WorkerCalculator, load_baseline


def test_energy_shift_recovers_per_element_offsets():
    frames, preds = [], []
    mu = {"Ba": -1.5, "O": 0.7, "Ti": 2.0}
    for reps in [(1, 1, 1), (2, 1, 1), (2, 2, 1)]:
        for formula in ("BaTiO3", "CaTiO3"):
            a = cubic_perovskite(formula).repeat(reps)
            e_model = float(np.random.default_rng(len(a)).normal())
            a.info["energy"] = e_model + sum(mu.get(s, 0.3) for s in a.get_chemical_symbols())
            a.arrays["forces"] = np.zeros((len(a), 3))
            frames.append(a)
            preds.append({"energy": e_model, "forces": np.zeros((len(a), 3))})
    shift = fit_energy_shift(frames, preds)
    # only combinations fixed by the compositions are determined: Ba - Ca is one
    assert shift["Ba"] - shift["Ca"] == pytest.approx(mu["Ba"] - 0.3, abs=1e-9)
    assert ff_metrics(frames, preds, shift)["energy_mae_meV_per_atom"] < 1e-6


def test_chgnet_offline_and_bad_specs():
    a = cubic_perovskite("BaTiO3")
    a.rattle(0.05, seed=0)
    a.calc = load_baseline("chgnet")
    f = a.get_forces()
    assert f.shape == (5, 3) and np.isfinite(f).all() and np.abs(f.sum(axis=0)).max() < 1e-3
    # in a process whose torch default is float64 (as mace-torch's MACECalculator leaves it)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        b = a.copy()
        b.calc = load_baseline("chgnet")
        np.testing.assert_allclose(b.get_forces(), f, atol=1e-4)
        assert torch.get_default_dtype() == torch.float64  # left as it was
    finally:
        torch.set_default_dtype(old)
    with pytest.raises(BornfieldError, match="mace-mp needs a model file"):
        load_baseline("mace-mp")
    with pytest.raises(BornfieldError, match="cannot run beside mace-torch"):
        load_baseline("sevennet")
    with pytest.raises(BornfieldError, match="could not build sevenn.*No module named 'sevenn'"):
        load_baseline(f"sevennet:{sys.executable}")  # this environment cannot hold sevenn
    with pytest.raises(BornfieldError, match="/nonexistent/python: cannot start it"):
        load_baseline("sevennet:/nonexistent/python")
    with pytest.raises(BornfieldError, match="unknown baseline"):
        load_baseline("m3gnet")


def test_worker_calculator_equals_the_same_calculator_in_process():
    """A calculator built in another interpreter (here ASE's EMT, in a worker process of this
    Python) gives the same energy, forces and stress as in this process, structure after
    structure, and a worker that dies is a clear error."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    worker = WorkerCalculator(sys.executable, "ase.calculators.emt:EMT")
    for seed in range(2):
        a = bulk("Cu", cubic=True).repeat((2, 2, 1))
        a.rattle(0.05, seed=seed)
        b = a.copy()
        a.calc, b.calc = EMT(), worker
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-12)
        np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-12)
        np.testing.assert_allclose(b.get_stress(), a.get_stress(), atol=1e-12)
    worker._proc.kill()
    worker._proc.wait()
    b.rattle(0.01, seed=3)
    with pytest.raises(BornfieldError, match="the worker stopped"):
        b.get_potential_energy()
