"""``torch.compile`` of a MACE model's energy, for long MD runs on CPU.

The model is rebuilt from its file with mace-torch's own recipe for compilation (``extract_load``
with e3nn's TorchScript code generation off, then ``simplify``), given bornfield's fused
convolutions and radial tables, and compiled with dynamic shapes (edge and atom counts change
without recompiling). Only the energy is compiled: forces (−dE/dx) and stress (dE/dε / V) come
from autograd outside the compiled graph (mace-torch's in-graph ``autograd.grad`` returned zero
forces under torch 2.13 on CPU). The model compiles to one graph: the receiver table of the
fused convolutions, whose width depends on the data, is an opaque operator with a dynamic size
(``receiver_sum``), not a graph break; with one break per interaction dynamo fell back to eager
for the model's forward and compiled only its parts (9.8 against 3.5–3.9 ms per 20-atom step). The
first call compiles (≈ 8 s, ≈ 60 s with a cold inductor cache; C++ compiler needed); later
field-MD steps of Pnma CaTiO3 are 2.15–2.2× faster on 2 threads and 1.8–2.2× on one, in NVT
and NpT (bench/results/fieldmd_catio3*.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bornfield.models.mace_fused import fuse_scalar_convolutions
from bornfield.models.radial_table import tabulate_radial


def compile_energy(
    loaded: torch.nn.Module, dtype: torch.dtype, device: str, fuse: bool, tabulate: bool
) -> Callable[[dict], torch.Tensor]:
    """A compiled function: MACE input dictionary -> energy per graph (differentiable).
    ``loaded``: the model as read from its file (before fusing or tabulating)."""
    from mace.tools.compile import disable_e3nn_codegen, simplify
    from mace.tools.scripts_utils import extract_model

    with disable_e3nn_codegen():
        model = extract_model(loaded, map_location=device)
    # rebuilt in torch's default dtype: take the weights again, unrounded
    model = model.to(dtype=dtype).eval()
    model.load_state_dict(loaded.state_dict())
    for p in model.parameters():
        p.requires_grad_(False)
    if fuse:
        fuse_scalar_convolutions(model)
    if tabulate:
        tabulate_radial(model)
    # no guards on the model's modules and weights (this private copy never changes): ≈ 2 % of
    # a 160-atom step; the inputs' shapes and dtypes stay guarded
    compiled = torch.compile(
        simplify(model),
        dynamic=True,
        options={"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe},
    )

    flags = (
        (torch._dynamo.config, "capture_dynamic_output_shape_ops"),  # the receiver table
        (torch._functorch.config, "autograd_cache_allow_custom_autograd_functions"),
    )

    def energy(data: dict) -> torch.Tensor:
        # set and restored by hand: ``config.patch`` costs ≈ 0.2 ms per MD step, this ≈ 10 µs;
        # AOT autograd caches graphs with ``autograd.Function``s (receiver_sum's) only if told
        # (without: ≈ 20 s to compile at every start instead of ≈ 8 s)
        old = [getattr(cfg, name) for cfg, name in flags]
        for cfg, name in flags:
            setattr(cfg, name, True)
        try:
            out = compiled(data, compute_force=False, compute_stress=False, training=False)
        finally:
            for (cfg, name), value in zip(flags, old, strict=True):
                setattr(cfg, name, value)
        return out["energy"]

    return energy
