"""Rewrite the per-frame label tables in the dataset cards from the shipped files.

Each table sits under a marker line naming its file, e.g.

    <!-- frames: data/cazro3/cazro3_5atom.xyz -->

followed by a ```text block, which this script replaces with the output of
`bornfield data inspect FILE --frames` (one row per frame). Run it after each labelled frame:

    python data/card_tables.py          # rewrite the tables
    python data/card_tables.py --check  # exit 1 if a table is out of date (used by the tests)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bornfield.data import io
from bornfield.data.inspect import FRAME_HEADER, frame_rows

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- frames: (?P<file>\S+) -->\n)```text\n.*?```\n", re.S)


def table(path: Path) -> str:
    rows = frame_rows(io.read(path))
    return "```text\n" + "\n".join([FRAME_HEADER, *map(str, rows)]) + "\n```\n"


def rewrite(text: str) -> str:
    """The card text with every marked table regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + table(ROOT / m.group("file")), text)


def main(check: bool) -> int:
    stale = []
    for card in sorted(ROOT.glob("data/*/CARD.md")):
        text = card.read_text()
        new = rewrite(text)
        if new != text:
            stale.append(card.relative_to(ROOT))
            if not check:
                card.write_text(new)
    for card in stale:
        print(f"{card}: per-frame table {'out of date' if check else 'rewritten'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
