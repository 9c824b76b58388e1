"""The pair list of both models equals ASE's on small, triclinic, partly periodic and unwrapped
cells."""

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list

from bornfield.label.generators import cubic_perovskite
from bornfield.models.neighbours import min_distance, neighbour_pairs


def _cells():
    small = cubic_perovskite("CaTiO3")  # 3.8 Å: many images of each atom within 6 Å
    small.rattle(0.05, seed=1)
    tri = cubic_perovskite("BaTiO3").repeat((2, 1, 1))
    tri.set_cell(tri.cell[:] + [[0, 0.4, 0.1], [0.3, 0, 0.2], [-0.2, 0.5, 0]], scale_atoms=True)
    tri.rattle(0.05, seed=2)
    slab = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    slab.pbc = (True, True, False)
    free = molecule("CH3CH2OH")
    md = cubic_perovskite("BaTiO3").repeat((3, 3, 2))  # positions as MD leaves them: unwrapped
    md.rattle(0.05, seed=3)
    md.positions += np.random.default_rng(0).integers(-3, 4, (len(md), 3)) @ md.cell[:] + 0.3
    return [small, tri, slab, free, md]


def _pair_set(pairs) -> set:
    i, j, s = pairs
    return set(zip(i.tolist(), j.tolist(), map(tuple, s.tolist()), strict=True))


@pytest.mark.parametrize("cutoff", [2.6, 4.5, 6.0])
@pytest.mark.parametrize("k", range(5))
def test_pairs_equal_ase(k, cutoff):
    atoms = _cells()[k]
    ours = neighbour_pairs(atoms, cutoff)
    ref = neighbor_list("ijS", atoms, cutoff)
    assert _pair_set(ours) == _pair_set(ref)
    assert len(ours[0]) > 0
    assert all(a.dtype == np.int64 for a in ours)


def test_min_distance():
    atoms = cubic_perovskite("CaTiO3")
    d = atoms.get_all_distances(mic=True)
    shortest = d[d > 0].min()
    assert min_distance(atoms, shortest + 0.01) == pytest.approx(shortest)
    assert min_distance(atoms, shortest - 0.01) is None
