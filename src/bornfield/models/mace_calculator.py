"""A lean ASE calculator for one MACE model, for MD.

mace-torch's ``MACECalculator`` builds an ``AtomicData`` object and a torch-geometric batch on
every call and always computes the stress. Here the graph goes straight from a neighbour list
(vesin, ``neighbours``: 2.6–4× faster than matscipy's, 3–4 % of a step) into the model's input
dictionary (the one-hot species block is cached), and the stress (virial derivative) is
computed only once it has been asked for: NVT steps ask for
forces only; after the first request (NpT, cell relaxation) every call computes it in the same
pass, so that a later ``get_stress`` at the same geometry costs nothing. Convolutions with scalar
inputs run fused (``mace_fused``: steps 1.2–1.4× faster than with e3nn's tensor product at
160–1280 atoms), the radial MLPs are cubic-spline tables (``radial_table``: another 1.05–1.2×),
and freed memory stays in the process (``parallel.keep_freed_memory``: 1.1–1.4×;
bench/results/fieldmd*.md). Results equal ``MACECalculator``'s (tested; the tables to 3e-8 eV/Å
in forces); the model's weights and every other layer are mace-torch's, unchanged. With
``compile=True`` energy, forces and stress come from a ``torch.compile``-d copy
(``mace_compile``) by autograd outside the compiled graph; if compiling fails at the first call
(no C++ compiler, say), a warning says so and the model runs eagerly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from bornfield.calculators.state import ExactStateCheck
from bornfield.errors import BornfieldError
from bornfield.models.mace_fused import fuse_scalar_convolutions
from bornfield.models.neighbours import neighbour_pairs
from bornfield.models.radial_table import tabulate_radial
from bornfield.parallel import keep_freed_memory


class MACEForceField(ExactStateCheck):
    """Energy, forces and (on request) stress of a mace-torch model file."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model_path: str | Path,
        device: str = "cpu",
        dtype: str = "float32",
        fuse: bool | None = None,
        tabulate: bool | None = None,
        compile: bool = False,
    ):
        super().__init__()
        import torch

        keep_freed_memory()

        if dtype not in ("float32", "float64"):
            raise BornfieldError(f"dtype must be float32 or float64, got {dtype!r}")
        self.torch = torch
        self.device = device
        self.dtype = getattr(torch, dtype)
        model = torch.load(str(model_path), map_location=device, weights_only=False)
        model = model.to(dtype=self.dtype).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        fuse = device == "cpu" if fuse is None else fuse
        tabulate = device == "cpu" if tabulate is None else tabulate
        #: compiled energy for force-only calls (``mace_compile``), or None
        self.compiled = None
        self._compiled_ok = False  # whether a compiled call has succeeded (before: fall back)
        if compile:  # from the weights as read, before this copy is fused and tabulated
            from bornfield.models.mace_compile import compile_energy

            self.compiled = compile_energy(model, self.dtype, device, fuse, tabulate)
        #: interactions whose convolution runs fused (``mace_fused``; by default on CPU only,
        #: where it was measured)
        self.fused = fuse_scalar_convolutions(model) if fuse else 0
        #: interactions whose radial MLP is a cubic-spline table (``radial_table``; on CPU by
        #: default, where it was measured)
        self.tabulated = tabulate_radial(model) if tabulate else 0
        self.models = [model]  # the attribute name mace-torch's calculator uses
        self.model = model
        self.r_max = float(model.r_max)
        self.z_table = [int(z) for z in model.atomic_numbers]
        self._species: tuple[np.ndarray, object] | None = None  # (numbers, one-hot tensor)
        self.stress_wanted = False  # becomes True at the first stress request

    def _node_attrs(self, numbers: np.ndarray):
        if self._species is not None and np.array_equal(self._species[0], numbers):
            return self._species[1]
        index = {z: i for i, z in enumerate(self.z_table)}
        unknown = sorted(set(numbers.tolist()) - set(index))
        if unknown:
            from ase.data import chemical_symbols

            raise BornfieldError(
                "element(s) "
                + ", ".join(chemical_symbols[z] for z in unknown)
                + " unknown to the force field"
            )
        idx = self.torch.tensor([index[int(z)] for z in numbers], device=self.device)
        onehot = self.torch.nn.functional.one_hot(idx, len(self.z_table)).to(self.dtype)
        self._species = (numbers.copy(), onehot)
        return onehot

    def _compiled_call(self, data: dict, want_stress: bool) -> dict:
        """Energy, forces (and stress) from the compiled energy: −dE/dx and, for the stress,
        (1/V) dE/dε under a homogeneous strain ε of positions and cell (as mace-torch does)."""
        torch = self.torch
        positions = data["positions"].requires_grad_(True)
        inputs = [positions]
        if want_stress:
            strain = torch.zeros(3, 3, dtype=self.dtype, device=self.device, requires_grad=True)
            deform = torch.eye(3, dtype=self.dtype, device=self.device) + (strain + strain.T) / 2
            data = dict(data, positions=positions @ deform, cell=data["cell"] @ deform)
            data["shifts"] = data["unit_shifts"] @ data["cell"]
            inputs.append(strain)
        e = self.compiled(data)
        grads = torch.autograd.grad(e.sum(), inputs)
        out = {"energy": e, "forces": -grads[0]}
        if want_stress:
            volume = torch.linalg.det(data["cell"]).abs()
            out["stress"] = (grads[1] / volume)[None]
        return out

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        torch = self.torch
        atoms = self.atoms
        n = len(atoms)
        sender, receiver, shifts = neighbour_pairs(atoms, self.r_max)

        def t(a, dtype=self.dtype):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=self.device)

        cell = t(atoms.cell[:])
        unit_shifts = t(shifts)
        data = {
            "positions": t(atoms.positions),
            "node_attrs": self._node_attrs(atoms.numbers),
            "edge_index": t(np.stack([sender, receiver]), torch.long),
            "unit_shifts": unit_shifts,
            "shifts": unit_shifts @ cell,
            "cell": cell,
            "batch": torch.zeros(n, dtype=torch.long, device=self.device),
            "ptr": torch.tensor([0, n], dtype=torch.long, device=self.device),
            "head": torch.zeros(1, dtype=torch.long, device=self.device),
        }
        self.stress_wanted |= "stress" in properties
        want_stress = self.stress_wanted
        out = None
        if self.compiled is not None:
            try:
                out = self._compiled_call(data, want_stress)
            except Exception as exc:  # no C++ compiler, unsupported platform, ...
                if self._compiled_ok:  # it worked before: a real error, not the compiler
                    raise
                import warnings

                why = " ".join(str(exc).split())[:160]
                warnings.warn(
                    f"torch.compile failed ({type(exc).__name__}: {why}); "
                    "the force field runs eagerly",
                    stacklevel=2,
                )
                self.compiled = None
            self._compiled_ok = out is not None
        if out is None:
            out = self.model(data, compute_force=True, compute_stress=want_stress, training=False)
        energy = float(out["energy"].detach().cpu().item())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].detach().cpu().numpy().astype(float),
        }
        if want_stress:
            s = out["stress"].detach().cpu().numpy().astype(float)[0]
            self.results["stress"] = full_3x3_to_voigt_6_stress(s)
