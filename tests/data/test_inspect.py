"""`bornfield data inspect`: on the shared third-party BaTiO3 set (allegro-pol, MIT) and the
shipped CaTiO3 frames."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from ase.units import GPa
from helpers import ROOT, run_cli

from bornfield.data import io
from bornfield.data.inspect import FRAME_HEADER, frame_rows, summarize


def test_batio3_summary_numbers(batio3_path):
    s = summarize(io.read(batio3_path), str(batio3_path))
    assert s.n_frames == 59 and s.n_atoms == (135, 135)
    np.testing.assert_allclose(s.zstar_diag["Ti"], [5.8, 5.9, 4.5], atol=0.1)
    np.testing.assert_allclose(s.zstar_diag["Ba"], [2.70, 2.70, 2.85], atol=0.03)
    np.testing.assert_allclose(s.zstar_diag["O"], [-2.8, -2.9, -2.5], atol=0.1)
    assert s.zstar_range["O"][0] == pytest.approx(-5.9, abs=0.1)
    assert s.zstar_range["O"][1] == pytest.approx(-1.4, abs=0.1)
    assert s.asr_residuals.max() < 1e-6
    # apical and equatorial O of the tetragonal cell are told apart
    assert len(s.zstar_sites["O"]) == 2


def test_inspect_cli_with_plot(batio3_path, tmp_path):
    png = tmp_path / "b.png"
    r = run_cli("data", "inspect", str(batio3_path), "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert "frames: 59" in r.stdout and "Ti  (+5.84, +5.86, +4.48)" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dft_settings_are_listed_and_mixed_meshes_flagged():
    """The shipped CaTiO3 frames share one setting; a frame whose k-mesh differs is flagged
    (energies from two meshes of one cell differ by meV/atom, more than a model's error)."""
    frames = io.read(ROOT / "data" / "catio3" / "catio3_5atom.xyz")
    s = summarize(frames)
    assert s.dft_settings == {
        "abinit PBEsol (libxc ixc -116133), ecut 45 Ha, k-mesh 5×5×5": len(frames)
    }
    assert not s.mixed_settings and "WARNING" not in str(s)
    prov = json.loads(frames[3].info["provenance"])
    prov["kptrlatt"] = [4, 0, 0, 0, 4, 0, 0, 0, 4]
    frames[3].info["provenance"] = json.dumps(prov)
    s = summarize(frames)
    assert s.mixed_settings == [5] and len(s.dft_settings) == 2
    assert "WARNING: frames of 5 atoms" in str(s)


def test_pressure_is_minus_dE_dV():
    """The pressure of a frame is −dE/dV (finite difference of EMT energies under isotropic
    strain), so the sign convention of the stored stress cannot flip unnoticed."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from bornfield.data.inspect import pressure_gpa

    def labelled(a0: float):
        atoms = bulk("Cu", "fcc", a=a0, cubic=True)
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.info["stress"] = atoms.get_stress(voigt=False)
        return atoms

    for a0 in (3.45, 3.70):  # compressed and stretched
        h = 1e-4
        lo, mid, hi = labelled(a0 - h), labelled(a0), labelled(a0 + h)
        dE_dV = (hi.info["energy"] - lo.info["energy"]) / (hi.get_volume() - lo.get_volume())
        p_fd = -dE_dV / GPa
        assert pressure_gpa(mid) == pytest.approx(p_fd, rel=1e-4)
        assert np.sign(p_fd) == (1 if a0 < 3.6 else -1)


def test_frame_rows_match_the_labels(tmp_path):
    """`--frames` prints one row per frame: its label id, force components, pressure, raw ASR
    residual, ε∞ and the DFT wall time of its provenance."""
    path = ROOT / "data" / "cazro3" / "cazro3_5atom.xyz"
    frames = io.read(path)
    rows = frame_rows(frames)
    assert [r.label_id for r in rows] == [a.info["label_id"] for a in frames]
    a, r = frames[-1], rows[-1]
    assert r.force_max == pytest.approx(np.abs(a.arrays["forces"]).max())
    z = a.arrays["born_charges"]
    assert r.asr == pytest.approx(np.abs(z.sum(axis=0)).max())
    assert r.wall_s == json.loads(a.info["provenance"])["wall_time_s"]
    assert r.wall_s == pytest.approx(sum(r.stage_wall_s.values()), abs=5)
    np.testing.assert_allclose(r.epsilon_diag, np.diag(a.info["epsilon_inf"]))
    out = run_cli("data", "inspect", str(path), "--frames")
    assert out.returncode == 0, out.stderr
    table = out.stdout.split(FRAME_HEADER)[1].strip().splitlines()
    assert len(table) == len(frames)
    assert table[-1].split()[1] == str(a.info["label_id"])
    assert "DFT wall time per frame (s)" in out.stdout and "pressure" in out.stdout


def test_card_tables_are_current():
    """Each dataset card's per-frame table is what `data inspect --frames` prints for the shipped
    file, so a card number cannot drift from the data (`python data/card_tables.py` rewrites)."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "data" / "card_tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for card in ("catio3", "cazro3"):
        assert "<!-- frames: data/" in (ROOT / "data" / card / "CARD.md").read_text()
    # a stale table (here: one frame's row lost) is caught and rewritten
    spec = importlib.util.spec_from_file_location("card_tables", ROOT / "data" / "card_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = (ROOT / "data" / "cazro3" / "CARD.md").read_text()
    rows = mod.BLOCK.search(text).group(0).splitlines()
    stale = text.replace("\n".join(rows), "\n".join(rows[:-2] + rows[-1:]))
    assert stale != text and mod.rewrite(stale) == text


def test_inspect_several_files_as_one_set(tmp_path):
    """Two batches are summarized (and plotted) as one set; `--frames` gives one table each."""
    a = ROOT / "data" / "catio3" / "catio3_5atom.xyz"
    b = ROOT / "data" / "cazro3" / "cazro3_5atom.xyz"
    n_a, n_b = len(io.read(a)), len(io.read(b))
    png = tmp_path / "both.png"
    r = run_cli("data", "inspect", str(a), str(b), "--frames", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert f"frames: {n_a + n_b} " in r.stdout
    assert f"Ca {n_a + n_b}, Ti {n_a}, O {3 * (n_a + n_b)}, Zr {n_b}" in r.stdout
    assert r.stdout.count(FRAME_HEADER) == 2 and f"{a}:" in r.stdout and f"{b}:" in r.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"
