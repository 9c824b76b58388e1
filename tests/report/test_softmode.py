"""Fig 2b: the soft-mode energy profile, with DFT frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bornfield.analysis.dielectric import soft_mode_pattern
from bornfield.label.generators import cubic_perovskite, softmode_frames
from bornfield.models.force_field import load_calculator
from bornfield.report.figures import fig2b_softmode

FF = Path(__file__).resolve().parents[2] / "models/batio3/ff"


def test_softmode_is_polar_double_well_and_compares_with_dft(tmp_path):
    cell = cubic_perovskite("BaTiO3")
    calc = load_calculator(FF, dtype="float64")
    pattern = soft_mode_pattern(cell, calc)
    assert np.allclose(pattern[:, :2], 0) and np.isclose(np.abs(pattern).max(), 1)
    masses = cell.get_masses()
    assert abs(masses @ pattern[:, 2]) < 1e-6 * masses.sum()  # no centre-of-mass motion
    # "DFT" frames: the model's own energies, shifted and perturbed by a known amount
    dft = softmode_frames(cell, [0.0, 0.05, 0.1], pattern)
    for k, a in enumerate(dft):
        b = a.copy()
        b.calc = calc
        a.info["energy"] = b.get_potential_energy() + 100.0 + 0.002 * k
    out = fig2b_softmode(FF, cell, [-0.1, 0.0, 0.1], tmp_path / "f.png", dft)
    assert (tmp_path / "f.png").stat().st_size > 1000
    assert out["model_meV"][0] < 0 and out["model_meV"][2] < 0  # a double well
    np.testing.assert_allclose(out["mae_vs_dft_meV"], 1e3 * 0.002 * (0 + 1 + 2) / 3, rtol=1e-6)
