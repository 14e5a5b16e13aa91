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
    """The rows of a table's main fill and its name: what a figure or page that shows one fill draws
    (the claims table has every fill). The main fill is ``ablate.fills``' first: the one with the
    most rows (``ablate.fill_scopes`` gives the other fills to some scopes only), ties broken by the
    order the rows name them (a statistics table may sort its rows by fill, so order alone would not
    do)."""
    table = with_fill(table)
    if table.empty:
        return table, ""
    names = table["fill"].astype(str)
    counts = names.value_counts()
    fill = max(fills_of(table), key=lambda f: (counts[f], -fills_of(table).index(f)))
    return table[names == fill], fill


def fills_of(table: pd.DataFrame) -> list[str]:
    """The fills of an ablation or statistics table in the order its rows first name them (the
    order of ``ablate.fills``: jobs write their rows fill-major)."""
    return [str(f) for f in pd.unique(with_fill(table)["fill"].astype(str))]
