"""DFT labels: ABINIT driver, resumable job queue and structure generators."""

from bornfield.label.abinit import PRESETS, AbinitSettings, LabelError, preset, run_abinit
from bornfield.label.generators import cubic_perovskite, displacement_scan, perturbed, pnma_catio3
from bornfield.label.queue import label_structures

__all__ = [
    "PRESETS",
    "AbinitSettings",
    "LabelError",
    "cubic_perovskite",
    "displacement_scan",
    "label_structures",
    "perturbed",
    "pnma_catio3",
    "preset",
    "run_abinit",
]
