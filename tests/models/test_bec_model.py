"""Born-charge model physics: equivariance, inversion, permutations, translations, ASR, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import BATIO3, cubic_catio3, random_born_charges
from scipy.spatial.transform import Rotation

from bornfield.data import io
from bornfield.errors import BornfieldError
from bornfield.label.generators import cubic_perovskite
from bornfield.models.bec import (
    build_graph,
    load_model,
    predict_bec,
    predict_epsilon,
    run_model,
    save_model,
)
from bornfield.models.bec_model import BECConfig, BECModel, spherical_harmonics_l2
from bornfield.models.bec_train import BECTrainConfig, train_bec


@pytest.fixture(
    scope="module",
    params=[{"vector_messages": False, "element_linear": False}, {}],
    ids=["scalar-msg-shared", "default"],
)
def model(request) -> BECModel:
    torch.manual_seed(0)
    cfg = BECConfig(elements=("Ca", "O", "Ti"), channels=8, **request.param)
    m = BECModel(cfg, {"Ca": 2.6, "Ti": 7.0, "O": -3.2})
    with torch.no_grad():  # random, non-trivial weights everywhere
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.double().eval()


def _structure(seed: int = 0):
    a = cubic_perovskite("CaTiO3").repeat((2, 1, 1))
    a.set_cell(
        a.cell[:] @ np.array([[1.0, 0.03, 0.0], [0.0, 1.0, 0.02], [0.01, 0.0, 1.0]]),
        scale_atoms=True,
    )
    a.rattle(0.1, seed=seed)
    return a


def test_spherical_harmonics_match_e3nn():
    from e3nn import o3

    v = torch.randn(50, 3, dtype=torch.float64)
    ref = o3.spherical_harmonics([0, 1, 2], v, normalize=True, normalization="component")
    torch.testing.assert_close(torch.cat(spherical_harmonics_l2(v), dim=1), ref)


def _rotated(a, r: np.ndarray):
    b = a.copy()
    b.set_cell(a.cell[:] @ r.T, scale_atoms=False)
    b.positions = a.positions @ r.T
    return b


def test_rotation_equivariance(model):
    a = _structure()
    z = predict_bec(model, a)
    for seed in range(3):
        r = Rotation.random(random_state=seed).as_matrix()
        np.testing.assert_allclose(predict_bec(model, _rotated(a, r)), r @ z @ r.T, atol=1e-8)


def test_inversion_permutation_translation(model):
    a = _structure(1)
    z = predict_bec(model, a)
    assert np.abs(z - z.transpose(0, 2, 1)).max() > 1e-4  # Z* is not forced symmetric
    inv = a.copy()
    inv.set_cell(-a.cell[:], scale_atoms=False)
    inv.positions = -a.positions
    np.testing.assert_allclose(predict_bec(model, inv), z, atol=1e-10)  # 1o x 1o is even
    perm = np.random.default_rng(0).permutation(len(a))
    np.testing.assert_allclose(predict_bec(model, a[perm]), z[perm], atol=1e-10)
    moved = a.copy()
    moved.positions += [0.7, -1.3, 2.1]
    np.testing.assert_allclose(predict_bec(model, moved), z, atol=1e-10)


def test_batch_equals_single_structures(model):
    """Atoms are grouped by element inside the model: a batch of structures (one without Ca,
    elements interleaved) gives each structure's own Z*, in its own atom order."""
    from bornfield.models.bec import collate

    a, b = _structure(3), _structure(4)
    b = b[[k for k in range(len(b)) if b[k].symbol != "Ca"]]
    a = a[np.random.default_rng(1).permutation(len(a))]
    with torch.no_grad():
        batch = run_model(model, collate([build_graph(x, model, torch.float64) for x in (a, b)]))
    np.testing.assert_allclose(batch[: len(a)].numpy(), predict_bec(model, a), atol=1e-10)
    np.testing.assert_allclose(batch[len(a) :].numpy(), predict_bec(model, b), atol=1e-10)


def test_acoustic_sum_rule_and_position_gradient(model):
    a = _structure(2)
    z = predict_bec(model, a)
    assert np.abs(z.sum(axis=0)).max() < 1e-10
    g = build_graph(a, model, torch.float64)
    g.pos.requires_grad_(True)
    out = run_model(model, g)
    (grad,) = torch.autograd.grad(out[1, 2, 2], g.pos)  # dZ*_Ti,zz / dR
    assert torch.isfinite(grad).all() and grad.abs().max() > 0


@pytest.mark.parametrize("smooth", [True, False])
def test_born_charges_are_continuous_when_a_neighbour_leaves_the_cutoff(smooth):
    """An edge at r_max contributes nothing: Z* changes by O(δ) when a pair crosses it. The
    option exists for models saved before it; without it the radial MLP's biases make Z* jump."""
    torch.manual_seed(0)
    cfg = BECConfig(elements=("Ca", "O", "Ti"), channels=8, smooth_cutoff=smooth)
    m = BECModel(cfg, {"Ca": 2.6, "Ti": 7.0, "O": -3.2})
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    m = m.double().eval()
    a = cubic_perovskite("CaTiO3").repeat((2, 2, 2))  # a = 3.80 Å: O–O at √2·a and Ti–Ti at a
    a.rattle(0.02, seed=1)
    i, j = 0, 1
    d = a.get_distance(i, j, mic=True, vector=True)
    r = np.linalg.norm(d)
    z = []
    for target in (cfg.r_max - 1e-5, cfg.r_max + 1e-5):  # move atom j along the pair vector
        b = a.copy()
        b.positions[j] += d / r * (target - r)
        z.append(predict_bec(m, b))
    jump = np.abs(z[1] - z[0]).max()
    if smooth:
        assert jump < 1e-6, jump
    else:
        assert jump > 1e-3, jump  # the model before the option: a step at the cutoff


def test_unknown_element(model):
    from bornfield.errors import BornfieldError

    with pytest.raises(BornfieldError, match="element\\(s\\) Ba unknown to the Born-charge model"):
        predict_bec(model, cubic_perovskite("BaTiO3"))


def test_training_lowers_error_and_resumes(tmp_path):
    if not BATIO3.is_file():
        pytest.skip("shared BaTiO3 data missing")
    frames = io.read(BATIO3)[:6]
    logs: list[str] = []
    cfg = BECTrainConfig(max_epochs=4, batch_size=2, lr=5e-3)
    path = train_bec(frames[:4], tmp_path, {"channels": 8}, cfg, valid=frames[4:], log=logs.append)
    maes = [float(line.split("valid MAE ")[1].split()[0]) for line in logs if "valid MAE" in line]
    assert len(maes) == 4 and min(maes[1:]) < maes[0]
    model = load_model(path)
    assert np.abs(predict_bec(model, frames[5]).sum(axis=0)).max() < 1e-6
    more = BECTrainConfig(max_epochs=6, batch_size=2, lr=5e-3)
    logs.clear()
    train_bec(frames[:4], tmp_path, {"channels": 8}, more, valid=frames[4:], log=logs.append)
    assert (
        logs[0].startswith("resuming from epoch 4")
        and sum(m.startswith("epoch") for m in logs) == 2
    )
    save_model(model, tmp_path / "copy.pt")
    z1 = predict_bec(load_model(tmp_path / "copy.pt"), frames[5])
    np.testing.assert_allclose(z1, predict_bec(model, frames[5]), atol=1e-6)
    # another architecture in the same folder is refused, not mixed with the checkpoint
    with pytest.raises(BornfieldError, match="checkpoint of another model or data"):
        train_bec(frames[:4], tmp_path, {"channels": 4}, more, valid=frames[4:], log=logs.append)
    # no improvement within `patience` epochs ends the training early
    logs.clear()
    still = BECTrainConfig(max_epochs=20, batch_size=2, lr=0.0, patience=2)  # nothing moves
    train_bec(frames[:4], tmp_path / "p", {"channels": 8}, still, valid=frames[4:], log=logs.append)
    assert "early stop: no improvement for 2 epochs" in logs
    assert sum(m.startswith("epoch") for m in logs) == 3  # the first, then two without gain


@pytest.fixture(scope="module")
def eps_model() -> BECModel:
    torch.manual_seed(1)
    m = BECModel(BECConfig(elements=("Ca", "O", "Ti"), channels=8, epsilon_head=True))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
        m.eps_iso.fill_(6.0)
    return m.double().eval()


def test_epsilon_head_symmetric_equivariant_intensive(eps_model):
    a = _structure(5)
    eps = predict_epsilon(eps_model, a)
    assert np.abs(eps - eps.T).max() < 1e-12  # symmetric by construction (0e + 2e)
    assert np.abs(eps - np.trace(eps) / 3 * np.eye(3)).max() > 1e-4  # anisotropic: not trivial
    for seed in range(2):
        r = Rotation.random(random_state=seed).as_matrix()
        eps_r = predict_epsilon(eps_model, _rotated(a, r))
        np.testing.assert_allclose(eps_r, r @ eps @ r.T, atol=1e-10)
    perm = np.random.default_rng(2).permutation(len(a))
    np.testing.assert_allclose(predict_epsilon(eps_model, a[perm]), eps, atol=1e-12)
    # intensive: a supercell of the same crystal has the same ε∞
    np.testing.assert_allclose(predict_epsilon(eps_model, a.repeat((1, 2, 1))), eps, atol=1e-10)
    # the head does not change Z*, and the calculator returns both
    from bornfield.models.bec import BECCalculator

    calc = BECCalculator(eps_model)
    np.testing.assert_allclose(calc.get_property("born_charges", a), predict_bec(eps_model, a))
    np.testing.assert_allclose(calc.get_property("epsilon_inf", a), eps)


def test_epsilon_head_learns_catio3_labels(tmp_path):
    """Trained on the shipped CaTiO3 DFPT frames, the head fits ε∞ better than the best
    constant (the mean isotropic ε∞ of the set), and the evaluation reports it."""
    from bornfield.analysis.bec_errors import evaluate_bec
    from bornfield.models.bec import predict_epsilon as pe

    data = Path(__file__).parents[2] / "data" / "catio3" / "catio3_5atom.xyz"
    frames = io.read(data)[:8]
    eps = np.stack([a.info["epsilon_inf"] for a in frames])
    baseline = np.abs(eps - np.trace(eps, axis1=1, axis2=2).mean() / 3 * np.eye(3)).mean()
    cfg = BECTrainConfig(max_epochs=60, valid_fraction=0.0, lr=1e-2)
    path = train_bec(frames, tmp_path, {"channels": 8, "epsilon_head": True}, cfg, log=print)
    model = load_model(path)
    fitted = np.abs(np.stack([pe(model, a) for a in frames]) - eps).mean()
    assert fitted < 0.5 * baseline
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["best_valid_eps_inf_mae"] < baseline
    io.write(tmp_path / "frames.xyz", frames)
    m = evaluate_bec(tmp_path / "frames.xyz", model=path, out_dir=tmp_path / "eval")["model"]
    assert abs(m["eps_inf_mae"] - fitted) < 1e-6


def test_old_model_format_is_refused(tmp_path):
    from bornfield.errors import BornfieldError

    payload = {"config": {"elements": ["O"]}, "state_dict": {}, "meta": {}}  # format 1: no key
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(BornfieldError, match="old.pt: Born-charge model file format 1.*retrain"):
        load_model(tmp_path / "old.pt")


def test_training_without_validation_split(tmp_path):
    """valid_fraction 0 (datasets too small to spare a frame): every frame trains and selects."""
    frames = [cubic_catio3() for _ in range(2)]
    for i, a in enumerate(frames):
        a.rattle(0.05, seed=i)
        a.arrays["born_charges"] = random_born_charges(5, seed=i)
    logs: list[str] = []
    cfg = BECTrainConfig(max_epochs=2, valid_fraction=0.0)
    train_bec(frames, tmp_path, {"channels": 4}, cfg, log=logs.append)
    assert "no validation split" in logs[0]
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["n_train_frames"] == card["n_valid_frames"] == 2
    # the default split of a small dataset holds out too few frames to steer by: a warning
    logs.clear()
    train_bec(frames, tmp_path / "split", {"channels": 4}, BECTrainConfig(max_epochs=1),
              log=logs.append)  # fmt: skip
    assert "warning: 1 validation frame(s) steer the learning rate" in logs[0]
