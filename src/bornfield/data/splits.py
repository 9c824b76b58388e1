"""Seeded train/test splits, k-fold partitions and farthest-point sparsification of snapshots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations_with_replacement
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list


def random_split(n: int, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with round(test_fraction * n) test items (at least one of each)."""
    if n < 2:
        raise ValueError(f"need at least 2 frames to split, got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test fraction must be in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(test_fraction * n)), n - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def split_by_label_id(frames: Sequence[Atoms], test_ids: Sequence[int]) -> tuple[list, list]:
    """Indices (train, test): test holds the frames whose ``info["label_id"]`` (their index in
    the labelled structures file) is in ``test_ids`` — a split fixed by the dataset card."""
    ids = [a.info.get("label_id") for a in frames]
    if any(i is None for i in ids):
        raise ValueError("frames without info['label_id'] cannot be split by id")
    wanted = {int(i) for i in test_ids}
    test = [k for k, i in enumerate(ids) if int(i) in wanted]
    if not test or len(test) == len(frames):
        raise ValueError(f"label ids {sorted(wanted)} leave an empty train or test set")
    return [k for k in range(len(frames)) if k not in test], test


def held_out_ids(path: str | Path) -> dict[Path, tuple[int, ...]]:
    """A dataset's validation split from its JSON file (``{"test_label_ids": {file: [ids]}}``,
    files relative to the JSON's folder), for :func:`split_files`."""
    import json

    path = Path(path)
    try:
        ids = json.loads(path.read_text())["test_label_ids"]
        return {path.parent / name: tuple(int(i) for i in v) for name, v in ids.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a split file ({type(exc).__name__}: {exc})") from None


def split_files(test_ids: Mapping[str | Path, Sequence[int]]) -> tuple[list[Atoms], list[Atoms]]:
    """Frames (train, test) of several dataset files, each with its own held-out label ids (as
    ``split_by_label_id``). Files not written yet are skipped; the test set may be empty (held-out
    structures not labelled yet). ``info["source"]`` names each frame's file."""
    from bornfield.data import io

    train: list[Atoms] = []
    test: list[Atoms] = []
    for path, ids in test_ids.items():
        path = Path(path)
        if not path.exists():
            continue
        wanted = {int(i) for i in ids}
        for a in io.read(path):
            if a.info.get("label_id") is None:
                raise ValueError(f"{path}: a frame without info['label_id'] cannot be split by id")
            a.info["source"] = path.name
            (test if int(a.info["label_id"]) in wanted else train).append(a)
    return train, test


def kfold(n: int, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) index pairs; the test sets partition range(n) into near-equal folds."""
    if not 2 <= k <= n:
        raise ValueError(f"k-fold needs 2 <= k <= n, got k={k}, n={n}")
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(perm, k)
    return [
        (np.sort(np.concatenate([f for j, f in enumerate(folds) if j != i])), np.sort(fold))
        for i, fold in enumerate(folds)
    ]


def rdf_descriptor(
    atoms: Atoms, species: Sequence[str], r_max: float = 6.0, n_bins: int = 48, width: float = 0.15
) -> np.ndarray:
    """Gaussian-smeared pair-distance histograms per element pair, per atom of the first element.

    Invariant to rotations, translations and permutations of like atoms; comparable between
    snapshots of the same composition (the use case: MD snapshots of one cell).
    """
    i, j, d = neighbor_list("ijd", atoms, r_max)
    z = np.asarray(atoms.get_chemical_symbols())
    centers = np.linspace(0.5, r_max, n_bins)
    blocks = []
    for a, b in combinations_with_replacement(sorted(species), 2):
        mask = ((z[i] == a) & (z[j] == b)) | ((z[i] == b) & (z[j] == a))
        g = np.exp(-0.5 * ((d[mask, None] - centers[None]) / width) ** 2).sum(axis=0)
        blocks.append(g / max(len(atoms), 1))
    return np.concatenate(blocks)


def farthest_point_sampling(
    frames: Sequence[Atoms],
    n: int,
    seed: int = 0,
    r_max: float = 6.0,
    reference: Sequence[Atoms] = (),
) -> np.ndarray:
    """Pick n of the frames, each the one farthest (descriptor distance) from those already picked.

    Without ``reference`` the first pick is the frame farthest from the mean descriptor, then
    greedy max-min. With ``reference`` (frames already in a dataset, e.g. earlier batches) every
    pick is the frame farthest from the reference frames and the picks before it, so a new
    batch fills what the dataset lacks. Ties are broken by the seeded order. Returns the picked
    indices in pick order.
    """
    if not 1 <= n <= len(frames):
        raise ValueError(f"cannot pick {n} of {len(frames)} frames")
    species = sorted({s for a in [*frames, *reference] for s in a.get_chemical_symbols()})
    x = np.stack([rdf_descriptor(a, species, r_max) for a in frames])
    order = np.random.default_rng(seed).permutation(len(frames))
    x = x[order]
    if len(reference):
        ref = np.stack([rdf_descriptor(a, species, r_max) for a in reference])
        dmin = np.linalg.norm(x[:, None] - ref[None], axis=2).min(axis=1)
        picked = []
    else:
        first = int(np.argmax(np.linalg.norm(x - x.mean(axis=0), axis=1)))
        picked = [first]
        dmin = np.linalg.norm(x - x[first], axis=1)
    while len(picked) < n:
        nxt = int(np.argmax(dmin))
        picked.append(nxt)
        dmin = np.minimum(dmin, np.linalg.norm(x - x[nxt], axis=1))
    return order[np.array(picked)]
