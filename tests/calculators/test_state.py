"""The exact state check: ASE's changes, found bitwise; one calculation per MD step."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import compare_atoms
from ase.md.verlet import VelocityVerlet

from bornfield.calculators.state import ExactStateCheck, exact_changes
from bornfield.label.generators import cubic_perovskite


def test_changes_are_ase_changes():
    a = cubic_perovskite("CaTiO3").repeat((2, 1, 1))
    cases = {
        "unchanged": lambda b: None,
        "positions": lambda b: b.positions.__setitem__((3, 2), b.positions[3, 2] + 1e-9),
        "numbers": lambda b: b.numbers.__setitem__(0, 38),
        "cell": lambda b: b.set_cell(b.cell[:] * 1.001),
        "pbc": lambda b: b.set_pbc([True, True, False]),
        "initial_magmoms": lambda b: b.set_initial_magnetic_moments(np.ones(len(b))),
    }
    for name, change in cases.items():
        b = a.copy()
        change(b)
        assert exact_changes(a, b) == compare_atoms(a, b), name
        assert exact_changes(a, b) == ([] if name == "unchanged" else [name])
    c = a.copy()
    c.set_initial_magnetic_moments(np.ones(len(c)))
    d = c.copy()
    d.arrays["initial_magmoms"][1] = 2.0
    assert exact_changes(c, d) == compare_atoms(c, d) == ["initial_magmoms"]
    assert set(exact_changes(None, a)) == set(compare_atoms(None, a))


class Harmonic(ExactStateCheck):
    implemented_properties = ["energy", "forces"]

    def __init__(self, ref):
        super().__init__()
        self.ref, self.calls = ref, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        u = self.atoms.positions - self.ref
        self.results = {"energy": 0.5 * float((u * u).sum()), "forces": -u}


def test_one_calculation_per_md_step():
    """ASE's MD asks for forces three times a step; the calculator computes once."""
    a = cubic_perovskite("CaTiO3").repeat((2, 1, 1))
    a.calc = Harmonic(a.positions.copy())
    a.rattle(0.05, seed=0)
    VelocityVerlet(a, timestep=1.0).run(10)
    assert a.calc.calls == 11
