"""Errors that the CLI turns into one line and a non-zero exit (no traceback)."""

from __future__ import annotations


class BornfieldError(Exception):
    """Base for user-facing errors: the message is one line that names the file and the problem."""


class DataError(BornfieldError, ValueError):
    """A data file that cannot be read, or whose content fails validation."""

    def __init__(self, source: str, problem: str, frame: int | None = None):
        where = f"{source}: frame {frame}" if frame is not None else str(source)
        super().__init__(f"{where}: {problem}")
        self.source, self.frame, self.problem = str(source), frame, problem
