"""The one registry of label keys: where each lives on an ``Atoms``, its unit and its shape.

In memory every label sits on the ``Atoms`` under its canonical name: per-structure labels in
``atoms.info``, per-atom labels in ``atoms.arrays``, always in the canonical shape below
(``"N"`` = number of atoms). On disk (extxyz) per-atom tensors are flattened row-major.
Other projects' names are mapped explicitly in :data:`ALIASES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Key:
    """One label: canonical name, location, unit, canonical shape, meaning and a sane bound."""

    name: str
    where: Literal["info", "arrays"]
    unit: str
    shape: tuple[int | str, ...]
    description: str
    max_abs: float | None = None  # values beyond this are rejected as unphysical

    def shape_for(self, natoms: int) -> tuple[int, ...]:
        return tuple(natoms if s == "N" else int(s) for s in self.shape)


KEYS: dict[str, Key] = {
    k.name: k
    for k in [
        Key("energy", "info", "eV", (), "total energy"),
        Key("forces", "arrays", "eV/Å", ("N", 3), "atomic forces at zero field", 100.0),
        Key("stress", "info", "eV/Å³", (3, 3), "stress, ASE sign (positive = tensile)", 1.0),
        Key(
            "born_charges",
            "arrays",
            "e",
            ("N", 3, 3),
            "Born effective charges Z[atom, field dir, force dir]",
            20.0,
        ),
        Key("epsilon_inf", "info", "1", (3, 3), "electronic (clamped-ion) dielectric tensor", 1e3),
        Key("polarization", "info", "C/m²", (3,), "macroscopic polarization"),
        Key("dipole", "info", "e·Å", (3,), "cell dipole (Berry phase: modulo a quantum)"),
        Key("polarizability", "info", "e·Å²/V", (3, 3), "electronic polarizability of the cell"),
    ]
}

#: Label keys a dataset may carry; ``provenance`` (a JSON string in info) rides along.
LABELS = tuple(KEYS)
PROVENANCE = "provenance"

#: Other projects' names -> canonical names. Units and index order are the same unless a
#: conversion is listed in :data:`ALIAS_SCALE`.
ALIASES: dict[str, str] = {
    # Z*[atom, α = field/polarization, β = force/displacement] in both, checked in their code:
    # allegro-pol's QE parser writes q[n, i, j] = ΔF_nj / E_i row-major and its model
    # dP_α/dr_β as [atom, α, β]; mace-torch stacks dμ_α/dR_β as [atom, α, β].
    "born_charge": "born_charges",  # allegro-pol BaTiO3 (9 per atom)
    "REF_becs": "born_charges",  # MACE-Field
    "total_energy": "energy",  # allegro-pol
    "REF_energy": "energy",  # mace-torch training files
    "REF_forces": "forces",
    "REF_stress": "stress",
    "REF_epsilon": "epsilon_inf",
}

#: Per source format: source key -> canonical key where the meaning differs from the same name.
#: allegro-pol stores the cell dipole (e·Å) under ``polarization``.
FORMAT_RENAMES: dict[str, dict[str, str]] = {
    "allegro-pol": {"polarization": "dipole"},
}


def get_key(name: str) -> Key:
    """The registry entry for ``name`` (canonical or alias); ``KeyError`` names the choices."""
    canonical = ALIASES.get(name, name)
    if canonical not in KEYS:
        raise KeyError(f"unknown key {name!r}; known keys: {', '.join(KEYS)}")
    return KEYS[canonical]


def to_canonical_shape(key: Key, value: np.ndarray | float, natoms: int) -> np.ndarray:
    """Reshape a stored value (flat per-atom rows, 9-vector, Voigt-6 stress) to canonical form."""
    arr = np.asarray(value, dtype=float)
    want = key.shape_for(natoms)
    if arr.shape == want:
        return arr
    if key.name == "stress" and arr.shape == (6,):
        from ase.stress import voigt_6_to_full_3x3_stress

        return voigt_6_to_full_3x3_stress(arr)
    per_atom = key.where == "arrays"
    if arr.size == int(np.prod(want)) and (not per_atom or arr.shape[:1] == (natoms,)):
        return arr.reshape(want)
    raise ValueError(f"{key.name}: expected shape {want}, got {arr.shape}")
