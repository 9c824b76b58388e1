"""Foundation-model baselines, offline: CHGNet (weights in its PyPI package), MACE-MP from a file,
and SevenNet-0 (weights in its PyPI package) from another Python environment.

SevenNet-0 needs e3nn >= 0.5, which cannot share an environment with mace-torch 0.3.16 (e3nn
0.4.4): ``sevennet:PYTHON`` runs it in a worker process of the interpreter PYTHON, where
``pip install torch==2.13.0 sevenn==0.13.0`` has been done, through :class:`WorkerCalculator`.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from bornfield.errors import BornfieldError

# The worker: builds ``module:factory(**kwargs)`` once, then answers one JSON line per structure.
_WORKER = """
import importlib, json, sys
from ase import Atoms
mod, _, name = sys.argv[1].partition(":")
calc = getattr(importlib.import_module(mod), name)(**json.loads(sys.argv[2]))
print("ready", flush=True)
for line in sys.stdin:
    q = json.loads(line)
    a = Atoms(q["numbers"], positions=q["positions"], cell=q["cell"], pbc=q["pbc"])
    a.calc = calc
    r = {"energy": float(a.get_potential_energy()), "forces": a.get_forces().tolist()}
    if all(q["pbc"]):
        r["stress"] = a.get_stress().tolist()
    print(json.dumps(r), flush=True)
"""


class WorkerCalculator(Calculator):
    """An ASE calculator computed by another Python interpreter (one that can hold a model this
    environment cannot): ``factory`` (``"module:callable"``) is called there once with
    ``kwargs``, then every structure goes over a pipe as one JSON line and comes back as
    energy, forces and (periodic cells) stress."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, python: str, factory: str, kwargs: dict | None = None, **kw):
        super().__init__(**kw)
        self.python = python
        # its messages go to a file, not a pipe: a full pipe would stall a chatty worker
        self._err = tempfile.TemporaryFile(mode="w+")
        try:
            self._proc = subprocess.Popen(
                [python, "-c", _WORKER, factory, json.dumps(kwargs or {})],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
            )  # fmt: skip
        except OSError as exc:
            raise BornfieldError(f"{python}: cannot start it ({exc.strerror})") from None
        if self._proc.stdout.readline().strip() != "ready":
            self._fail(f"could not build {factory}")

    def _fail(self, what: str) -> None:
        self._proc.kill()
        self._proc.wait()
        self._err.seek(0)
        err = self._err.read().strip().splitlines()
        raise BornfieldError(f"{self.python}: {what}: {err[-1] if err else 'no message'}")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        q = {"numbers": a.numbers.tolist(), "positions": a.positions.tolist(),
             "cell": a.cell[:].tolist(), "pbc": a.pbc.tolist()}  # fmt: skip
        try:
            self._proc.stdin.write(json.dumps(q) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self._fail("the worker stopped")
        r = json.loads(line)
        self.results = {"energy": r["energy"], "forces": np.array(r["forces"])}
        if "stress" in r:
            self.results["stress"] = np.array(r["stress"])

    def close(self) -> None:
        """Ends the worker (also when the calculator is garbage-collected)."""
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=30)

    def __del__(self):
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()


@contextmanager
def _float32_default():
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _chgnet_class():
    from chgnet.model.dynamics import CHGNetCalculator

    class Float32CHGNet(CHGNetCalculator):
        """CHGNet computes in float32 and fails ("expected m1 and m2 to have the same dtype")
        when torch's default dtype is float64, as mace-torch's ``MACECalculator`` sets it:
        each call runs with float32 as the default and restores it."""

        def calculate(self, *args, **kwargs):
            with _float32_default():
                return super().calculate(*args, **kwargs)

    return Float32CHGNet


def load_baseline(spec: str, device: str = "cpu"):
    """An ASE calculator for ``chgnet``, ``mace-mp:PATH`` (a MACE-MP-0 model file) or
    ``sevennet:PYTHON`` (SevenNet-0 in the interpreter PYTHON, which has sevenn installed)."""
    name, _, arg = spec.partition(":")
    if name == "chgnet":
        try:
            chgnet = _chgnet_class()
        except ImportError:
            raise BornfieldError(
                "CHGNet is not installed: pip install 'bornfield[baselines]'"
            ) from None
        with _float32_default():
            return chgnet(use_device=device, check_cuda_mem=False)
    if name == "mace-mp":
        if not arg or not Path(arg).is_file():
            raise BornfieldError(f"mace-mp needs a model file: mace-mp:PATH (got {arg or 'none'})")
        from mace.calculators import MACECalculator

        return MACECalculator(model_paths=arg, device=device, default_dtype="float64")
    if name == "sevennet":
        if not arg:
            raise BornfieldError(
                "SevenNet-0 needs e3nn >= 0.5 and cannot run beside mace-torch 0.3.16: "
                "sevennet:PYTHON, an interpreter with `pip install torch==2.13.0 sevenn==0.13.0`"
            )
        return WorkerCalculator(
            arg, "sevenn.calculator:SevenNetCalculator", {"model": "7net-0", "device": device}
        )
    raise BornfieldError(
        f"unknown baseline {spec!r}; choose chgnet, mace-mp:PATH or sevennet:PYTHON"
    )
