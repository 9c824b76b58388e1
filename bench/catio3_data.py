"""The CaTiO3 dataset files and their held-out label ids, shared by the CaTiO3 benches.

The ids were fixed in `data/catio3/CARD.md` before any model was trained: 5-atom batch 1:
4, 9, 14, 19; batch 2: every fifth from 4; 20-atom MD snapshots: 5, 11.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_IDS = {
    ROOT / "data/catio3/catio3_5atom.xyz": (4, 9, 14, 19),
    ROOT / "data/catio3/catio3_5atom_batch2.xyz": tuple(range(4, 40, 5)),
    ROOT / "data/catio3/catio3_20atom_md.xyz": (5, 11),
}
FIVE_ATOM = {path: ids for path, ids in TEST_IDS.items() if "5atom" in path.name}
