"""Foundation-model labels for pretraining (``bornfield label --calculator``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from helpers import run_cli

from bornfield.data import io
from bornfield.label.generators import cubic_perovskite, perturbed

#: CHGNet's own energy, forces and stress, in a fresh process (CHGNet needs torch's float32
#: default dtype, which other tests in this process may have changed)
REFERENCE = """
import json, sys
from bornfield.data import io
from bornfield.models.baselines import load_baseline
calc = load_baseline("chgnet")
out = []
for a in io.read(sys.argv[1]):
    a.calc = calc
    stress = a.get_stress(voigt=False).tolist()
    out.append([float(a.get_potential_energy()), a.get_forces().tolist(), stress])
print(json.dumps(out))
"""


def test_chgnet_labels_equal_chgnet_and_resume(tmp_path):
    frames = perturbed(cubic_perovskite("CaTiO3"), 3, rattle=0.05, strain=0.01, seed=4)
    io.write(tmp_path / "s.xyz", frames[:2])
    out = tmp_path / "chgnet.xyz"
    r = run_cli("label", str(tmp_path / "s.xyz"), "--out", str(out), "--calculator", "chgnet")
    assert r.returncode == 0, r.stderr[-2000:]
    io.write(tmp_path / "s.xyz", frames)  # one more structure: only it is labelled
    r = run_cli("label", str(tmp_path / "s.xyz"), "--out", str(out), "--calculator", "chgnet")
    assert r.returncode == 0 and "done: 1 new" in r.stdout, r.stdout[-500:] + r.stderr[-2000:]
    labelled = io.read(out)
    assert [a.info["label_id"] for a in labelled] == [0, 1, 2]
    ref = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(tmp_path / "s.xyz")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ref.returncode == 0, ref.stderr[-2000:]
    reference = json.loads(ref.stdout.strip().splitlines()[-1])
    for a, b, (energy, forces, stress) in zip(frames, labelled, reference, strict=True):
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-7)
        assert abs(b.info["energy"] - energy) < 1e-4
        np.testing.assert_allclose(b.arrays["forces"], forces, atol=1e-4)
        np.testing.assert_allclose(np.reshape(b.info["stress"], (3, 3)), stress, atol=1e-5)
        assert "not DFT" in json.loads(b.info["provenance"])["kind"]
