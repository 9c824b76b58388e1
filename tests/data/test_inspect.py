"""`bornfield data inspect`: on the shared third-party BaTiO3 set (allegro-pol, MIT) and the
shipped CaTiO3 frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import ROOT, run_cli

from bornfield.data import io
from bornfield.data.inspect import summarize


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
