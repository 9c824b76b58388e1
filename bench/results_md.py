"""Benchmark results as Markdown: a rerun rewrites the generated part and keeps the notes.

Each results file is the generated part (title, machine, date, tables) followed by an optional
``## Notes`` section written by hand: what the numbers mean and how the machine was loaded.
A rerun keeps that section and puts a dated line at its top saying that the table above was
regenerated, so notes about an earlier run are not read as notes about the new numbers.
"""

from __future__ import annotations

import datetime
from pathlib import Path

NOTES = "## Notes"
STAMP = "_Table regenerated"


def write_results_md(path: Path, lines: list[str]) -> None:
    """Write the generated ``lines`` to ``path`` and keep the existing file's notes."""
    out = "\n".join(lines).rstrip("\n") + "\n"
    if path.exists():
        text = path.read_text()
        i = text.find("\n" + NOTES + "\n")
        if i >= 0:
            notes = text[i + len(NOTES) + 2 :].lstrip("\n").splitlines()
            if notes and notes[0].startswith(STAMP):
                notes = notes[1:]
            while notes and not notes[0].strip():
                notes = notes[1:]
            now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
            stamp = f"{STAMP} {now}; the notes below were written for an earlier run._"
            out += "\n" + NOTES + "\n\n" + "\n".join([stamp, "", *notes]).rstrip("\n") + "\n"
    path.write_text(out)
