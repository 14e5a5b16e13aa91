"""The tables seam: one reader and one writer per file that passes between stages.

Torch-free, so data, statistics and figure jobs can use it. Each reader checks what its file
must hold (columns, dtypes, provenance) and raises ``InputError`` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kneurons.ablation.selection import (
    MODULE_TYPES,
    row_keys,
)
from kneurons.errors import InputError
from kneurons.io import atomic_path, write_table_atomic

if TYPE_CHECKING:
    from kneurons.ablation.run import AblationResult


def read_tsv_table(path: str | Path) -> pd.DataFrame:
    """Read a contract table (proteins/labels/split .tsv) with every column as text.

    Labels such as ``1`` or ``3.4`` must stay strings, and empty EC cells must stay empty
    (not NaN), so later stages should read these tables through this function.
    """
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def read_split_rows(split_path: str | Path, split: str, labels: Sequence[str], purpose: str) -> pd.DataFrame:
    """Rows of ``split`` in split.tsv (every column, as strings; the index keeps file order).

    Raises InputError when a contract column is missing, when the split is empty (naming
    ``purpose``), and naming the file and line of a label the model does not know.
    """
    split_path = Path(split_path)
    df = pd.read_csv(split_path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in ("accession", "sequence", "label", "split") if c not in df.columns]
    if missing:
        raise InputError(f"{split_path}: missing column(s) {missing}")
    rows = df[df["split"] == split]
    if rows.empty:
        raise InputError(f"{split_path}: no rows with split == {split!r} ({purpose})")
    unknown = ~rows["label"].isin(set(labels))
    if unknown.any():
        line = int(rows.index[unknown.to_numpy()][0]) + 2  # the header is line 1
        raise InputError(
            f"{split_path}: line {line}: label {rows['label'][unknown].iloc[0]!r} is not one of the model's labels {list(labels)}"
        )
    return rows


def save_predictions(path: str | Path, result: AblationResult) -> None:
    """Write the per-protein predictions of every row (for bootstrap and paired tests) atomically (npz)."""
    n_classes_max = int(
        max(result.preds.max(initial=0), result.full_pred.max(initial=0), result.y_true.max(initial=0))
    )
    dtype = np.int16 if n_classes_max < np.iinfo(np.int16).max else np.int32
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            keys=row_keys(result.table),
            pred=result.preds.astype(dtype),
            full_pred=result.full_pred.astype(dtype),
            y_true=result.y_true.astype(dtype),
            accession=result.accessions,
        )


def save_result(table_path: str | Path, pred_path: str | Path, result: AblationResult) -> None:
    """Write the ablation table (TSV) and its predictions (npz)."""
    save_predictions(pred_path, result)
    write_table_atomic(result.table, table_path)


@dataclass
class AblationData:
    """All ablation rows with the per-protein correctness behind each (``correct[row]``)."""

    table: pd.DataFrame
    correct: np.ndarray  # (n_rows, n_test) bool
    y_true: np.ndarray
    full_pred: np.ndarray
    accessions: np.ndarray

    @property
    def full_accuracy(self) -> float:
        return float((self.full_pred == self.y_true).mean())


def read_ablation_table(path: str | Path) -> pd.DataFrame:
    """An ablation TSV with the dtypes the writer used (nullable ints, string names)."""
    df = pd.read_csv(
        path, sep="\t", dtype={"scope_name": str, "module": str, "method": str, "scope": str, "mode": str}
    )
    for col in ("layer", "seed"):
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    return df


def load_ablation(tables: Sequence[str | Path], predictions: Sequence[str | Path]) -> AblationData:
    """Concatenate the per-job tables and their prediction files (``.pred.npz``), checking that they match.

    Raises InputError naming the file when rows and predictions do not align or when jobs
    were evaluated on different test sets.
    """
    if len(tables) != len(predictions) or not tables:
        raise InputError("load_ablation: give one prediction file per ablation table (and at least one)")
    frames, correct = [], []
    ref = None
    for tpath, ppath in zip(tables, predictions, strict=False):
        df = read_ablation_table(tpath)
        with np.load(ppath, allow_pickle=False) as npz:
            keys, pred, full, y, acc = (npz[k] for k in ("keys", "pred", "full_pred", "y_true", "accession"))
        if len(keys) != len(df) or not np.array_equal(keys, row_keys(df)):
            raise InputError(f"{ppath}: its rows do not match {tpath} (was one of them rewritten?)")
        if ref is None:
            ref = (y.astype(np.int64), full.astype(np.int64), acc, ppath)
        elif not (np.array_equal(ref[0], y) and np.array_equal(ref[2], acc)):
            raise InputError(f"{ppath}: evaluated on other test proteins than {ref[3]}")
        elif not np.array_equal(ref[1], full):
            raise InputError(
                f"{ppath}: the intact model predicts differently than in {ref[3]} (another checkpoint?)"
            )
        frames.append(df)
        correct.append(pred.astype(np.int64) == y.astype(np.int64)[None, :])
    table = pd.concat(frames, ignore_index=True)
    return AblationData(table, np.concatenate(correct), ref[0], ref[1], ref[2])


def read_scores(path: str | Path) -> pd.DataFrame:
    """A gathered score table (parquet) without torch: ``label`` as string, ``seed`` as nullable int."""
    path = Path(path)
    try:
        df = pd.read_parquet(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable parquet score table ({exc})") from exc
    for col in ("method", "layer", "module", "neuron", "score"):
        if col not in df.columns:
            raise InputError(f"{path}: score table lacks column {col!r}")
    if "label" in df.columns:
        df["label"] = df["label"].astype("string")
    if "seed" in df.columns:
        df["seed"] = df["seed"].astype("Int64")
    return df


#: Parquet schema-metadata key of the score-table provenance (same as kneurons.scoring.methods.METADATA_KEY).
SCORES_METADATA_KEY = b"kneurons.scores"


def score_table_metadata(path: str | Path) -> dict[str, Any]:
    """The provenance stored in a score table's parquet metadata (``{}`` when it has none).

    Reads the footer only, not the data.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for missing, truncated or foreign files
        raise InputError(f"{path}: not a readable parquet score table ({exc})") from exc
    raw = (schema.metadata or {}).get(SCORES_METADATA_KEY)
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{path}: unreadable score-table metadata ({exc})") from None
    return meta if isinstance(meta, dict) else {}


#: Column order of every score table; ``label`` is NA for unconditional rows, ``seed`` NA except for random.
SCORE_COLUMNS: list[str] = ["method", "layer", "module", "neuron", "label", "seed", "score"]


METADATA_KEY = b"kneurons.scores"


# -- score table files -------------------------------------------------------------------------------
def write_score_table(df: pd.DataFrame, path: str | Path, meta: dict[str, Any]) -> None:
    """Write a score table as parquet atomically, with ``meta`` as JSON under the key ``kneurons.scores``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df[SCORE_COLUMNS], preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[METADATA_KEY] = json.dumps(meta, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(md)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_score_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a score table and its metadata (``{}`` when absent)."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable parquet score table ({exc})") from exc
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    df = table.to_pandas()
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: score table lacks columns {missing}")
    df["label"] = df["label"].astype("string")
    df["seed"] = df["seed"].astype("Int64")
    return df, (json.loads(raw) if raw else {})


def gather_score_tables(paths: Sequence[str | Path]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Concatenate per-layer tables of one method; their provenance (checkpoint, subset, settings) must agree."""
    frames, metas = [], []
    for p in paths:
        df, meta = read_score_table(p)
        frames.append(df)
        metas.append(meta)
    if not frames:
        raise InputError("no score tables to gather")
    keys = ("method", "checkpoint_sha256", "subset", "settings")
    ref = {k: metas[0].get(k) for k in keys}
    for p, meta in zip(paths, metas, strict=True):
        for k in keys:
            if meta.get(k) != ref[k]:
                raise InputError(
                    f"{p}: {k} differs from {paths[0]} ({meta.get(k)!r} vs {ref[k]!r}); re-run the stale jobs"
                )
    df = pd.concat(frames, ignore_index=True)
    df["_module"] = df["module"].map({t: i for i, t in enumerate(MODULE_TYPES)})
    df = df.sort_values(["label", "seed", "layer", "_module", "neuron"], na_position="first", kind="stable")
    layers = sorted(int(m["layer"]) for m in metas if "layer" in m)
    if len(set(layers)) != len(layers):
        raise InputError(f"layer tables overlap: layers {layers}")
    meta = {**ref, "layers": layers}
    return df.reset_index(drop=True)[SCORE_COLUMNS], meta


# -- one workflow job ----------------------------------------------------------------------------------
def read_scoring_set(path: str | Path) -> pd.DataFrame:
    """Read ``scores/scoring_set.tsv`` (accession, sequence, label, label_index), checking its columns and values."""
    path = Path(path)
    df = pd.read_csv(
        path, sep="\t", dtype={"accession": str, "sequence": str, "label": str}, keep_default_na=False
    )
    missing = [c for c in ("accession", "sequence", "label", "label_index") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
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
