"""The lean MACE calculator gives mace-torch's MACECalculator results, computing less."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mace.calculators import MACECalculator

from bornfield.errors import BornfieldError
from bornfield.label.generators import cubic_perovskite
from bornfield.models.mace_calculator import MACEForceField

MODEL = Path(__file__).resolve().parents[2] / "models/batio3/ff/ff.model"


def _cell():
    a = cubic_perovskite("BaTiO3").repeat((2, 2, 1))
    a.rattle(0.05, seed=1)
    strain = np.array([[0.01, 0.005, 0], [0.005, -0.01, 0.002], [0, 0.002, 0.003]])
    a.set_cell(a.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
    return a


def test_equals_mace_calculator():
    ref, lean = _cell(), _cell()
    ref.calc = MACECalculator(model_paths=str(MODEL), device="cpu", default_dtype="float64")
    lean.calc = MACEForceField(MODEL, dtype="float64", tabulate=False)
    f = lean.get_forces()
    assert not lean.calc.stress_wanted and "stress" not in lean.calc.results  # NVT: no virial
    np.testing.assert_allclose(lean.get_potential_energy(), ref.get_potential_energy(), atol=1e-9)
    np.testing.assert_allclose(f, ref.get_forces(), atol=1e-9)
    np.testing.assert_allclose(lean.get_stress(), ref.get_stress(), atol=1e-10)
    assert np.abs(ref.get_stress()).max() > 1e-4  # the strained cell is stressed
    lean.positions[0, 2] += 0.01
    lean.get_forces()
    assert "stress" in lean.calc.results  # once asked for, computed in the same pass


def test_unknown_element():
    a = cubic_perovskite("CaTiO3")
    a.calc = MACEForceField(MODEL)
    with pytest.raises(BornfieldError, match="Ca unknown"):
        a.get_forces()


def test_fused_convolution_equals_e3nn(tmp_path):
    """The fused scalar convolution gives e3nn's results: on the shipped model (both
    interactions fused) and on a model with vector features (only the first is), in a periodic
    cell and in a cluster, whose atoms have very different numbers of neighbours."""
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    model = modules.ScaleShiftMACE(
        r_max=4.5,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=2,
        interaction_cls=modules.RealAgnosticResidualInteractionBlock,
        interaction_cls_first=modules.RealAgnosticInteractionBlock,
        num_interactions=2,
        num_elements=3,
        hidden_irreps=o3.Irreps("8x0e+8x1o"),
        MLP_irreps=o3.Irreps("8x0e"),
        atomic_energies=np.zeros(3),
        avg_num_neighbors=20.0,
        atomic_numbers=[8, 22, 56],
        correlation=2,
        gate=torch.nn.functional.silu,
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    ).double()
    vector_model = tmp_path / "vector.model"
    torch.save(model, vector_model)
    cluster = _cell()
    cluster.pbc = False
    for path, n_fused in ((MODEL, 2), (vector_model, 1)):
        for atoms in (_cell(), cluster):
            ref = MACEForceField(path, dtype="float64", fuse=False)
            fused = MACEForceField(path, dtype="float64")
            assert (ref.fused, fused.fused) == (0, n_fused)
            f_ref = ref.get_forces(atoms)
            assert np.abs(f_ref).max() > 1e-3
            np.testing.assert_allclose(fused.get_forces(atoms), f_ref, atol=1e-10)
            e = fused.get_potential_energy(atoms)
            np.testing.assert_allclose(e, ref.get_potential_energy(atoms), atol=1e-10)
            if atoms.pbc.all():
                s_ref = ref.get_stress(atoms)
                np.testing.assert_allclose(fused.get_stress(atoms), s_ref, atol=1e-12)


def test_fused_model_trains_like_mace_and_unfuses():
    """Training runs the fused model (`bornfield.models.mace_train`): its state_dict has
    mace-torch's keys (checkpoints load either way), the parameter gradients of an energy,
    force and stress loss equal mace-torch's, and unfusing restores mace-torch's modules."""
    import copy

    import torch
    from mace import data as mdata
    from mace.tools import torch_geometric, utils

    from bornfield.models.mace_fused import fuse_scalar_convolutions, unfuse_scalar_convolutions

    ref = torch.load(MODEL, map_location="cpu", weights_only=False).double()
    fused = copy.deepcopy(ref)
    assert fuse_scalar_convolutions(fused) == 2
    assert fused.state_dict().keys() == ref.state_dict().keys()
    z = utils.AtomicNumberTable([int(x) for x in ref.atomic_numbers])
    cfg = mdata.config_from_atoms(_cell(), mdata.KeySpecification(info_keys={}, arrays_keys={}))
    data = mdata.AtomicData.from_config(cfg, z_table=z, cutoff=float(ref.r_max), heads=["Default"])
    grads = []
    for m in (ref, fused):
        batch = torch_geometric.Batch.from_data_list([data]).to_dict()
        batch = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
        out = m(batch, training=True, compute_force=True, compute_stress=True)
        loss = out["energy"].sum() + out["forces"].pow(2).sum() + 1e3 * out["stress"].pow(2).sum()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
    assert grads[0].abs().max() > 1e-2
    torch.testing.assert_close(grads[1], grads[0], atol=1e-10, rtol=1e-9)
    assert unfuse_scalar_convolutions(fused) == 2
    for a, b in zip(fused.interactions, ref.interactions, strict=True):
        assert type(a.conv_tp) is type(b.conv_tp) and not hasattr(a, "conv_fusion")
    assert fused.state_dict().keys() == ref.state_dict().keys()


def test_radial_table_equals_the_mlp():
    """The tabulated radial weights give the MLP's energy, forces and stress (float64) in a
    strained periodic cell and in a cluster with short and long edges; a coarse table does not
    (so the comparison can fail), and undone models are untouched."""
    from bornfield.models.radial_table import RadialTable, tabulate_radial

    cluster = _cell()
    cluster.pbc = False
    for atoms in (_cell(), cluster):
        ref = MACEForceField(MODEL, dtype="float64", tabulate=False)
        tab = MACEForceField(MODEL, dtype="float64")
        assert (ref.tabulated, tab.tabulated) == (0, 2)
        assert isinstance(tab.model.interactions[1].conv_tp_weights, RadialTable)
        f_ref, f = ref.get_forces(atoms), tab.get_forces(atoms)
        assert np.abs(f_ref).max() > 1e-2
        np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-7)  # measured: 3e-8 eV/Å
        e_ref = ref.get_potential_energy(atoms)
        np.testing.assert_allclose(tab.get_potential_energy(atoms), e_ref, rtol=0, atol=1e-7)
        if atoms.pbc.all():
            np.testing.assert_allclose(tab.get_stress(atoms), ref.get_stress(atoms), atol=1e-10)
    coarse = MACEForceField(MODEL, dtype="float64", tabulate=False)
    assert tabulate_radial(coarse.model, n=8) == 2
    assert tabulate_radial(coarse.model) == 0  # already tabulated
    assert np.abs(coarse.get_forces(_cell()) - ref.get_forces(_cell())).max() > 1e-4


@pytest.mark.filterwarnings("error:torch.compile failed")
def test_compiled_energy_and_forces():
    """torch.compile (float64): energy and forces equal the eager model's and -dE/dx by finite
    differences, also after the edge count changes (dynamic shapes), in one graph (a graph
    break costs a fixed ~5 ms per step); the stress (NpT) equals the eager model's and the
    strain derivative of the energy by finite differences."""
    from torch._dynamo.utils import counters

    counters.clear()
    a, b = _cell(), _cell()
    a.calc = MACEForceField(MODEL, dtype="float64", compile=True)
    b.calc = MACEForceField(MODEL, dtype="float64")
    for shift in (0.0, 0.3):  # 0.3 Å: neighbours enter and leave the cutoff
        a.positions[3] += shift
        b.positions[3] += shift
        f = a.get_forces()
        np.testing.assert_allclose(a.get_potential_energy(), b.get_potential_energy(), atol=1e-8)
        np.testing.assert_allclose(f, b.get_forces(), atol=1e-8)
    assert a.calc.compiled is not None and a.calc._compiled_ok  # compiled, not fallen back
    assert not counters["graph_break"], dict(counters["graph_break"])
    h, (i, k) = 1e-4, (2, 1)
    e = []
    for s in (h, -h):
        c = a.copy()
        c.calc = a.calc
        c.positions[i, k] += s
        e.append(c.get_potential_energy())
    assert abs(-(e[0] - e[1]) / (2 * h) - f[i, k]) < 1e-5
    stress = a.get_stress(voigt=False)
    np.testing.assert_allclose(stress, b.get_stress(voigt=False), atol=1e-10)
    assert np.abs(stress).max() > 1e-4  # the strained cell is stressed
    for m, n in ((0, 0), (1, 2)):  # σ_mn = (1/V) dE/dε_mn, symmetric strain
        e = []
        for s in (h, -h):
            eps = np.eye(3)
            eps[m, n] += s / 2
            eps[n, m] += s / 2
            c = a.copy()
            c.calc = a.calc
            c.set_cell(a.cell[:] @ eps, scale_atoms=True)
            e.append(c.get_potential_energy())
        assert abs((e[0] - e[1]) / (2 * h) / a.get_volume() - stress[m, n]) < 1e-7
    f_again = a.get_forces()  # forces from the stress pass equal the force-only pass's
    np.testing.assert_allclose(f_again, b.get_forces(), atol=1e-8)


def test_failed_compile_falls_back_to_eager():
    """A compiler that fails at the first call (as without a C++ compiler) gives a warning and
    the eager model's forces; a failure after a compiled call has worked is raised."""

    def broken(data):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    a, b = _cell(), _cell()
    a.calc = MACEForceField(MODEL, dtype="float64")
    a.calc.compiled = broken
    b.calc = MACEForceField(MODEL, dtype="float64")
    with pytest.warns(UserWarning, match="torch.compile failed .*runs eagerly"):
        f = a.get_forces()
    assert a.calc.compiled is None
    np.testing.assert_allclose(f, b.get_forces(), atol=1e-10)
    c = _cell()
    c.calc = MACEForceField(MODEL, dtype="float64")
    c.calc.compiled = lambda data: c.calc.model(data, compute_force=False)["energy"]
    c.get_forces()
    c.calc.compiled = broken
    c.positions[0] += 0.01
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler"):
        c.get_forces()
