"""Foundation-model labels for pretraining (``bornfield label --calculator``)."""

from __future__ import annotations

import json

import numpy as np
from helpers import run_cli

from bornfield.data import io
from bornfield.label.generators import cubic_perovskite, perturbed


def test_chgnet_labels_equal_chgnet_and_resume(tmp_path):
    import torch

    from bornfield.models.baselines import load_baseline

    frames = perturbed(cubic_perovskite("CaTiO3"), 3, rattle=0.05, strain=0.01, seed=4)
    io.write(tmp_path / "s.xyz", frames[:2])
    out = tmp_path / "chgnet.xyz"
    r = run_cli("label", str(tmp_path / "s.xyz"), "--out", str(out), "--calculator", "chgnet")
    assert r.returncode == 0, r.stderr
    io.write(tmp_path / "s.xyz", frames)  # one more structure: only it is labelled
    r = run_cli("label", str(tmp_path / "s.xyz"), "--out", str(out), "--calculator", "chgnet")
    assert r.returncode == 0 and "done: 1 new" in r.stdout, r.stderr
    labelled = io.read(out)
    assert [a.info["label_id"] for a in labelled] == [0, 1, 2]
    # CHGNet needs torch's default dtype float32, as in the CLI; other tests may leave float64
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        calc = load_baseline("chgnet")
        for a, b in zip(frames, labelled, strict=True):
            np.testing.assert_allclose(b.positions, a.positions, atol=1e-7)
            a.calc = calc
            assert abs(b.info["energy"] - a.get_potential_energy()) < 1e-5
            np.testing.assert_allclose(b.arrays["forces"], a.get_forces(), atol=1e-5)
            stress = np.asarray(b.info["stress"]).reshape(3, 3)
            np.testing.assert_allclose(stress, a.get_stress(voigt=False), atol=1e-6)
    finally:
        torch.set_default_dtype(dtype)
        assert "not DFT" in json.loads(b.info["provenance"])["kind"]
