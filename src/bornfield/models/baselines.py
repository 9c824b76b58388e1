"""Foundation-model baselines, offline: CHGNet (weights in its PyPI package), MACE-MP from a file.

SevenNet-0 needs e3nn >= 0.5, which cannot share an environment with mace-torch 0.3.16; run it in
its own environment and compare with ``bornfield evaluate ff --json`` output.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from bornfield.errors import BornfieldError


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
    """An ASE calculator for ``chgnet`` or ``mace-mp:PATH`` (a MACE-MP-0 model file)."""
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
        raise BornfieldError(
            "SevenNet-0 needs e3nn >= 0.5 and cannot run beside mace-torch 0.3.16; "
            "evaluate it in its own environment"
        )
    raise BornfieldError(f"unknown baseline {spec!r}; choose chgnet or mace-mp:PATH")
