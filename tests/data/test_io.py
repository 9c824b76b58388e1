"""extxyz round trips of every registry key, other projects' names, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import write as ase_write
from helpers import ROOT, cubic_catio3

from bornfield.data import io
from bornfield.data.keys import KEYS, get_key
from bornfield.errors import DataError


def test_every_key_round_trips(tmp_path, labelled_frame):
    path = tmp_path / "a.xyz"
    io.write(path, [labelled_frame, labelled_frame])
    back = io.read(path)
    assert len(back) == 2
    for name, key in KEYS.items():
        store = back[1].arrays if key.where == "arrays" else back[1].info
        ref = labelled_frame.arrays if key.where == "arrays" else labelled_frame.info
        assert np.shape(store[name]) == key.shape_for(len(labelled_frame)), name
        np.testing.assert_allclose(
            store[name], ref[name], rtol=0, atol=1e-7, err_msg=name
        )  # extxyz keeps 8 decimals
    assert back[0].info["provenance"] == labelled_frame.info["provenance"]
    np.testing.assert_allclose(back[0].positions, labelled_frame.positions, atol=1e-7)


def test_born_charges_stored_row_major(tmp_path, labelled_frame):
    """On disk: 9 numbers per atom, Z[a, b] row-major (a = field, b = displacement)."""
    path = tmp_path / "a.xyz"
    io.write(path, labelled_frame)
    line = path.read_text().splitlines()[2].split()  # first atom
    header = path.read_text().splitlines()[1]
    props = header.split("Properties=")[1].split()[0].split(":")
    col, i = 0, 0
    while props[i] != "born_charges":
        col += int(props[i + 2])
        i += 3
    stored = np.array(line[col : col + 9], dtype=float)
    np.testing.assert_allclose(stored, labelled_frame.arrays["born_charges"][0].ravel(), atol=1e-7)


def test_allegro_pol_names_are_mapped(tmp_path, labelled_frame):
    raw = labelled_frame.copy()
    z = raw.arrays.pop("born_charges").reshape(len(raw), 9)
    raw.new_array("born_charge", z)
    raw.info["total_energy"] = raw.info.pop("energy")
    raw.info["polarization"] = raw.info.pop("dipole")  # allegro-pol: cell dipole in e·Å
    del raw.info["polarizability"]
    path = tmp_path / "allegro.xyz"
    ase_write(path, raw, format="extxyz")
    (back,) = io.read(path)
    np.testing.assert_allclose(
        back.arrays["born_charges"], labelled_frame.arrays["born_charges"], atol=1e-7
    )
    assert back.info["energy"] == pytest.approx(labelled_frame.info["energy"])
    np.testing.assert_allclose(back.info["dipole"], labelled_frame.info["dipole"], atol=1e-7)
    assert "polarization" not in back.info


def test_mace_field_names_are_mapped(tmp_path, labelled_frame):
    raw = labelled_frame.copy()
    raw.new_array("REF_becs", raw.arrays.pop("born_charges").reshape(len(raw), 9))
    raw.info["REF_energy"] = raw.info.pop("energy")
    path = tmp_path / "mf.xyz"
    ase_write(path, raw, format="extxyz")
    (back,) = io.read(path)
    np.testing.assert_allclose(
        back.arrays["born_charges"], labelled_frame.arrays["born_charges"], atol=1e-7
    )
    assert back.info["energy"] == pytest.approx(-40.5)


def test_unknown_key_is_named():
    with pytest.raises(KeyError, match="unknown key 'bec'"):
        get_key("bec")
    assert get_key("REF_becs").name == "born_charges"


def test_append_keeps_old_frames(tmp_path, labelled_frame):
    path = tmp_path / "a.xyz"
    for _ in range(3):
        io.append(path, labelled_frame)
    assert len(io.read(path)) == 3


def test_failed_write_leaves_file_intact(tmp_path, labelled_frame):
    path = tmp_path / "a.xyz"
    io.write(path, labelled_frame)
    before = path.read_bytes()
    with pytest.raises(AttributeError):
        io.write(path, [labelled_frame, object()])  # type: ignore[list-item]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.xyz"]


def test_bad_shape_names_file_and_frame(tmp_path, labelled_frame):
    raw = labelled_frame.copy()
    raw.new_array("born_charge", raw.arrays.pop("born_charges").reshape(len(raw), 9)[:, :6].copy())
    path = tmp_path / "six.xyz"
    io.write(path, labelled_frame)
    ase_write(path, raw, format="extxyz", append=True)
    with pytest.raises(
        DataError, match=r"six.xyz: frame 1: born_charges: expected shape \(5, 3, 3\)"
    ):
        io.read(path)


def test_read_union_joins_files_of_one_functional_and_refuses_two(tmp_path):
    """Several files read as one set (the paper's dataset D); PBEsol CaTiO3 and CaZrO3 mix,
    PBE BaTiO3 with them only on request; frames without a recorded functional are not checked."""
    catio3, cazro3 = ROOT / "data/catio3/catio3_5atom.xyz", ROOT / "data/cazro3/cazro3_5atom.xyz"
    batio3 = ROOT / "data/batio3/softmode.xyz"
    frames, source = io.read_union([catio3, cazro3])
    assert len(frames) == len(io.read(catio3)) + len(io.read(cazro3))
    assert {s for a in frames for s in a.get_chemical_symbols()} == {"Ca", "Ti", "Zr", "O"}
    assert source == f"{catio3} + {cazro3}"
    assert {io.functional(a) for a in frames} == {"PBEsol"}
    with pytest.raises(DataError, match=r"softmode.xyz: labelled with PBE, .*catio3_5atom.xyz "
                       r"with PBEsol"):  # fmt: skip
        io.read_union([catio3, batio3])
    assert len(io.read_union([catio3, batio3], allow_mixed_dft=True)[0]) == 20 + 9
    unknown = tmp_path / "nofunctional.xyz"
    io.write(unknown, [cubic_catio3()])
    assert len(io.read_union([batio3, unknown])[0]) == 10
    assert io.read_union(catio3)[1] == str(catio3)
