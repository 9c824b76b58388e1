"""Units and conventions, defined once and imported everywhere.

Internal units: Å, eV, eV/Å, fs, K, elementary charge e; electric field in V/Å; stress in eV/Å³
with the ASE sign convention (positive = tensile); polarization reported in C/m².

Born effective charges: ``Z[atom, a, b]`` with ``a`` the field / polarization direction and
``b`` the force / displacement direction::

    Z[k, a, b] = (Ω/e) ∂P_a/∂u_kb = (1/e) ∂F_kb/∂E_a

Stored in extxyz as 9 numbers per atom, row-major in that order.
"""

from __future__ import annotations

from ase import units as _ase_units

#: elementary charge in C (CODATA 2018, exact)
ELEMENTARY_CHARGE_C = 1.602176634e-19
#: vacuum permittivity in F/m
EPSILON_0_SI = 8.8541878128e-12
#: 1 e/Å² in C/m²
E_PER_A2_TO_C_PER_M2 = ELEMENTARY_CHARGE_C / 1e-20
#: 1 V/m in V/Å
V_PER_M_TO_V_PER_A = 1e-10
#: 1 eV/Å³ in GPa
EV_PER_A3_TO_GPA = _ase_units.eV / _ase_units.Angstrom**3 / _ase_units.GPa
#: Boltzmann constant in eV/K
KB_EV = _ase_units.kB
#: vacuum permittivity in e/(V·Å)
EPSILON_0_E_PER_VA = EPSILON_0_SI / ELEMENTARY_CHARGE_C * 1e-10
#: Hartree in eV and Bohr in Å (CODATA values used by ASE)
HARTREE_EV = _ase_units.Hartree
BOHR_A = _ase_units.Bohr
