"""The CaTiO3 dataset files and their held-out label ids (`data/catio3/splits.json`, fixed in
`data/catio3/CARD.md` before any model was trained), shared by the CaTiO3 benches."""

from __future__ import annotations

from pathlib import Path

from bornfield.data.splits import held_out_ids

ROOT = Path(__file__).resolve().parents[1]
TEST_IDS = held_out_ids(ROOT / "data/catio3/splits.json")
FIVE_ATOM = {path: ids for path, ids in TEST_IDS.items() if "5atom" in path.name}
