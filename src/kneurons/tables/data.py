"""The data stage's files: proteins, labels, classes, split, label and leakage reports, scoring set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.errors import InputError
from kneurons.io import write_json_atomic, write_table_atomic
from kneurons.tables.base import read_json, read_tsv

PROTEIN_REQUIRED = ("accession", "ec", "sequence")
LABEL_REQUIRED = ("accession", "sequence", "ec", "label")
CLASS_REQUIRED = ("label_index", "label")
SPLIT_REQUIRED = ("accession", "sequence", "label", "split")
SCORING_SET_COLUMNS = ("accession", "sequence", "label", "label_index")
DROPPED_REQUIRED = ("accession", "step", "policy", "detail")
SOURCE_REPORT_REQUIRED = ("file", "format", "proteins")


def write_proteins(proteins: pd.DataFrame, path: str | Path) -> None:
    """Write ``data/proteins.tsv`` (or a download's normalised table) atomically."""
    write_table_atomic(proteins, path)


def read_proteins_table(path: str | Path) -> pd.DataFrame:
    """Read ``data/proteins.tsv`` with the full source checks (EC syntax, residues, duplicates)."""
    # Imported here: the data package may come to read its inputs through this seam.
    from kneurons.data.local import read_proteins

    return read_proteins(path, "tsv")


def write_source_report(path: str | Path, report: dict[str, Any]) -> None:
    """Write ``provenance/source_report.json`` (the user's file and what reading it rewrote) atomically."""
    write_json_atomic(path, report)


def read_source_report(path: str | Path) -> dict[str, Any]:
    """Read ``provenance/source_report.json``: the input file behind proteins.tsv, its format and counts."""
    return read_json(path, "source report", SOURCE_REPORT_REQUIRED)


def write_dropped(dropped: pd.DataFrame, path: str | Path) -> None:
    """Write ``data/dropped.tsv`` or ``external/<name>/dropped.tsv`` (``accession, step, policy, detail``)
    atomically."""
    write_table_atomic(dropped[list(DROPPED_REQUIRED)], path)


def read_dropped(path: str | Path) -> pd.DataFrame:
    """Read ``data/dropped.tsv`` (the proteins the label policies removed and why) or an external
    set's ``dropped.tsv`` (also those of classes the model lacks, or too close to training), as text."""
    return read_tsv(path, "dropped proteins table", DROPPED_REQUIRED, text=True)


def write_labels(labels: pd.DataFrame, path: str | Path) -> None:
    """Write ``data/labels.tsv`` atomically."""
    write_table_atomic(labels, path)


def read_labels(path: str | Path) -> pd.DataFrame:
    """Read ``data/labels.tsv``, every column as text (labels such as ``3.4`` stay strings)."""
    return read_tsv(path, "labels table", LABEL_REQUIRED, text=True)


def write_classes(classes: pd.DataFrame, path: str | Path) -> None:
    """Write ``data/classes.tsv`` (``label_index, label, name, n``) atomically."""
    write_table_atomic(classes, path)


def read_classes(path: str | Path) -> pd.DataFrame:
    """Read ``data/classes.tsv``: ``label`` as text, ``label_index`` a number (checked per line)."""
    return read_tsv(
        path,
        "class table",
        CLASS_REQUIRED,
        dtype={"label": str},
        keep_default_na=False,
        numeric=("label_index", "n"),
    )


def read_class_labels(path: str | Path) -> list[str]:
    """The model's labels in output order (sorted by ``label_index``) from ``data/classes.tsv``."""
    return read_classes(path).sort_values("label_index")["label"].tolist()


def write_label_report(path: str | Path, report: dict[str, Any]) -> None:
    """Write ``data/label_report.json`` atomically."""
    write_json_atomic(path, report)


def read_label_report(path: str | Path) -> dict[str, Any]:
    """Read ``data/label_report.json`` (the counts of every label policy)."""
    return read_json(path, "label report", ("output",))


def write_split(split: pd.DataFrame, path: str | Path) -> None:
    """Write ``data/split.tsv`` atomically."""
    write_table_atomic(split, path)


def read_split(path: str | Path) -> pd.DataFrame:
    """Read ``data/split.tsv``, every column as text, checking its contract columns."""
    return read_tsv(path, "split table", SPLIT_REQUIRED, text=True)


def read_split_rows(split_path: str | Path, split: str, labels: Sequence[str], purpose: str) -> pd.DataFrame:
    """Rows of ``split`` in split.tsv (every column, as strings; the index keeps file order).

    Raises InputError when a contract column is missing, when the split is empty (naming
    ``purpose``), and naming the file and line of a label the model does not know.
    """
    split_path = Path(split_path)
    df = read_split(split_path)
    rows = df[df["split"] == split]
    if rows.empty:
        raise InputError(f"{split_path}: no rows with split == {split!r} ({purpose})")
    unknown = ~rows["label"].isin(set(labels))
    if unknown.any():
        line = int(rows.index[unknown.to_numpy()][0]) + 2  # the header is line 1
        raise InputError(
            f"{split_path}: line {line}: label {rows['label'][unknown].iloc[0]!r} "
            f"is not one of the model's labels {list(labels)}"
        )
    return rows


def write_leakage_report(path: str | Path, report: dict[str, Any]) -> None:
    """Write ``data/leakage_report.json`` atomically."""
    write_json_atomic(path, report)


def write_scoring_set(subset: pd.DataFrame, path: str | Path) -> None:
    """Write ``scores/scoring_set.tsv`` (accession, sequence, label, label_index) atomically."""
    write_table_atomic(subset, path)


def read_scoring_set(path: str | Path) -> pd.DataFrame:
    """Read ``scores/scoring_set.tsv`` (accession, sequence, label, label_index), checking its values."""
    path = Path(path)
    df = read_tsv(
        path,
        "scoring set",
        SCORING_SET_COLUMNS,
        dtype={"accession": str, "sequence": str, "label": str},
        keep_default_na=False,
    )
    if df.empty:
        raise InputError(f"{path}: no sequences")
    bad = df.index[df["sequence"].str.len() == 0]
    if len(bad):
        raise InputError(f"{path}: line {int(bad[0]) + 2}: empty sequence")
    idx = pd.to_numeric(df["label_index"], errors="coerce")
    if idx.isna().any():
        row = int(idx.index[idx.isna()][0])
        raise InputError(
            f"{path}: line {row + 2}: label_index {df['label_index'].iloc[row]!r} is not an integer"
        )
    df["label_index"] = idx.astype(int)
    return df


#: ``external/<name>/proteins.tsv``: the labelled proteins of an external set and their overlap
#: with training (``kneurons.data.external``).
EXTERNAL_REQUIRED = ("accession", "sequence", "label", "identical_to_train")


def write_external_proteins(proteins: pd.DataFrame, path: str | Path) -> None:
    """Write ``external/<name>/proteins.tsv`` atomically."""
    write_table_atomic(proteins, path)


def read_external_proteins(path: str | Path) -> pd.DataFrame:
    """Read ``external/<name>/proteins.tsv`` (text columns; labels stay strings)."""
    return read_tsv(path, "external set table", EXTERNAL_REQUIRED, text=True)
