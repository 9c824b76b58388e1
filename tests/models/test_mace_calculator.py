"""The lean MACE calculator gives mace-torch's MACECalculator results, computing less."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mace.calculators import MACECalculator

from bornfield.errors import BornfieldError
from bornfield.label.generators import cubic_perovskite
from bornfield.models.mace_calculator import MACEForceField

MODEL = Path(__file__).resolve().parents[2] / "models/batio3/ff/ff.model"


def _cell():
    a = cubic_perovskite("BaTiO3").repeat((2, 2, 1))
    a.rattle(0.05, seed=1)
    strain = np.array([[0.01, 0.005, 0], [0.005, -0.01, 0.002], [0, 0.002, 0.003]])
    a.set_cell(a.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
    return a


def test_equals_mace_calculator():
    ref, lean = _cell(), _cell()
    ref.calc = MACECalculator(model_paths=str(MODEL), device="cpu", default_dtype="float64")
    lean.calc = MACEForceField(MODEL, dtype="float64")
    f = lean.get_forces()
    assert not lean.calc.stress_wanted and "stress" not in lean.calc.results  # NVT: no virial
    np.testing.assert_allclose(lean.get_potential_energy(), ref.get_potential_energy(), atol=1e-9)
    np.testing.assert_allclose(f, ref.get_forces(), atol=1e-9)
    np.testing.assert_allclose(lean.get_stress(), ref.get_stress(), atol=1e-10)
    assert np.abs(ref.get_stress()).max() > 1e-4  # the strained cell is stressed
    lean.positions[0, 2] += 0.01
    lean.get_forces()
    assert "stress" in lean.calc.results  # once asked for, computed in the same pass


def test_unknown_element():
    a = cubic_perovskite("CaTiO3")
    a.calc = MACEForceField(MODEL)
    with pytest.raises(BornfieldError, match="Ca unknown"):
        a.get_forces()
