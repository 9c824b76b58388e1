"""`bornfield train bec`, `evaluate bec` (JSON, parity, k-fold, learning curve) and `scan`."""

from __future__ import annotations

import json

import pytest
from helpers import BATIO3, run_cli

from bornfield.data import io


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    if not BATIO3.is_file():
        pytest.skip("shared BaTiO3 data missing")
    d = tmp_path_factory.mktemp("bec")
    frames = io.read(BATIO3)
    io.write(d / "train.xyz", frames[:6])
    io.write(d / "test.xyz", frames[6:8])
    r = run_cli("train", "bec", "--data", str(d / "train.xyz"), "--out", str(d / "m"),
                "--epochs", "2", "--channels", "4")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return d


def test_evaluate_json_and_plot(small_set):
    d = small_set
    js, png = d / "m.json", d / "parity.png"
    r = run_cli("evaluate", "bec", "--model", str(d / "m"), "--data", str(d / "test.xyz"),
                "--json", str(js), "--plot", str(png))  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads(js.read_text())["model"]
    assert {"bec_mae_e", "bec_mae_Ti_e", "bec_mae_xy_e", "bec_rmse_O_e"} <= set(m)
    assert png.read_bytes()[:4] == b"\x89PNG" and "per element: Ba" in r.stdout


@pytest.mark.slow
def test_kfold_and_learning_curve(small_set):
    d = small_set
    js = d / "cv.json"
    r = run_cli("evaluate", "bec", "--data", str(d / "train.xyz"), "--folds", "2", "--epochs", "1",
                "--channels", "4", "--out", str(d / "cv"), "--json", str(js),
                "--learning-curve", "2,4", "--workers", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(js.read_text())
    assert len(res["folds"]) == 2 and "bec_mae_e_std" in res["model"]
    assert [row["n_train"] for row in res["learning_curve"]] == [2, 4]
    assert (d / "cv" / "learning_curve.png").is_file()


def test_scan_with_dft_points(small_set, tmp_path):
    d = small_set
    base = io.read(BATIO3)[0]
    io.write(tmp_path / "s.xyz", base)
    r = run_cli("scan", "--model", str(d / "m"), "--structure", str(tmp_path / "s.xyz"),
                "--atom", "27", "--direction", "z", "--amplitudes=-0.1,0,0.1",
                "--dft", str(BATIO3), "--plot", str(tmp_path / "scan.png"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Z*[27] diag") == 3 and (tmp_path / "scan.png").is_file()


def test_missing_labels_and_bad_model(small_set, tmp_path):
    frames = io.read(BATIO3)[:3]
    del frames[2].arrays["born_charges"]
    io.write(tmp_path / "noz.xyz", frames)
    r = run_cli("train", "bec", "--data", str(tmp_path / "noz.xyz"), "--out", str(tmp_path / "m"))
    assert r.returncode == 2 and "frame 2: missing label 'born_charges'" in r.stderr
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    r = run_cli("evaluate", "bec", "--model", str(tmp_path / "junk.pt"), "--data", str(BATIO3))
    assert r.returncode == 2 and "junk.pt" in r.stderr and "Traceback" not in r.stderr


def test_epsilon_head_from_the_command_line(tmp_path):
    """`train bec --epsilon-head` needs ε∞ labels, and `evaluate bec` then reports ε∞ errors."""
    from pathlib import Path

    data = Path(__file__).parents[2] / "data" / "catio3" / "catio3_5atom.xyz"
    frames = io.read(data)[:3]
    io.write(tmp_path / "train.xyz", frames)
    no_eps = [a.copy() for a in frames]
    for a in no_eps:
        del a.info["epsilon_inf"]
    io.write(tmp_path / "no_eps.xyz", no_eps)
    r = run_cli("train", "bec", "--data", str(tmp_path / "no_eps.xyz"), "--out",
                str(tmp_path / "bad"), "--epsilon-head", "--epochs", "1")  # fmt: skip
    assert r.returncode != 0 and "no_eps.xyz" in r.stderr and "epsilon_inf" in r.stderr
    r = run_cli("train", "bec", "--data", str(tmp_path / "train.xyz"), "--out",
                str(tmp_path / "m"), "--epsilon-head", "--epochs", "2", "--channels", "4",
                "--valid-fraction", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    js = tmp_path / "m.json"
    r = run_cli("evaluate", "bec", "--model", str(tmp_path / "m"), "--data",
                str(tmp_path / "train.xyz"), "--json", str(js))  # fmt: skip
    assert r.returncode == 0 and "ε∞ MAE" in r.stdout, r.stderr
    assert json.loads(js.read_text())["model"]["eps_inf_mae"] > 0


def test_union_of_materials_trains_one_model(tmp_path):
    """`train bec --data A C`: the CaTiO3 and CaZrO3 sets (both PBEsol) train one model that
    knows Ti and Zr, with the acoustic sum rule on either material; `train ff` refuses to mix
    them with PBE BaTiO3 in a one-line error, before any training."""
    from helpers import ROOT

    from bornfield.models.bec import load_model, predict_bec

    catio3, cazro3 = ROOT / "data/catio3/catio3_5atom.xyz", ROOT / "data/cazro3/cazro3_5atom.xyz"
    r = run_cli("train", "bec", "--data", str(catio3), str(cazro3), "--out", str(tmp_path / "m"),
                "--epochs", "1", "--channels", "4")  # fmt: skip
    assert r.returncode == 0, r.stderr
    model = load_model(tmp_path / "m")
    for path in (catio3, cazro3):
        z = predict_bec(model, io.read(path)[0])
        assert z.shape == (5, 3, 3) and abs(z.sum(axis=0)).max() < 1e-5
    js = tmp_path / "eval.json"
    r = run_cli("evaluate", "bec", "--model", str(tmp_path / "m"), "--data", str(catio3),
                str(cazro3), "--json", str(js))  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(js.read_text())
    a, c = (res["by_file"][str(p)] for p in (catio3, cazro3))
    assert "bec_mae_Ti_e" in a and "bec_mae_Zr_e" in c and "bec_mae_Zr_e" not in a
    n = a["n_atoms"] + c["n_atoms"]
    mean = (a["n_atoms"] * a["bec_mae_e"] + c["n_atoms"] * c["bec_mae_e"]) / n
    assert res["model"]["n_atoms"] == n and res["model"]["bec_mae_e"] == pytest.approx(mean)
    assert str(cazro3) in r.stdout
    batio3 = ROOT / "data/batio3/softmode.xyz"
    r = run_cli("train", "ff", "--data", str(catio3), str(batio3), "--out", str(tmp_path / "ff"))
    assert r.returncode == 2 and "softmode.xyz: labelled with PBE" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "ff").exists()
