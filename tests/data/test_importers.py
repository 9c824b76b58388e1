"""Importers: ABINIT DFPT output, VASP OUTCAR Born block, phonopy BORN (index order, units)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from helpers import FIXTURES, cubic_catio3, run_cli

from bornfield.data import io
from bornfield.data.importers import parse_abinit_output, read_phonopy_born
from bornfield.errors import DataError
from bornfield.units import HARTREE_EV


def test_abinit_cubic_catio3_output():
    """Real ABINIT 9.6 run (2x2x2 k, 20 Ha: a coarse test, not converged charges)."""
    (atoms,) = io.read(FIXTURES / "CaTiO3_cubic_dfpt.abo")
    assert atoms.get_chemical_formula() == "CaO3Ti"
    np.testing.assert_allclose(atoms.cell.lengths(), 3.84, atol=1e-6)
    assert atoms.info["energy"] == pytest.approx(-147.419611382616 * HARTREE_EV, abs=1e-6)
    np.testing.assert_allclose(atoms.arrays["forces"], 0.0, atol=1e-10)
    # strten 3.2778815120E-03 Ha/bohr^3 = +96.44 GPa (ABINIT and ASE: positive = tensile)
    assert atoms.info["stress"][0, 0] * 160.21766208 == pytest.approx(96.4386, rel=1e-4)
    z = atoms.arrays["born_charges"]
    assert z[0, 0, 0] == pytest.approx(2.7007317361)
    assert z[1, 2, 2] == pytest.approx(6.6787576692)
    # O at (1/2, 1/2, 0) bonds to Ti along z: the anomalous component is zz
    assert z[2, 2, 2] == pytest.approx(-4.3123260323)
    assert z[2, 0, 0] == pytest.approx(-2.1620814764)
    assert z[4, 0, 0] == pytest.approx(-4.3123260323)  # O at (0, 1/2, 1/2): along x
    np.testing.assert_allclose(atoms.info["epsilon_inf"], np.eye(3) * 5.8724592278, atol=1e-9)


def test_abinit_index_order_field_then_displacement():
    """ABINIT lists (dir1, atom, dir2, natom+2): dir2 is the field -> Z[atom, dir2, dir1]."""
    text = (FIXTURES / "CaTiO3_cubic_dfpt.abo").read_text()
    head = "Effective charges, in cartesian coordinates,"
    i = text.rfind(head)
    block = text[i:].replace(
        "   3    2   1    7         0.0000000000", "   3    2   1    7         0.1234000000", 1
    )
    atoms = parse_abinit_output(text[:i] + block)
    z = atoms.arrays["born_charges"]
    assert z[1, 0, 2] == pytest.approx(0.1234)  # field x, Ti displaced along z
    assert z[1, 2, 0] == pytest.approx(0.0)


def test_abinit_incomplete_run_is_an_error(tmp_path):
    text = (FIXTURES / "CaTiO3_cubic_dfpt.abo").read_text()
    p = tmp_path / "killed.abo"
    p.write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match="killed.abo: no final '-outvars'"):
        io.read(p)


def test_abinit_unconverged_scf_is_an_error(tmp_path):
    """ABINIT finishes a run whose SCF ran out of steps with a warning, outvars and all: such
    output is refused, not imported as labels."""
    text = (FIXTURES / "CaTiO3_cubic_dfpt.abo").read_text()
    i = text.index(" -outvars")
    warning = " scprqt:  WARNING -\n  nstep=    2 was not enough SCF cycles to converge;\n"
    p = tmp_path / "short.abo"
    p.write_text(text[:i] + warning + text[i:])
    with pytest.raises(DataError, match="short.abo: an SCF did not converge"):
        io.read(p)


def test_vasp_outcar_born_block():
    (atoms,) = io.read(FIXTURES / "OUTCAR_CaTiO3")
    z = atoms.arrays["born_charges"]
    assert z.shape == (5, 3, 3)
    # rows = field direction, columns = displacement: ion 2 row 1 is "7.08 0 0.30"
    assert z[1, 0, 2] == pytest.approx(0.30) and z[1, 2, 0] == pytest.approx(0.10)
    assert z[2, 2, 2] == pytest.approx(-5.65)
    # the 'including local field effects' tensor, not the 'excluding' one
    np.testing.assert_allclose(np.diag(atoms.info["epsilon_inf"]), [6.1, 6.1, 6.0])
    assert atoms.info["energy"] == pytest.approx(-40.12345678)
    assert atoms.arrays["forces"][1, 2] == pytest.approx(-0.12)
    # VASP "in kB -14.37" (negative = tensile in VASP) -> ASE stress +1.437 GPa
    assert atoms.info["stress"][0, 0] * 160.21766208 == pytest.approx(1.437, rel=1e-3)


def test_vasp_outcar_without_born_block(tmp_path):
    text = (FIXTURES / "OUTCAR_CaTiO3").read_text()
    p = tmp_path / "OUTCAR"
    p.write_text(text.split(" BORN EFFECTIVE")[0])
    r = run_cli("data", "inspect", str(p))
    assert r.returncode == 2 and "no 'BORN EFFECTIVE CHARGES' block" in r.stderr


def _born_file(tmp_path, z_ti_xz: float = 0.0) -> tuple:
    """BORN for cubic CaTiO3: independent atoms Ca, Ti and the O at (1/2, 1/2, 0)."""
    p = tmp_path / "BORN"
    p.write_text(
        "default\n"
        "6.1 0 0 0 6.1 0 0 0 6.1\n"
        "2.58 0 0 0 2.58 0 0 0 2.58\n"
        "7.08 0 0 0 7.08 0 0 0 7.08\n"
        "-2.00 0 0 0 -2.00 0 0 0 -5.65\n"
    )
    return p, cubic_catio3()


def test_phonopy_born_expanded_by_symmetry(tmp_path):
    path, structure = _born_file(tmp_path)
    atoms = read_phonopy_born(path, structure)
    z = atoms.arrays["born_charges"]
    np.testing.assert_allclose(np.diag(z[3]), [-2.0, -5.65, -2.0], atol=1e-8)  # O at (1/2, 0, 1/2)
    np.testing.assert_allclose(np.diag(z[4]), [-5.65, -2.0, -2.0], atol=1e-8)  # O at (0, 1/2, 1/2)
    np.testing.assert_allclose(
        z.sum(axis=0), np.eye(3) * 0.01, atol=1e-8
    )  # literature ASR residual
    np.testing.assert_allclose(atoms.info["epsilon_inf"], np.eye(3) * 6.1)


def test_phonopy_born_cli(tmp_path):
    path, structure = _born_file(tmp_path)
    s = tmp_path / "s.xyz"
    io.write(s, structure)
    out = tmp_path / "z.xyz"
    r = run_cli("data", "convert", str(path), str(out), "--structure", str(s))
    assert r.returncode == 0, r.stderr
    (atoms,) = io.read(out)
    assert atoms.arrays["born_charges"][1, 0, 0] == pytest.approx(7.08)
    r = run_cli("data", "convert", str(path), str(out))
    assert r.returncode == 2 and "needs the structure" in r.stderr


def test_phonopy_born_bad_file(tmp_path):
    p = tmp_path / "BORN"
    p.write_text("default\n1 2 3\n")
    with pytest.raises(DataError, match="BORN"):
        read_phonopy_born(p, Atoms(cubic_catio3()))
