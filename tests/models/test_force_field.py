"""MACE force field: a real tiny training, then physics of the trained model and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import BATIO3, run_cli

from bornfield.data import io
from bornfield.label.generators import cubic_perovskite
from bornfield.models.force_field import load_calculator


@pytest.fixture
def tiny_model(tiny_ff):
    return tiny_ff


def _small_batio3(seed: int = 0):
    a = cubic_perovskite("BaTiO3").repeat((2, 1, 1))
    a.rattle(0.08, seed=seed)
    return a


def test_training_writes_models_and_card(tiny_model):
    import torch

    out, model = tiny_model
    assert model.is_file() and (out / "ff_float32.model").is_file()
    card = json.loads((out / "card.json").read_text())
    assert card["n_train_frames"] == 5 and card["elements"] == ["Ba", "O", "Ti"]
    assert card["trained_on_stress"] and card["epochs_run"] >= 1
    # training time is kept beside the checkpoints, so that a resumed run adds to it
    assert card["wall_time_s"] == float((out / "mace" / "wall_s").read_text()) > 0
    # trained with the fused convolution (mace_train), saved with mace-torch's layers
    m = torch.load(model, map_location="cpu", weights_only=False)
    assert all(type(b.conv_tp).__module__.startswith("e3nn") for b in m.interactions)
    assert "fused" in (out / "mace" / "train.log").read_text()
    calc = load_calculator(out)  # float32 for MD
    a = _small_batio3()
    a.calc = calc
    assert np.isfinite(a.get_potential_energy()) and a.get_forces().shape == (10, 3)


def test_rerun_of_a_finished_training_returns_it_untouched(tiny_model):
    """A finished training is not resumed: a resumed mace-torch run re-saves a changed model."""
    from bornfield.models.force_field import ff_preset, train_ff

    out, model = tiny_model
    before, log = model.read_bytes(), (out / "mace" / "train.log").read_text()
    cfg = ff_preset("fast", max_num_epochs=2, r_max=4.0)  # as the tiny_ff fixture
    assert train_ff(io.read(BATIO3)[:5], out, cfg, seed=0, log=lambda m: None) == model
    assert model.read_bytes() == before
    assert (out / "mace" / "train.log").read_text() == log


def test_forces_are_minus_energy_gradient(tiny_model):
    calc = load_calculator(tiny_model[1], dtype="float64")
    a = _small_batio3(1)
    a.calc = calc
    f = a.get_forces()
    h = 1e-4
    for k, c in [(0, 0), (1, 2), (4, 1)]:
        e = []
        for s in (+1, -1):
            b = a.copy()
            b.positions[k, c] += s * h
            b.calc = calc
            e.append(b.get_potential_energy())
        assert -(e[0] - e[1]) / (2 * h) == pytest.approx(f[k, c], abs=1e-6)


def test_stress_is_strain_derivative(tiny_model):
    calc = load_calculator(tiny_model[1], dtype="float64")
    a = _small_batio3(2)
    a.calc = calc
    sigma = a.get_stress(voigt=False)
    h = 1e-5
    for i, j in [(0, 0), (2, 2), (0, 1)]:
        e = []
        for s in (+1, -1):
            eps = np.eye(3)
            eps[i, j] += s * h / (2 if i != j else 1)
            eps[j, i] += s * h / 2 if i != j else 0
            b = a.copy()
            b.set_cell(a.cell[:] @ eps, scale_atoms=True)
            b.calc = calc
            e.append(b.get_potential_energy())
        fd = (e[0] - e[1]) / (2 * h) / a.get_volume()
        assert fd == pytest.approx(sigma[i, j], abs=1e-7)


def test_missing_forces_is_a_clear_error(tmp_path):
    frames = io.read(BATIO3)[:2]
    del frames[1].arrays["forces"]
    p = tmp_path / "noforces.xyz"
    io.write(p, frames)
    r = run_cli("train", "ff", "--data", str(p), "--out", str(tmp_path / "m"))
    assert r.returncode == 2 and "frame 1: missing label 'forces'" in r.stderr
    assert "Traceback" not in r.stderr


def test_evaluate_json_and_unknown_element(tiny_model, tmp_path):
    out, _ = tiny_model
    test = tmp_path / "test.xyz"
    io.write(test, io.read(BATIO3)[5:8])
    js, png = tmp_path / "m.json", tmp_path / "parity.png"
    r = run_cli("evaluate", "ff", "--model", str(out), "--data", str(test), "--json", str(js),
                "--plot", str(png))  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads(js.read_text())["model"]
    assert {"energy_mae_meV_per_atom", "force_mae_meV_per_A", "stress_mae_GPa",
            "force_mae_Ti_meV_per_A"} <= set(m)  # fmt: skip
    assert png.read_bytes()[:4] == b"\x89PNG"
    cto = cubic_perovskite("CaTiO3")
    cto.info["energy"] = -100.0
    cto.arrays["forces"] = np.zeros((5, 3))
    bad = tmp_path / "cto.xyz"
    io.write(bad, cto)
    r = run_cli("evaluate", "ff", "--model", str(out), "--data", str(bad))
    assert r.returncode == 2 and "element(s) Ca unknown to the force field" in r.stderr

    # two files: scored as one set (the same numbers as one file) and file by file
    parts = [tmp_path / "a.xyz", tmp_path / "b.xyz"]
    io.write(parts[0], io.read(test)[:1])
    io.write(parts[1], io.read(test)[1:])
    js2 = tmp_path / "m2.json"
    r = run_cli("evaluate", "ff", "--model", str(out), "--data", *map(str, parts), "--json",
                str(js2))  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(js2.read_text())
    assert res["data"] == list(map(str, parts)) and list(res["by_file"]) == res["data"]
    f = [res["by_file"][str(q)]["model"]["force_mae_meV_per_A"] for q in parts]
    assert res["model"]["force_mae_meV_per_A"] == pytest.approx(m["force_mae_meV_per_A"])
    assert m["force_mae_meV_per_A"] == pytest.approx((f[0] + 2 * f[1]) / 3)
    assert f[0] != pytest.approx(f[1])
    r = run_cli("evaluate", "ff", "--model", str(out), "--data", str(parts[0]), str(bad))
    assert r.returncode == 2 and f"{bad}: frame 0: element(s) Ca unknown" in r.stderr


def test_too_few_frames_for_validation_is_a_clear_error(tmp_path):
    p = tmp_path / "one.xyz"
    io.write(p, io.read(BATIO3)[:1])
    r = run_cli("train", "ff", "--data", str(p), "--out", str(tmp_path / "m"))
    assert r.returncode == 2 and "1 frame(s): need at least 2" in r.stderr
    assert not (tmp_path / "m" / "ff.model").exists()


def test_float32_training_still_ships_a_float64_model(tmp_path):
    """`dtype="float32"` trains in float32 (mace-torch's --default_dtype); ff.model stays
    float64 for relaxations and phonons, ff_float32.model float32 for MD, the two agreeing."""
    import torch

    from bornfield.models.force_field import ff_preset, train_ff

    cfg = ff_preset("fast", max_num_epochs=1, r_max=4.0, dtype="float32")
    model = train_ff(io.read(BATIO3)[:3], tmp_path, cfg, seed=0, log=lambda m: None)
    debug = next((tmp_path / "mace" / "logs").glob("*debug.log")).read_text()
    assert "default_dtype='float32'" in debug
    for name, dtype in (("ff.model", torch.float64), ("ff_float32.model", torch.float32)):
        m = torch.load(tmp_path / name, map_location="cpu", weights_only=False)
        assert {p.dtype for p in m.parameters()} == {dtype}, name
    a = _small_batio3()
    e = []
    for d in ("float64", "float32"):
        a.calc = load_calculator(tmp_path, dtype=d)
        e.append(a.get_potential_energy())
    assert model == tmp_path / "ff.model" and abs(e[0] - e[1]) / len(a) < 1e-4


def test_frame_weights_reach_mace(tmp_path):
    """At batch size 1 mace-torch weighs every frame alike; `weight_by_atoms` gives each frame a
    weight ∝ its atom count (mean 1), times the frame's own ``config_weight``, and mace-torch's
    reader sees exactly those weights."""
    from ase.io import read
    from mace.data.utils import KeySpecification, config_from_atoms

    from bornfield.models.force_field import write_mace_file

    frames = io.read(BATIO3)[:2] + [_small_batio3()]  # 135, 135 and 10 atoms
    frames[2].info["energy"], frames[2].arrays["forces"] = -80.0, np.zeros((10, 3))
    frames[1].info["config_weight"] = 3.0
    per_atom = np.array([135, 135, 10]) / (280 / 3)
    for by_atoms, want in ((True, per_atom * [1, 3, 1]), (False, [1, 3, 1])):
        path = tmp_path / f"{by_atoms}.xyz"
        write_mace_file(frames, path, with_stress=False, weight_by_atoms=by_atoms)
        keys = KeySpecification(info_keys={"energy": "REF_energy"}, arrays_keys={})
        got = [config_from_atoms(a, keys).weight for a in read(path, ":")]
        assert got == pytest.approx(want)


def test_training_starts_from_an_initial_model(tiny_model, tmp_path):
    """`init`: mace-torch's naive fine-tuning. The architecture is the initial model's (r_max 4.0
    here, though the preset says 4.5), and with a vanishing learning rate the trained weights
    are the initial ones (only the E0s, fitted on the new data, differ)."""
    import torch

    from bornfield.models.force_field import ff_preset, reference_energies, train_ff

    _, init = tiny_model
    cfg = ff_preset("fast", max_num_epochs=1, lr=1e-12, swa_start_fraction=0, ema_decay=0)
    model = train_ff(io.read(BATIO3)[5:8], tmp_path, cfg, seed=1, log=lambda m: None, init=init)
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["initialized_from"] == str(init.resolve())
    a, b = (torch.load(p, map_location="cpu", weights_only=False) for p in (init, model))
    assert float(b.r_max) == float(a.r_max) == 4.0
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert set(pa) <= set(pb)  # mace-torch's fine-tuning also trains the Bessel frequencies
    assert max((pa[k] - pb[k]).abs().max().item() for k in pa) < 1e-6
    # the E0s are the new data's (mace-torch alone would keep the initial model's)
    e0s = reference_energies(io.read(BATIO3)[5:8], cfg.cohesive_energy)
    want = [e0s[int(z)] for z in b.atomic_numbers]
    np.testing.assert_allclose(b.atomic_energies_fn.atomic_energies.flatten(), want, rtol=1e-12)


def test_bad_initial_model_is_a_clear_error(tiny_model, tmp_path):
    from bornfield.models.force_field import train_ff

    frames = io.read(BATIO3)[:3]
    with pytest.raises(Exception, match="no such model file"):
        train_ff(frames, tmp_path / "a", "fast", init=tmp_path / "none.model")
    (tmp_path / "junk.model").write_text("not a model")
    with pytest.raises(Exception, match="not a MACE model"):
        train_ff(frames, tmp_path / "b", "fast", init=tmp_path / "junk.model")
    catio3 = cubic_perovskite("CaTiO3")
    catio3.info["energy"], catio3.arrays["forces"] = -100.0, np.zeros((5, 3))
    with pytest.raises(Exception, match="elements Ca unknown to the initial model"):
        train_ff([catio3, catio3.copy()], tmp_path / "c", "fast", init=tiny_model[1])
    assert not (tmp_path / "c" / "ff.model").exists()


@pytest.mark.slow
def test_cross_validation_trains_one_model_per_fold(tmp_path):
    """`evaluate ff --folds 2` trains a model per fold at the asked precision and reports the
    mean and spread of the held-out errors over the folds."""
    data = tmp_path / "d.xyz"
    io.write(data, io.read(BATIO3)[:6])
    js = tmp_path / "cv.json"
    r = run_cli("evaluate", "ff", "--data", str(data), "--folds", "2", "--epochs", "1",
                "--dtype", "float32", "--out", str(tmp_path / "cv"), "--json", str(js))  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(js.read_text())
    assert [f["n_frames"] for f in res["folds"]] == [3, 3]
    assert res["model"]["n_folds"] == 2 and res["model"]["force_mae_meV_per_A_std"] >= 0
    for i in range(2):
        card = json.loads((tmp_path / "cv" / f"fold{i}" / "card.json").read_text())
        assert card["preset"]["dtype"] == "float32" and card["n_train_frames"] == 3


@pytest.mark.slow
def test_learning_curve_trains_nested_sets_against_one_test_split(tmp_path):
    """`evaluate ff --learning-curve 2,4,9`: one model per size that the pool holds (9 > 5 is
    dropped), each scored on the same held-out frame, with a log-log plot."""
    data = tmp_path / "d.xyz"
    io.write(data, io.read(BATIO3)[:6])
    js = tmp_path / "lc.json"
    r = run_cli("evaluate", "ff", "--data", str(data), "--learning-curve", "2,4,9",
                "--epochs", "1", "--dtype", "float32", "--out", str(tmp_path / "lc"),
                "--json", str(js))  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(js.read_text())["learning_curve"]
    assert [(row["n_train"], row["n_test"]) for row in rows] == [(2, 1), (4, 1)]
    assert all(row["force_mae_meV_per_A"] > 0 for row in rows)
    assert (tmp_path / "lc" / "learning_curve.png").is_file() and "n_train    4" in r.stdout
    energies = {}
    for n in (2, 4):
        card = json.loads((tmp_path / "lc" / f"n{n}" / "card.json").read_text())
        assert card["n_train_frames"] == n
        energies[n] = {
            a.info["energy"] for a in io.read(tmp_path / "lc" / f"n{n}" / "mace" / "train.xyz")
        }
    assert len(energies[2]) == 2 and energies[2] < energies[4]  # nested
