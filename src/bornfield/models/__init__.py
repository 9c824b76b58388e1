"""Models: the MACE force field (mace-torch), the equivariant Z* model (e3nn), baselines.

Importing this package sets two process-wide defaults that every model here relies on:
- ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``: e3nn 0.4.4 cannot import under torch >= 2.6 otherwise.
- e3nn code generation without TorchScript (``jit_script_fx=False``): with torch 2.13 on CPU the
  TorchScript versions of e3nn's tensor products are ~3x slower (measured here: a 640-atom MACE
  float32 energy+forces call 4.2 s -> 1.4 s on a loaded machine; the Z* network 1.1 s -> 0.27 s).
"""

import os

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import e3nn  # noqa: E402

e3nn.set_optimization_defaults(jit_script_fx=False)
