"""Foundation-model baselines, offline: CHGNet (weights in its PyPI package), MACE-MP from a file.

SevenNet-0 needs e3nn >= 0.5, which cannot share an environment with mace-torch 0.3.16; run it in
its own environment and compare with ``bornfield evaluate ff --json`` output.
"""

from __future__ import annotations

from pathlib import Path

from bornfield.errors import BornfieldError


def load_baseline(spec: str, device: str = "cpu"):
    """An ASE calculator for ``chgnet`` or ``mace-mp:PATH`` (a MACE-MP-0 model file)."""
    name, _, arg = spec.partition(":")
    if name == "chgnet":
        try:
            from chgnet.model.dynamics import CHGNetCalculator
        except ImportError:
            raise BornfieldError(
                "CHGNet is not installed: pip install 'bornfield[baselines]'"
            ) from None
        return CHGNetCalculator(use_device=device, check_cuda_mem=False)
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
