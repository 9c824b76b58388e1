"""Neighbour pairs within a cutoff, for both models and the MD safety checks.

vesin builds the same pairs as ASE (tests/models/test_neighbours.py) and matscipy, 2.6–4× faster
than matscipy on 160–5120-atom cells (bench/results/neighbours.md); cells that are periodic along
some axes only go through ASE.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms


def neighbour_pairs(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, integer cell shifts) of every ordered pair closer than ``cutoff``:
    ``positions[second] - positions[first] + shifts @ cell`` is the pair vector."""
    if atoms.pbc.all():
        from vesin import NeighborList

        i, j, s = NeighborList(cutoff=cutoff, full_list=True).compute(
            points=atoms.positions, box=atoms.cell[:], periodic=True, quantities="ijS"
        )
        return i.astype(np.int64), j.astype(np.int64), s.astype(np.int64)
    from ase.neighborlist import neighbor_list

    return neighbor_list("ijS", atoms, cutoff)


def min_distance(atoms: Atoms, cutoff: float) -> float | None:
    """The shortest interatomic distance if it is below ``cutoff``, else None."""
    i, j, s = neighbour_pairs(atoms, cutoff)
    if not len(i):
        return None
    d = atoms.positions[j] - atoms.positions[i] + s @ atoms.cell[:]
    return float(np.sqrt((d * d).sum(1)).min())
