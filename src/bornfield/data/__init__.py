"""Data layer: key registry, readers/writers, importers, validation, splits, sparsification."""

from bornfield.data.io import append, read, write
from bornfield.data.keys import KEYS, get_key
from bornfield.data.splits import farthest_point_sampling, kfold, random_split
from bornfield.data.validate import asr_residual, fix_asr, validate

__all__ = [
    "KEYS",
    "append",
    "asr_residual",
    "farthest_point_sampling",
    "fix_asr",
    "get_key",
    "kfold",
    "random_split",
    "read",
    "validate",
    "write",
]
