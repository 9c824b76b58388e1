"""Field-coupled calculator (the paper's eqs. 1-2): any force field + a Z* model + a field E.

    F_kb = F0_kb + Σ_a E_a Z_k,ab                     (eV/Å; E in V/Å, Z in e)
    U    = U0 − Σ_k,a,b E_a Z_k,ab u_kb
    P_a  = (e/Ω) Σ_k,b Z_k,ab u_kb                    (reported in C/m²)

u is the minimum-image displacement from a reference structure whose fractional coordinates
are fixed, so the reference follows the cell under NpT. Z* is held fixed in the derivatives
(dZ*/dR terms are neglected, as in the paper), and may be refreshed only every ``bec_interval``
calls; between refreshes Z* is held, or with ``bec_extrapolate`` extrapolated linearly from the
last two refreshes (bench/results/bec_interval_catio3*.md measure both). Stress: the strain
derivative of U at fixed Z* and fixed fractional reference, i.e.
σ = σ0 − (1/Ω) sym(Σ_k (Eᵀ Z_k) ⊗ u_k), the converse-piezoelectric coupling of the field term;
tests check it against finite differences of U.

The field force is not conservative when Z* depends on positions: E·Z*(R) is the gradient of
an energy only if ∂Z_k,ab/∂R_jc = ∂Z_j,ac/∂R_kb, i.e. if Z* is the gradient of one dipole, as
DFT's Z* are. A model that predicts Z* directly need not be: the shipped CaTiO3 model on the
relaxed 80-atom cell gives ∂Z_Ti,xx/∂R_O,x = −1.42 against ∂Z_O,xx/∂R_Ti,x = −0.40 e/Å for a
Ti–O pair. U is therefore the energy at fixed Z* only: NVE in a field does not conserve it, and
under a thermostat the field does net work around closed paths (0.14 eV over 6 ps at 300 K and
5e7 V/m in the 80-atom cell, taken out by the thermostat).

Polarization is reported two ways: the instantaneous Σ Z*·u (the paper's, used for ε) and the
path-integrated Σ ∫ Z*(t)·du accumulated between successive calls (trapezoidal in Z*). With a
non-integrable Z* the path value is not a function of the structure: in the default 300 K runs
it wanders 0.15 C/m² from the instantaneous one in zero field (whose std is 0.055) and drifts
0.5 C/m² along a 5e7 V/m field in 6 ps. It is a diagnostic of the above, not a polarization.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from bornfield.calculators.state import ExactStateCheck
from bornfield.errors import BornfieldError
from bornfield.units import E_PER_A2_TO_C_PER_M2

#: largest field accepted (V/Å): 1e10 V/m, far beyond breakdown; catches fields given in V/m
MAX_FIELD = 1.0


def min_image_displacement(atoms: Atoms, ref_scaled: np.ndarray) -> np.ndarray:
    """u = r − r_ref with r_ref = s_ref · cell (current cell), wrapped to the minimum image."""
    ds = atoms.get_scaled_positions(wrap=False) - ref_scaled
    ds -= np.round(ds)
    return ds @ atoms.cell[:]


class FieldCalculator(ExactStateCheck):
    """Force field + Born charges + homogeneous electric field (V/Å), as an ASE calculator.

    ``bec`` is a Z* model (a :class:`~bornfield.models.bec.BECModel` or its file) or an
    N×3×3 array of fixed charges (a rigid-ion model, e.g. the DFT Z* of the reference).
    """

    implemented_properties = [
        "energy", "free_energy", "forces", "stress", "polarization", "polarization_path",
        "born_charges", "dipole",
    ]  # fmt: skip

    def __init__(
        self,
        ff: Calculator,
        bec,
        field: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
        reference: Atoms | None = None,
        bec_interval: int = 1,
        bec_extrapolate: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        from bornfield.models.bec import BECModel, load_model

        self.ff = ff
        self.fixed_z: np.ndarray | None = None  # fixed Born charges (rigid-ion), N×3×3
        if isinstance(bec, np.ndarray):
            self.bec, self.fixed_z = None, np.asarray(bec, dtype=float)
            if self.fixed_z.ndim != 3 or self.fixed_z.shape[1:] != (3, 3):
                raise BornfieldError(f"fixed Born charges must be N×3×3, got {bec.shape}")
        else:
            self.bec = bec if isinstance(bec, BECModel) else load_model(bec)
        self.set_field(field)
        if bec_interval < 1:
            raise BornfieldError(f"bec_interval must be >= 1, got {bec_interval}")
        self.bec_interval = bec_interval
        self.bec_extrapolate = bec_extrapolate
        self.ref_scaled = None if reference is None else reference.get_scaled_positions(wrap=False)
        self.n_calls = 0
        self._z: np.ndarray | None = None  # Z* in use
        self._refreshed: list[np.ndarray] = []  # the last two predicted Z*, oldest first
        self._last: np.ndarray | None = None  # positions + cell of the last configuration
        self._prev: tuple[np.ndarray, np.ndarray] | None = None  # (u, Z) of the last call
        self.path_dipole = np.zeros(3)  # Σ ∫ Z*·du, e·Å
        self.stress_wanted = False  # becomes True at the first stress request

    def set_field(self, field: tuple[float, float, float] | np.ndarray) -> None:
        """Change the field (V/Å); cached results are dropped."""
        f = np.asarray(field, dtype=float)
        if f.shape != (3,) or not np.isfinite(f).all():
            raise BornfieldError(f"field must be 3 finite numbers in V/Å, got {field!r}")
        if np.abs(f).max() > MAX_FIELD:
            raise BornfieldError(
                f"field {f.tolist()} V/Å is beyond {MAX_FIELD} V/Å (dielectric breakdown); "
                "fields are in V/Å: 1e8 V/m is 0.01 V/Å"
            )
        self.field = f
        self.reset()

    def set_reference(self, reference: Atoms) -> None:
        """Measure displacements from ``reference``; cached results are dropped."""
        self.ref_scaled = reference.get_scaled_positions(wrap=False)
        self._prev, self.path_dipole = None, np.zeros(3)
        self.reset()

    def born_charges(self, atoms: Atoms) -> np.ndarray:
        """Z* for this configuration: recomputed on every ``bec_interval``-th new configuration.

        ``n_calls`` counts distinct configurations (positions and cell), so repeated calls at
        the same geometry (extra properties, restarts) do not shift the refresh schedule.
        """
        from bornfield.models.bec import predict_bec

        if self.fixed_z is not None:
            if len(self.fixed_z) != len(atoms):
                raise BornfieldError(
                    f"{len(self.fixed_z)} fixed Born charges for {len(atoms)} atoms"
                )
            return self.fixed_z
        key = np.concatenate([atoms.positions.ravel(), atoms.cell[:].ravel()])
        if self._z is not None and self._last is not None and np.array_equal(key, self._last):
            return self._z
        stale = self._z is None or self._z.shape[0] != len(atoms)
        since = self.n_calls % self.bec_interval  # calls since the last scheduled refresh
        if stale or since == 0:
            z = predict_bec(self.bec, atoms)
            self._refreshed = ([] if stale else self._refreshed[-1:]) + [z]
            self._z = z
        elif self.bec_extrapolate and len(self._refreshed) == 2:
            z0, z1 = self._refreshed
            self._z = z1 + (since / self.bec_interval) * (z1 - z0)  # keeps the sum rule
        self.n_calls += 1
        self._last = key
        return self._z

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if self.ref_scaled is None:
            self.set_reference(atoms)
        if len(self.ref_scaled) != len(atoms):
            raise BornfieldError("reference structure and atoms differ in length")
        # once stress is asked for (NpT), every call computes it: MTK asks for forces and then
        # stress at the same geometry, which would otherwise run the force field twice
        self.stress_wanted |= "stress" in properties
        want_stress = self.stress_wanted
        ff_props = ["energy", "forces"] + (["stress"] if want_stress else [])
        self.ff.calculate(atoms, ff_props, system_changes)
        r = self.ff.results
        z = self.born_charges(atoms)
        u = min_image_displacement(atoms, self.ref_scaled)
        volume = atoms.get_volume()
        dipole = np.einsum("kab,kb->a", z, u)  # e·Å
        ez = np.einsum("a,kab->kb", self.field, z)  # E·Z per atom, eV/Å
        energy = float(r["energy"]) - float(np.sum(ez * u))
        if self._prev is not None:
            u0, z0 = self._prev
            du = u - u0
            self.path_dipole += 0.5 * np.einsum("kab,kb->a", z0 + z, du)
        else:
            self.path_dipole = dipole.copy()
        self._prev = (u, z)
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.asarray(r["forces"]) + ez,
            "born_charges": z,
            "dipole": dipole,
            "polarization": dipole / volume * E_PER_A2_TO_C_PER_M2,
            "polarization_path": self.path_dipole / volume * E_PER_A2_TO_C_PER_M2,
        }
        if want_stress:
            from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

            s0 = np.asarray(r["stress"])
            s0 = voigt_6_to_full_3x3_stress(s0) if s0.shape == (6,) else s0
            g = np.einsum("kb,kc->bc", ez, u)
            sigma = s0 - 0.5 * (g + g.T) / volume
            self.results["stress"] = full_3x3_to_voigt_6_stress(sigma)
