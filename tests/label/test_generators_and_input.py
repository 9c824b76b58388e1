"""Structure generators and ABINIT input writing (no ABINIT run needed)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import spglib
from ase.neighborlist import neighbor_list

from bornfield.label import abinit as ab
from bornfield.label.generators import cubic_perovskite, displacement_scan, perturbed, pnma_catio3


def _spacegroup(atoms, symprec=1e-3):
    return spglib.get_spacegroup(
        (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), symprec=symprec
    )


def test_cubic_and_pnma_structures():
    assert _spacegroup(cubic_perovskite("CaTiO3")) == "Pm-3m (221)"
    pnma = pnma_catio3()
    assert len(pnma) == 20 and pnma.get_chemical_formula() == "Ca4O12Ti4"
    assert _spacegroup(pnma) == "Pnma (62)"
    i, j, d = neighbor_list("ijd", pnma, 2.2)
    ti = np.array(pnma.get_chemical_symbols()) == "Ti"
    assert (np.bincount(i[ti[i]], minlength=20)[ti] == 6).all()  # TiO6 octahedra
    assert 1.94 < d[ti[i]].min() and d[ti[i]].max() < 1.97


def test_perturbed_and_scan():
    base = cubic_perovskite()
    frames = perturbed(base, 3, rattle=0.05, strain=0.02, seed=1)
    assert len(frames) == 3 and not np.allclose(frames[0].positions, frames[1].positions)
    strain = np.abs(frames[0].cell.lengths() / 3.84 - 1)
    assert 1e-4 < strain.max() < 0.03  # strained, within the ±0.02 asked (and shear)
    scan = displacement_scan(base, 1, "z", [-0.1, 0.05])
    np.testing.assert_allclose(scan[0].positions[1] - base.positions[1], [0, 0, -0.1])
    np.testing.assert_allclose(scan[1].positions[0], base.positions[0])


def test_input_has_occupied_bands_and_kmesh():
    s = ab.preset("production")
    text = ab.write_input(cubic_perovskite(), s)
    # Ca 10 + Ti 12 + 3 x O 6 = 40 electrons -> 20 occupied bands, plus extra
    assert f"nband {20 + s.extra_bands}" in text
    assert "ngkpt 5 5 5" in text and "ixc -116133" in text
    assert "rfelfd3 3" in text and "getddk3 2" in text
    assert ab.preset("production").kmesh(pnma_catio3()) == (4, 3, 4)
    no_bec = ab.write_input(cubic_perovskite(), ab.preset("test", bec=False))
    assert "ndtset 1" in no_bec and "rfelfd" not in no_bec


def test_scf_only_labels_may_stop_on_forces():
    cell = cubic_perovskite()
    by_forces = ab.preset("test", bec=False, toldff_scf=5e-6)
    assert "toldff1 5e-06" in ab.write_input(cell, by_forces)
    gs = ab.stage_inputs(cell, by_forces)["gs"]
    assert "toldff 5e-06" in gs and "tolvrs" not in gs
    assert "tolvrs 1e-08" in ab.stage_inputs(cell, ab.preset("test", bec=False))["gs"]
    # DFPT needs the tight density whatever the SCF-only rule is
    assert "tolvrs1 1e-08" in ab.write_input(cell, replace(by_forces, bec=True))
    assert "tolvrs 1e-08" in ab.stage_inputs(cell, replace(by_forces, bec=True))["gs"]


def test_jobs_hash_the_abinit_inputs():
    from bornfield.label.queue import _fingerprint

    cell = [cubic_perovskite()]
    scf = ab.preset("production", bec=False)
    # a job resumes when the ABINIT inputs are the same, whatever settings do not enter them
    assert _fingerprint(cell, scf) == _fingerprint(cell, replace(scf, tolwfr_ddk=1e-20))
    assert _fingerprint(cell, scf) != _fingerprint(cell, replace(scf, kpt_length=9.0))
    assert _fingerprint(cell, scf) != _fingerprint(cell, replace(scf, bec=True))


def test_unknown_element_and_preset():
    from ase import Atoms

    with pytest.raises(ab.LabelError, match="no pseudopotential configured for Cu"):
        ab.write_input(Atoms("Cu", cell=np.eye(3) * 3, pbc=True), ab.preset("test"))
    with pytest.raises(Exception, match="unknown preset 'fast'"):
        ab.preset("fast")


def test_cli_scans_several_atoms(tmp_path):
    from bornfield.cli import main
    from bornfield.data import io

    out = tmp_path / "scan.xyz"
    args = ["structures", "pnma", "--atom", "0,4", "--amplitudes=-0.1,0.1", "--out", str(out)]
    assert main(args) == 0
    frames = io.read(out)
    base = pnma_catio3()
    assert [f.info["scan"].split(" (")[0] for f in frames] == ["atom 0"] * 2 + ["atom 4"] * 2
    np.testing.assert_allclose(frames[3].positions[4] - base.positions[4], [0, 0, 0.1], atol=1e-9)
    np.testing.assert_allclose(
        np.delete(frames[3].positions, 4, 0), np.delete(base.positions, 4, 0)
    )


def test_label_ids_option():
    import argparse

    from bornfield.cli import _int_list

    assert _int_list("5,11,1-3") == [5, 11, 1, 2, 3]
    with pytest.raises(argparse.ArgumentTypeError, match="not a list of indices"):
        _int_list("5,x")


def test_nearly_converged_reads_the_last_force_change():
    """A parser of ABINIT's SCF table: no ABINIT needed."""
    from bornfield.label.abinit import _nearly_converged

    head = "     iter   Etot(hartree)      deltaE(h)  residm     vres2    diffor    maxfor\n"
    rows = [
        " ETOT  1  -588.42588461867    -5.884E+02 2.185E-01 6.477E+03 3.943E-01 3.943E-01",
        " ETOT  2  -588.61234567890    -1.865E-01 1.000E-03 2.000E+01 8.000E-05 3.900E-01",
    ]
    assert not _nearly_converged(head + rows[0], 1e-5)
    assert _nearly_converged(head + "\n".join(rows), 1e-5)  # 8e-5 < 10 × 1e-5
    assert not _nearly_converged(head + "\n".join(rows), 1e-6)
    assert not _nearly_converged(head + "\n".join(rows), None)  # no stopping rule on forces
    assert not _nearly_converged(head, 1e-5)


def test_cpu_time_is_read_from_abinit_output(tmp_path):
    """The CPU time of a run (all ranks) comes from ABINIT's closing line; a stage recorded
    before CPU time was kept falls back to its output, unless a restart split it over runs."""
    from helpers import FIXTURES

    from bornfield.label.abinit import _cpu_seconds, _stage_cpu

    abo = (FIXTURES / "CaTiO3_cubic_dfpt.abo").read_text()
    assert _cpu_seconds(abo) == 46.2  # "+Overall time at end (sec) : cpu= 46.2  wall= 49.8"
    assert _cpu_seconds(abo[: abo.index("+Overall time")]) is None  # killed before the end
    (tmp_path / "run.abo").write_text(abo)
    assert _stage_cpu(tmp_path, {"wall_s": 50.0, "cpu_s": 40.0}) == 40.0
    assert _stage_cpu(tmp_path, {"wall_s": 50.0, "restarts": 0}) == 46.2
    assert _stage_cpu(tmp_path, {"wall_s": 50.0, "restarts": 1}) is None
