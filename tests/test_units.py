"""The unit constants, against literal SI values (CODATA 2018), not against each other."""

import pytest

from bornfield import units as U


def test_constants_in_si():
    assert U.E_PER_A2_TO_C_PER_M2 == pytest.approx(16.02176634, rel=1e-12)  # e/Å² → C/m²
    assert U.EV_PER_A3_TO_GPA == pytest.approx(160.21766, rel=1e-6)
    assert U.EPSILON_0_E_PER_VA == pytest.approx(0.0055263494, rel=1e-7)  # e/(V·Å)
    assert U.V_PER_M_TO_V_PER_A * 5e7 == pytest.approx(0.005)  # the paper's 5e7 V/m
    assert U.KB_EV == pytest.approx(8.617333e-5, rel=1e-6)
    assert U.HARTREE_EV == pytest.approx(27.211386, rel=1e-6)
    assert U.BOHR_A == pytest.approx(0.52917721, rel=1e-7)
