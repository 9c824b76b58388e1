"""Structures to label from molecular dynamics: thermal snapshots, sparsified.

Any ASE calculator drives the MD: a foundation model (CHGNet ships its weights in its PyPI
package and runs offline), a MACE-MP file, or bornfield's own force field once one exists.
Snapshots are taken every ``interval`` steps after an equilibration and thinned by
farthest-point sampling (:func:`bornfield.data.splits.farthest_point_sampling`) so that the
expensive DFT labels go to structures that differ most.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from bornfield.data.splits import farthest_point_sampling
from bornfield.errors import BornfieldError


def load_md_calculator(spec: str, device: str = "cpu"):
    """``chgnet``, ``mace-mp:PATH``, or the path of a bornfield/MACE ``.model`` file."""
    if Path(spec).is_file():
        from bornfield.models.force_field import load_calculator

        return load_calculator(spec, device=device)
    from bornfield.models.baselines import load_baseline

    return load_baseline(spec, device=device)


def md_snapshots(
    atoms: Atoms,
    calc,
    temperatures: Sequence[float],
    n_per_temperature: int,
    interval: int = 20,
    equilibration: int = 200,
    timestep_fs: float = 2.0,
    friction_per_fs: float = 0.02,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[Atoms]:
    """Langevin MD of ``atoms`` at each temperature; ``n_per_temperature`` frames from each.

    Each frame's ``info`` records ``md_temperature`` (K), ``md_step`` and ``md_seed``; the frames
    carry no labels (positions and cell only).
    """
    if n_per_temperature < 1 or interval < 1 or equilibration < 0:
        raise BornfieldError("md snapshots need n >= 1, interval >= 1 and equilibration >= 0")
    if any(not np.isfinite(t) or t <= 0 for t in temperatures):
        raise BornfieldError(f"temperatures must be positive, got {list(temperatures)}")
    frames: list[Atoms] = []
    for k, t in enumerate(temperatures):
        a = atoms.copy()
        a.calc = calc
        rng = np.random.default_rng([seed, k])
        thermalize_momenta(a, t, rng=rng)
        Stationary(a)
        dyn = Langevin(
            a,
            timestep=timestep_fs * units.fs,
            temperature_K=t,
            friction=friction_per_fs / units.fs,
            rng=rng,
        )
        dyn.run(equilibration)
        for i in range(n_per_temperature):
            dyn.run(interval)
            if not np.isfinite(a.positions).all():
                raise BornfieldError(f"MD at {t:g} K blew up at step {dyn.nsteps}")
            snap = Atoms(a.symbols, positions=a.positions, cell=a.cell, pbc=a.pbc)
            snap.wrap()
            snap.info.update(md_temperature=float(t), md_step=int(dyn.nsteps), md_seed=seed)
            frames.append(snap)
            if log:
                log(
                    f"{t:g} K: snapshot {i + 1}/{n_per_temperature} (T_inst "
                    f"{a.get_temperature():.0f} K)"
                )
    return frames


def sparsify(
    frames: Sequence[Atoms], n: int, seed: int = 0, reference: Sequence[Atoms] = ()
) -> list[Atoms]:
    """The n most mutually distant frames (farthest-point sampling on RDF descriptors), and
    farthest from the ``reference`` frames (an existing dataset) if given."""
    if n >= len(frames):
        return list(frames)
    return [frames[i] for i in farthest_point_sampling(frames, n, seed=seed, reference=reference)]
