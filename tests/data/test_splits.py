"""Seeded splits, k-fold partitions and farthest-point sparsification."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import cubic_catio3, run_cli

from bornfield.data import io
from bornfield.data.splits import (
    farthest_point_sampling,
    held_out_ids,
    kfold,
    random_split,
    split_by_label_id,
    split_files,
)


def test_random_split_is_seeded_and_disjoint():
    tr, te = random_split(50, 0.2, seed=3)
    assert len(te) == 10 and len(tr) == 40
    assert not set(tr) & set(te) and set(tr) | set(te) == set(range(50))
    tr2, te2 = random_split(50, 0.2, seed=3)
    assert (te == te2).all() and (tr == tr2).all()
    assert not (random_split(50, 0.2, seed=4)[1] == te).all()


def test_kfold_partitions():
    folds = kfold(23, 5, seed=1)
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests) == list(range(23))
    for tr, te in folds:
        assert not set(tr) & set(te) and len(tr) + len(te) == 23
    with pytest.raises(ValueError):
        kfold(3, 5)


def _snapshots(n: int, amp: float = 0.03) -> list:
    frames = []
    for i in range(n):
        a = cubic_catio3().repeat(2)
        a.rattle(amp, seed=i)
        frames.append(a)
    return frames


def test_fps_picks_outliers_first_and_distinct():
    frames = _snapshots(20)
    outlier = cubic_catio3(4.2).repeat(2)  # strained cell: far from the rest
    frames.insert(7, outlier)
    idx = farthest_point_sampling(frames, 5, seed=0)
    assert len(set(idx.tolist())) == 5
    assert 7 in idx[:2]
    assert (farthest_point_sampling(frames, 5, seed=0) == idx).all()


def test_fps_covers_better_than_random():
    """Max-min distance of the FPS pick beats a random pick of the same size."""
    from bornfield.data.splits import rdf_descriptor

    frames = _snapshots(10, 0.02) + _snapshots(10, 0.15)
    x = np.stack([rdf_descriptor(a, ["Ca", "O", "Ti"]) for a in frames])

    def covering_radius(sel):
        d = np.linalg.norm(x[:, None] - x[sel][None], axis=2)
        return d.min(axis=1).max()

    fps = farthest_point_sampling(frames, 4)
    rnd = [np.random.default_rng(s).choice(20, 4, replace=False) for s in range(20)]
    assert covering_radius(fps) <= np.median([covering_radius(r) for r in rnd])


def test_fps_against_reference_frames_fills_what_they_lack():
    """With reference frames (an earlier batch), FPS first picks the candidates unlike them: a
    batch that already has the small-amplitude snapshots gets the large-amplitude ones, and
    candidates equal to a reference frame come last."""
    small, large = _snapshots(6, 0.02), _snapshots(6, 0.2)
    candidates = small + large
    idx = farthest_point_sampling(candidates, 6, reference=small)
    assert set(idx.tolist()) == set(range(6, 12))
    # with no reference the first pick is the outlier, as before
    assert farthest_point_sampling(candidates, 6).tolist() != idx.tolist()
    again = farthest_point_sampling(small[:3] + large[:1], 4, reference=small)
    assert again[0] == 3  # the one large snapshot first; copies of reference frames after it


def test_split_and_sparsify_cli(tmp_path):
    frames = _snapshots(6)
    for a in frames:
        a.info["energy"] = -1.0
    p = tmp_path / "md.xyz"
    io.write(p, frames)
    r = run_cli("data", "split", str(p), "--out-dir", str(tmp_path / "cv"), "--kfold", "3")
    assert r.returncode == 0, r.stderr
    assert sum(len(io.read(tmp_path / "cv" / f"fold{i}_test.xyz")) for i in range(3)) == 6
    r = run_cli("data", "sparsify", str(p), "-n", "3", "--out", str(tmp_path / "s.xyz"))
    assert r.returncode == 0 and len(io.read(tmp_path / "s.xyz")) == 3
    r = run_cli("data", "sparsify", str(p), "-n", "9", "--out", str(tmp_path / "s.xyz"))
    assert r.returncode == 2 and "cannot pick 9 of 6" in r.stderr
    io.write(tmp_path / "ref.xyz", frames[:3])
    r = run_cli("data", "sparsify", str(p), "-n", "3", "--out", str(tmp_path / "s.xyz"),
                "--reference", str(tmp_path / "ref.xyz"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    picked = io.read(tmp_path / "s.xyz")
    assert not any(np.allclose(a.positions, b.positions) for a in picked for b in frames[:3])


def test_split_by_label_id(tmp_path):
    frames = [cubic_catio3() for _ in range(6)]
    for i, a in enumerate(frames):
        a.info["label_id"] = [0, 1, 2, 4, 5, 9][i]
    path = tmp_path / "set.xyz"
    io.write(path, frames)
    out = tmp_path / "split"
    r = run_cli("data", "split", str(path), "--out-dir", str(out), "--test-ids", "4,9,14")
    assert r.returncode == 0, r.stderr
    assert [a.info["label_id"] for a in io.read(out / "test.xyz")] == [4, 9]
    assert [a.info["label_id"] for a in io.read(out / "train.xyz")] == [0, 1, 2, 5]
    with pytest.raises(ValueError, match="empty train or test"):
        split_by_label_id(frames, [7])


def test_split_files(tmp_path):
    """Each file with its own held-out ids; missing files skipped; no test frame is no error."""
    a, b = [cubic_catio3() for _ in range(3)], [cubic_catio3().repeat((2, 1, 1)) for _ in range(2)]
    for frames in (a, b):
        for i, x in enumerate(frames):
            x.info["label_id"] = i
    io.write(tmp_path / "a.xyz", a)
    io.write(tmp_path / "b.xyz", b)
    ids = {tmp_path / "a.xyz": (1, 7), tmp_path / "b.xyz": (4,), tmp_path / "none.xyz": (0,)}
    train, test = split_files(ids)
    assert [(x.info["source"], x.info["label_id"]) for x in test] == [("a.xyz", 1)]
    assert [(x.info["source"], len(x)) for x in train] == [("a.xyz", 5)] * 2 + [("b.xyz", 10)] * 2
    del a[0].info["label_id"]
    io.write(tmp_path / "a.xyz", a)
    with pytest.raises(ValueError, match="a.xyz: a frame without"):
        split_files(ids)


def test_held_out_ids(tmp_path):
    """The split file's names are relative to its folder; a broken file is named."""
    f = tmp_path / "splits.json"
    f.write_text('{"test_label_ids": {"a.xyz": [1, 7], "b.xyz": []}}')
    assert held_out_ids(f) == {tmp_path / "a.xyz": (1, 7), tmp_path / "b.xyz": ()}
    f.write_text('{"test_ids": {}}')
    with pytest.raises(ValueError, match="splits.json: not a split file"):
        held_out_ids(f)
