"""Matplotlib without a display, and PNGs written atomically (never a half-written file)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bornfield.data.io import atomic_output  # noqa: E402


def save_png(fig, path: str | Path, dpi: int = 130) -> None:
    """Write ``fig`` to ``path`` as PNG (atomic replace) and close it."""
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
