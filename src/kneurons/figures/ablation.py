"""Paper figures from the tidy result tables (torch-free; runs in the plots environment).

One style for every figure: methods keep their colour, marker and line style everywhere
(colour-blind-safe Okabe-Ito colours, and distinct markers and dashes so that a grayscale print
stays readable); random selections are a grey band (2.5-97.5 percentile over seeds) around a
dotted mean. Axes name the quantity and its unit. Each ``plot_*`` (``curves``, ``heatmaps``,
``training``, ``characterise``) returns a matplotlib Figure; ``save_figure`` writes it atomically
in every requested format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from kneurons.io import atomic_path
from kneurons.scoring.registry import METHODS

#: Method -> (label, colour, marker, line style), from the scoring registry (registry order).
METHOD_STYLE: dict[str, tuple[str, str, str, str]] = {
    m.name: (m.label, m.colour, m.marker, m.linestyle) for m in METHODS.values()
}
#: Method -> bar hatch, from the scoring registry.
HATCHES: dict[str, str] = {m.name: m.hatch for m in METHODS.values()}
RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}
MODE_AXIS = {
    "preserve": "fraction of neurons preserved, f (others filled)",
    "suppress": "fraction of neurons suppressed, f (top-f filled)",
}
F_TICKS = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]


def style(method: str) -> tuple[str, str, str, str]:
    """(label, colour, marker, line style) of a method; methods the registry lacks get a fallback style."""
    return METHOD_STYLE.get(method, (method, "#CC79A7", "D", (0, (1, 1))))


def method_order(methods: Sequence[str]) -> list[str]:
    """Known methods first in a fixed order, then the others sorted."""
    known = [m for m in METHOD_STYLE if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def save_figure(
    fig: Figure, base: str | Path, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150
) -> list[Path]:
    """Write ``fig`` to ``base.<fmt>`` for every format, atomically; closes the figure."""
    paths = []
    try:
        for fmt in formats:
            path = Path(f"{base}.{fmt}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def figure_files(paths: Sequence[str | Path]) -> tuple[Path, list[str]]:
    """``(base, formats)`` of one figure's output paths (``base.<fmt>`` each), for ``save_figure``.

    Raises ValueError when the paths do not share one base or one lacks a format suffix.
    """
    bases = {Path(p).with_suffix("") for p in paths}
    formats = [Path(p).suffix.lstrip(".") for p in paths]
    if len(bases) != 1 or not all(formats):
        raise ValueError(f"figure paths must be one base name in several formats: {[str(p) for p in paths]}")
    return bases.pop(), formats
