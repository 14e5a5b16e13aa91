"""The keys of ablation curves: which columns make one curve and one comparison with random, and
the fill of a table that names none. Torch-free; ``kneurons.stats.curves`` re-exports them."""

from __future__ import annotations

import pandas as pd

#: The columns that identify one curve of an ablation table.
CURVE_KEYS: tuple[str, ...] = ("method", "scope", "scope_name", "mode", "seed", "fill")
#: The columns that identify one comparison with random (every method and seed of a selection).
GROUP_KEYS: tuple[str, ...] = ("scope", "scope_name", "mode", "fill")
#: The fill of a table that names none (``with_fill``).
DEFAULT_FILL = "zero"


def with_fill(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` itself when it has a ``fill`` column, else a copy with ``fill`` = ``zero`` (the
    default fill; only hand-made tables lack the column)."""
    if "fill" in table.columns:
        return table
    return table.assign(fill=DEFAULT_FILL)


def first_fill(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows of a table's first fill (``ablate.fills``' first, the run's main fill) and its name:
    what a figure or page that shows one fill draws (the claims table has every fill)."""
    table = with_fill(table)
    if table.empty:
        return table, ""
    fill = fills_of(table)[0]
    return table[table["fill"].astype(str) == fill], fill


def fills_of(table: pd.DataFrame) -> list[str]:
    """The fills of an ablation or statistics table in the order its rows first name them (the
    order of ``ablate.fills``: jobs write their rows fill-major)."""
    return [str(f) for f in pd.unique(with_fill(table)["fill"].astype(str))]
