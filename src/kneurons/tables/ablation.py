"""Ablation files: ``ablation/{method}/{scope}.tsv`` (one row per curve point) and its ``.pred.npz``.

The ``.pred.npz`` holds, per row of the table (``keys``: ``row_keys``), every test protein's
predicted class (``pred``) and log-probability of its true class (``logp``, float32), the intact
model's (``full_pred``, ``full_logp``), the true classes (``y_true``) and the accessions. Files
written before the log-probabilities were stored lack ``logp`` and ``full_logp``: the reader gives
NaN for them (the log-probability faithfulness is then NaN; accuracy is unaffected).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kneurons.errors import InputError
from kneurons.io import atomic_path, write_table_atomic
from kneurons.tables.base import read_tsv

#: The columns every ablation table has (the writer adds metrics such as macro_f1 and recalls).
ABLATION_REQUIRED = ("method", "scope", "scope_name", "layer", "module", "mode", "f", "seed", "accuracy")
_ABLATION_DTYPES = {"scope_name": str, "module": str, "method": str, "scope": str, "mode": str, "fill": str}
_PREDICTION_ARRAYS = ("keys", "pred", "full_pred", "y_true", "accession")
#: The log-probabilities of the true class beside them (absent from files of older code).
_LOGP_ARRAYS = ("logp", "full_logp")


@dataclass
class AblationResult:
    """The rows (metrics per mask), the predictions behind them and the intact model's predictions;
    ``logp`` / ``full_logp``: the log-probabilities of the true class (None: not measured)."""

    table: pd.DataFrame
    preds: np.ndarray
    full_pred: np.ndarray
    y_true: np.ndarray
    accessions: np.ndarray
    seconds: float
    logp: np.ndarray | None = None
    full_logp: np.ndarray | None = None


def row_keys(table: pd.DataFrame) -> np.ndarray:
    """One string per row, ``method|scope|scope_name|mode|f|seed|fill``; aligns tables and predictions.

    Built value by value: a missing seed (NA, or NaN in a column read back as float) is the
    empty string whatever pandas' string dtype does with missing values. A table without a ``fill``
    column (older code wrote one fill per file) has keys without it, as that code wrote them.
    """
    seeds = ["" if pd.isna(v) else str(int(v)) for v in table["seed"]]
    f = [f"{float(v):.6g}" for v in table["f"]]
    cols = ["method", "scope", "scope_name", "mode"]
    names = [table[c].astype(object).map(str).tolist() for c in cols]
    parts = [*names, f, seeds]
    if "fill" in table.columns:
        parts.append(table["fill"].astype(object).map(str).tolist())
    keys = ["|".join(p) for p in zip(*parts, strict=True)]
    return np.array(keys, dtype=str)


def save_predictions(path: str | Path, result: AblationResult) -> None:
    """Write the per-protein predictions of every row (for bootstrap and paired tests) atomically (npz)."""
    n_rows, n_test = result.preds.shape
    logp, full_logp = getattr(result, "logp", None), getattr(result, "full_logp", None)
    logp = logp if logp is not None else np.full((n_rows, n_test), np.nan)
    full_logp = full_logp if full_logp is not None else np.full(n_test, np.nan)
    _write_predictions(
        path,
        row_keys(result.table),
        result.preds,
        result.full_pred,
        result.y_true,
        result.accessions,
        logp,
        full_logp,
    )


def _write_predictions(
    path: str | Path,
    keys: np.ndarray,
    pred: np.ndarray,
    full_pred: np.ndarray,
    y_true: np.ndarray,
    accession: np.ndarray,
    logp: np.ndarray,
    full_logp: np.ndarray,
) -> None:
    n_classes_max = int(max(pred.max(initial=0), full_pred.max(initial=0), y_true.max(initial=0)))
    dtype = np.int16 if n_classes_max < np.iinfo(np.int16).max else np.int32
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            keys=keys,
            pred=pred.astype(dtype),
            full_pred=full_pred.astype(dtype),
            y_true=y_true.astype(dtype),
            accession=accession,
            logp=np.asarray(logp, dtype=np.float32),
            full_logp=np.asarray(full_logp, dtype=np.float32),
        )


def save_result(table_path: str | Path, pred_path: str | Path, result: AblationResult) -> None:
    """Write the ablation table (TSV) and its predictions (npz)."""
    save_predictions(pred_path, result)
    write_table_atomic(result.table, table_path)


def gather_results(
    tables: Sequence[str | Path],
    predictions: Sequence[str | Path],
    table_out: str | Path,
    pred_out: str | Path,
) -> None:
    """Concatenate the parts of one ablation job, in the order given, into one table and its predictions.

    The random baseline runs one job per seed; gathered in seed order, the parts make the table
    and predictions that one job over all seeds writes (same rows, same order, same bytes in the
    TSV: cells are carried as text). Raises InputError naming the file when a part's rows and
    predictions disagree, or when parts were evaluated on other test proteins or another model.
    """
    if len(tables) != len(predictions) or not tables:
        raise InputError("gather_results: give one prediction file per ablation table (and at least one)")
    frames, keys, preds, logps = [], [], [], []
    ref = None
    for tpath, ppath in zip(tables, predictions, strict=True):
        df = read_ablation_table(tpath)  # the reader's checks and dtypes, for the row keys
        text = read_tsv(tpath, "ablation table", ABLATION_REQUIRED, text=True)
        k, pred, full, y, acc, logp, full_logp = read_predictions(ppath, log_probs=True)
        if ref is None:
            ref = (text.columns.tolist(), full, y, acc, tpath, full_logp)
        elif text.columns.tolist() != ref[0]:
            raise InputError(f"{tpath}: its columns differ from those of {ref[4]}")
        elif not (np.array_equal(ref[2], y) and np.array_equal(ref[3], acc)):
            raise InputError(f"{ppath}: evaluated on other test proteins than {ref[4]}")
        elif not np.array_equal(ref[1], full):
            raise InputError(f"{ppath}: the intact model predicts differently than in {ref[4]}")
        if len(k) != len(text) or not np.array_equal(k, row_keys(df)):
            raise InputError(f"{ppath}: its rows do not match {tpath} (was one of them rewritten?)")
        frames.append(text)
        keys.append(k)
        preds.append(pred)
        logps.append(logp)
    _write_predictions(
        pred_out,
        np.concatenate(keys),
        np.concatenate(preds),
        ref[1],
        ref[2],
        ref[3],
        np.concatenate(logps),
        ref[5],
    )
    write_table_atomic(pd.concat(frames, ignore_index=True), table_out)


@dataclass
class AblationData:
    """All ablation rows with the per-protein correctness behind each (``correct[row]``) and, where
    measured, each protein's log-probability of its true class (``logp[row]``, ``full_logp`` for the
    intact model; NaN where the files predate them, None where not given)."""

    table: pd.DataFrame
    correct: np.ndarray  # (n_rows, n_test) bool
    y_true: np.ndarray
    full_pred: np.ndarray
    accessions: np.ndarray
    logp: np.ndarray | None = None  # (n_rows, n_test) float
    full_logp: np.ndarray | None = None  # (n_test,) float

    @property
    def full_accuracy(self) -> float:
        return float((self.full_pred == self.y_true).mean())


def read_ablation_table(path: str | Path) -> pd.DataFrame:
    """An ablation TSV with the dtypes the writer used (nullable ints, string names)."""
    df = read_tsv(
        path, "ablation table", ABLATION_REQUIRED, dtype=_ABLATION_DTYPES, numeric=("f", "accuracy")
    )
    for col in ("layer", "seed"):
        df[col] = df[col].astype("Int64")
    return df


def read_predictions(path: str | Path, log_probs: bool = False) -> tuple[np.ndarray, ...]:
    """``keys, pred, full_pred, y_true, accession`` of an ablation job's ``.pred.npz``; with
    ``log_probs`` also ``logp, full_logp`` (NaN arrays for a file of older code, which lacks them)."""
    path = Path(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (ablation predictions)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable prediction file ({exc})") from None
    if not hasattr(npz, "files"):  # a plain .npy array, not an archive of named arrays
        raise InputError(f"{path}: not a prediction archive (npz) but a single array")
    with npz:
        missing = [k for k in _PREDICTION_ARRAYS if k not in npz.files]
        if missing:
            raise InputError(f"{path}: prediction file lacks array(s) {missing}")
        arrays = tuple(npz[k] for k in _PREDICTION_ARRAYS)
        if not log_probs:
            return arrays
        pred = arrays[1]
        if all(k in npz.files for k in _LOGP_ARRAYS):
            logp, full_logp = (npz[k].astype(np.float64) for k in _LOGP_ARRAYS)
            if logp.shape != pred.shape or full_logp.shape != arrays[2].shape:
                raise InputError(
                    f"{path}: logp {logp.shape} / full_logp {full_logp.shape} do not match the "
                    f"predictions {pred.shape}"
                )
        else:
            logp, full_logp = np.full(pred.shape, np.nan), np.full(arrays[2].shape, np.nan)
        return (*arrays, logp, full_logp)


def load_ablation(tables: Sequence[str | Path], predictions: Sequence[str | Path]) -> AblationData:
    """Concatenate the per-job tables and their prediction files (``.pred.npz``), checking that they match.

    Raises InputError naming the file when rows and predictions do not align or when jobs
    were evaluated on different test sets.
    """
    if len(tables) != len(predictions) or not tables:
        raise InputError("load_ablation: give one prediction file per ablation table (and at least one)")
    frames, correct, logps = [], [], []
    ref = None
    for tpath, ppath in zip(tables, predictions, strict=False):
        df = read_ablation_table(tpath)
        keys, pred, full, y, acc, logp, full_logp = read_predictions(ppath, log_probs=True)
        if len(keys) != len(df) or not np.array_equal(keys, row_keys(df)):
            raise InputError(f"{ppath}: its rows do not match {tpath} (was one of them rewritten?)")
        if ref is None:
            ref = (y.astype(np.int64), full.astype(np.int64), acc, ppath, full_logp)
        elif not (np.array_equal(ref[0], y) and np.array_equal(ref[2], acc)):
            raise InputError(f"{ppath}: evaluated on other test proteins than {ref[3]}")
        elif not np.array_equal(ref[1], full):
            raise InputError(
                f"{ppath}: the intact model predicts differently than in {ref[3]} (another checkpoint?)"
            )
        frames.append(df)
        correct.append(pred.astype(np.int64) == y.astype(np.int64)[None, :])
        logps.append(logp)
    table = pd.concat(frames, ignore_index=True)
    return AblationData(table, np.concatenate(correct), ref[0], ref[1], ref[2], np.concatenate(logps), ref[4])
