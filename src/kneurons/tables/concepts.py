"""The concept stage's files (``concepts/``): which units align with which concepts.

file                          what
----------------------------  -------------------------------------------------------------------
concepts/alignment.tsv        per unit its best concepts and every pair above the floor: threshold,
                              precision, recall, F1 on validation and test, the shuffled null, aligned
concepts/summary.tsv          per kind of unit and layer (and module type): units aligned, concepts covered
concepts/concepts.tsv         per concept: column, group, proteins and instances per part, best units
concepts/units.tsv            per scored unit: best concept, best catalytic concept, aligned concepts,
                              knowledge score and flag
concepts/knowledge.tsv        per kind of unit: knowledge units against random units (claim 7)
concepts/info.json            what was read, parsed, scored and skipped
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.io import write_json_atomic, write_table_atomic
from kneurons.tables.base import read_json, read_tsv

_KEY_TYPES = {"module": str, "units": str}
#: ``concepts/{name}.tsv``: its reader's dtypes, required columns and numeric columns.
CONCEPT_TABLES: dict[str, tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]] = {
    "alignment": (
        {**_KEY_TYPES, "concept": str, "control": str},
        ("layer", "module", "neuron", "units", "concept", "threshold", "f1_val", "f1", "aligned"),
        ("threshold", "f1_val", "f1"),
    ),
    "summary": (
        {"units": str, "group_by": str, "group": str},
        ("units", "group_by", "group", "n_units", "units_aligned", "concepts_covered"),
        ("n_units", "units_aligned", "concepts_covered"),
    ),
    "concepts": (
        {"concept": str, "column": str, "group": str, "control": str, "source": str},
        ("concept", "column", "catalytic", "control"),
        (),
    ),
    "units": (
        {**_KEY_TYPES, "best_concept": str, "catalytic_concept": str, "aligned_concepts": str},
        ("layer", "module", "neuron", "units", "best_concept", "best_f1", "n_aligned", "aligned_concepts"),
        ("best_f1",),
    ),
    "knowledge": (
        {"units": str},
        ("units", "f1_gap", "ci_lo", "ci_hi", "p_value", "spearman_ig"),
        ("f1_gap", "ci_lo", "ci_hi", "p_value"),
    ),
}
#: Text columns that are empty for most rows: read as "" rather than NaN.
_TEXT = ("control", "source", "group", "best_concept", "catalytic_concept", "aligned_concepts")


def write_concept_tables(frames: dict[str, pd.DataFrame], out: dict[str, str | Path]) -> None:
    """Write every ``frames[name]`` (a name of ``CONCEPT_TABLES``) to ``out[name]`` atomically."""
    for name, df in frames.items():
        write_table_atomic(df, out[name])


def read_concept_table(path: str | Path, name: str) -> pd.DataFrame:
    """Read ``concepts/{name}.tsv`` (alignment, summary, concepts, units, knowledge), checking its
    columns; names stay text (empty where a unit has none) and flags booleans."""
    dtype, required, numeric = CONCEPT_TABLES[name]
    df = read_tsv(path, f"concept table '{name}'", required, dtype=dtype, numeric=numeric)
    for col in _TEXT:
        if col in df.columns:
            df[col] = df[col].fillna("")
    for col in ("aligned", "catalytic", "catalytic_aligned", "knowledge"):
        if col in df.columns and df[col].notna().all():
            df[col] = df[col].astype(str).str.lower().eq("true")
    return df


def write_concepts_info(path: str | Path, info: dict[str, Any]) -> None:
    """Write ``concepts/info.json`` atomically."""
    write_json_atomic(path, info)


def read_concepts_info(path: str | Path) -> dict[str, Any]:
    """Read ``concepts/info.json`` (annotation status, concepts, units, proteins, settings used)."""
    return read_json(path, "concept alignment info", ("status",))
