"""The planted-knowledge benchmark's files (``planted/``): the planted units, each planting's ground
truth and selections, and the benchmark's statistics (torch-free).

file                                            writer / reader
----------------------------------------------  ---------------------------------------------------
planted/{variant}/{r}/units.tsv                 write_planted_units / read_planted_units
planted/{variant}/{r}/ground_truth.json         write_json_result / read_ground_truth
planted/{variant}/{r}/selections.tsv            write_result_table / read_selections
planted/stats/{recovery,ground_truth,pr_curves}.tsv
                                                write_result_table / read_planted_stats
planted/verdicts.tsv, verdicts.html             write_claims, write_verdicts (``kneurons.tables.claims``)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.errors import InputError
from kneurons.io import write_table_atomic
from kneurons.tables.base import read_json, read_tsv

#: ``units.tsv``: one row per neuron of S.
UNIT_COLUMNS = ("layer", "module", "neuron")
#: ``ground_truth.json``: what the planting did and what rolling back S (or everything else) does.
GROUND_TRUTH_KEYS = (
    "variant",
    "replicate",
    "n_units",
    "n_total",
    "accuracy",
    "rollback_others_identical",
)
#: ``selections.tsv``: each method's top-|S| neurons preserved / suppressed under the pretrained fill.
SELECTION_COLUMNS = ("method", "seed", "mode", "k", "accuracy", "precision")
#: The benchmark's statistics tables and the columns their readers rely on.
PLANTED_STATS: dict[str, tuple[str, ...]] = {
    "recovery": ("variant", "method", "auprc", "auprc_lo", "auprc_hi", "precision_at_s", "median_rank"),
    "ground_truth": ("variant", "replicate", "planted", "base", "head_only", "rollback_planted"),
    "pr_curves": ("variant", "method", "recall", "precision"),
}


def write_planted_units(units: pd.DataFrame, path: str | Path) -> None:
    """Write ``units.tsv`` (``layer, module, neuron``, one row per neuron of S) atomically."""
    missing = [c for c in UNIT_COLUMNS if c not in units.columns]
    if missing:
        raise ValueError(f"planted units lack column(s) {missing}")
    write_table_atomic(units[list(UNIT_COLUMNS)], path)


def read_planted_units(path: str | Path) -> pd.DataFrame:
    """Read ``units.tsv``: integer layers and neurons, module names; InputError naming the file when
    a column is missing, a value is not a whole number, or a neuron is listed twice."""
    df = read_tsv(path, "planted units", UNIT_COLUMNS, dtype={"module": str}, numeric=("layer", "neuron"))
    if df.empty:
        raise InputError(f"{path}: no planted units")
    for col in ("layer", "neuron"):
        values = df[col].astype(float)
        if (values % 1 != 0).any() or (values < 0).any():
            row = int(df.index[((values % 1 != 0) | (values < 0)).to_numpy()][0])
            raise InputError(f"{path}: line {row + 2}: column {col!r}: {df[col].iloc[row]!r} is not a count")
        df[col] = values.astype("int64")
    dup = df.duplicated(list(UNIT_COLUMNS))
    if dup.any():
        row = int(df.index[dup.to_numpy()][0])
        raise InputError(f"{path}: line {row + 2}: neuron listed twice")
    return df


def read_ground_truth(path: str | Path) -> dict[str, Any]:
    """Read ``ground_truth.json`` (one planting: its sizes and the accuracies of the model, the base,
    S rolled back and everything but S rolled back)."""
    data = read_json(path, "planted ground truth", GROUND_TRUTH_KEYS)
    needed = ("planted", "base", "rollback_planted", "rollback_others")
    missing = [k for k in needed if not isinstance(data["accuracy"].get(k), int | float)]
    if missing:
        raise InputError(f"{path}: accuracy lacks {missing}")
    return data


def read_selections(path: str | Path) -> pd.DataFrame:
    """Read ``selections.tsv`` (per method, seed and mode: |S| neurons selected, accuracy, precision)."""
    df = read_tsv(
        path,
        "planted selections",
        SELECTION_COLUMNS,
        dtype={"method": str, "mode": str},
        numeric=("k", "accuracy", "precision"),
    )
    df["seed"] = df["seed"].astype("Int64")
    return df


def read_planted_stats(path: str | Path, name: str) -> pd.DataFrame:
    """Read ``planted/stats/{name}.tsv`` (``recovery``, ``ground_truth`` or ``pr_curves``)."""
    dtype = {"variant": str, "method": str, "module": str, "top_module": str, "label": str}
    df = read_tsv(path, f"planted statistics '{name}'", PLANTED_STATS[name], dtype=dtype)
    if "seed" in df.columns:
        df["seed"] = df["seed"].astype("Int64")
    return df
