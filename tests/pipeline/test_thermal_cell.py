"""[dielectric] cell = "thermal": each temperature's runs take the mean cell of a zero-field NpT
run, so they run at zero pressure instead of the thermal pressure of the 0 K cell."""

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.bussi import Bussi
from ase.md.velocitydistribution import thermalize_momenta

from bornfield.md.run import MDConfig, run_md
from bornfield.pipeline import thermal_cell


def _nvt_pressure(atoms, temperature: float, steps: int = 500) -> float:
    """Mean pressure (GPa, with the ideal-gas term) of Bussi NVT at the cell of ``atoms``, after
    150 steps from velocities at twice the temperature (equipartition halves it)."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    thermalize_momenta(atoms, 2 * temperature, rng=np.random.default_rng(5))
    dyn = Bussi(atoms, 2 * units.fs, temperature_K=temperature, taut=50 * units.fs,
                rng=np.random.default_rng(6))  # fmt: skip
    dyn.run(150)
    p = []
    for _ in range((steps - 150) // 5):
        dyn.run(5)
        p.append(-np.trace(atoms.get_stress(voigt=False, include_ideal_gas=True)) / 3)
    return float(np.mean(p)) / units.GPa


@pytest.mark.slow
def test_thermal_cell_is_at_zero_pressure(tmp_path):
    """EMT copper (108 atoms) at 600 K: at its 0 K cell (a₀ = 3.59 Å) NVT reads the thermal
    pressure, 4.5 GPa; in the mean cell of the last 1.4 ps of a 2-ps NpT run it reads zero
    within 0.3 GPa (a Bussi run of 600 steps read 0.05 ± 0.06 GPa there), the volume having
    grown by 4.0 % (EMT's copper)."""
    cold = bulk("Cu", "fcc", a=3.59, cubic=True).repeat(3)
    md = MDConfig(ensemble="npt", temperature=600, timestep=2.0, steps=1000, taup=500,
                  log_interval=50, traj_interval=10, seed=1)  # fmt: skip
    run_md(cold, EMT(), md, tmp_path, log=lambda m: None)
    hot = thermal_cell(tmp_path, cold, 1.4, md)
    assert np.allclose(hot.get_scaled_positions(), cold.get_scaled_positions())
    expansion = hot.get_volume() / cold.get_volume() - 1
    assert 0.03 < expansion < 0.05, expansion
    assert _nvt_pressure(cold, 600) > 3.0
    assert _nvt_pressure(hot, 600) == pytest.approx(0.0, abs=0.3)
