"""Labels from a foundation model instead of DFT: many cheap frames to pretrain a force field on.

DFT labels of tilted 20-atom cells cost CPU-hours each (``data/catio3/CARD.md``); a foundation
model (CHGNet, MACE-MP-0) labels thousands in minutes, with its own errors. A MACE model
pretrained on such labels and then trained on the DFT frames (``train_ff(init=...)``) starts from
the foundation model's picture of the structures (synthetic pretraining: Gardner, Baker &
Deringer, Mach. Learn.: Sci. Technol. 5, 015003, 2024). These labels never replace DFT ones: their
frames carry the calculator's name in ``provenance``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from bornfield.data import io


def label_with_calculator(
    structures: Sequence[Atoms],
    out: str | Path,
    spec: str,
    log: Callable[[str], None] = print,
    every: int = 50,
) -> int:
    """Energy, forces and stress of each structure from the calculator ``spec`` (``chgnet`` or
    ``mace-mp:PATH``, :func:`~bornfield.models.baselines.load_baseline`), appended to ``out``;
    frames already there (by index) are skipped, so a killed run continues. Returns the number
    labelled by this call."""
    from bornfield.models.baselines import load_baseline

    out = Path(out)
    done = len(io.read(out, check=False)) if out.exists() else 0
    calc = load_baseline(spec)
    provenance = json.dumps({"code": spec, "kind": "foundation-model labels, not DFT"})
    for i, atoms in enumerate(structures[done:], start=done):
        a = atoms.copy()
        a.calc = calc
        energy, forces, stress = a.get_potential_energy(), a.get_forces(), a.get_stress()
        b = atoms.copy()
        b.calc = None
        b.info["energy"] = float(energy)
        b.arrays["forces"] = np.array(forces)
        b.info["stress"] = voigt_6_to_full_3x3_stress(stress).reshape(9)
        b.info["provenance"] = provenance
        b.info["label_id"] = i
        io.append(out, b)
        if (i + 1) % every == 0 or i + 1 == len(structures):
            log(f"{i + 1}/{len(structures)} labelled with {spec}")
    return len(structures) - done
