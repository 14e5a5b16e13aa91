"""Summaries of ablation curves (torch-free: runs in the plots env).

Per curve (one method, scope, scope name, mode, seed and fill; metric vs fraction ``f``): every
statistic is per fill (``ablate.fills``: the same masks under each way of ablating), a table
without a ``fill`` column (hand-made; the workflow's always have one) reading as one zero fill.

* ``auc_accuracy`` / ``auc_macro_f1``: trapezoid area under the metric over the f grid (not
  rescaled; on the default grid 0..1 it is the curve's mean height).
* ``f_threshold``: for ``preserve``, the smallest grid f whose accuracy is at least
  ``keep_accuracy`` x the intact model's accuracy (NaN when none is); for ``suppress``, the
  smallest grid f whose accuracy falls below it. The first crossing counts even if a later f
  crosses back. Descriptive: a threshold on a coarse grid moves in steps;
* ``cpr_<metric>`` / ``cmd_<metric>`` (where the table has the normalised faithfulness columns
  ``faithfulness_<metric>``, metric ``accuracy`` or ``logp``): the curve's CPR and CMD over ``ln f``
  (``kneurons.stats.faithfulness``), threshold-free.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from kneurons.stats.faithfulness import METRICS, cmd, cpr
from kneurons.stats.keys import CURVE_KEYS, DEFAULT_FILL, GROUP_KEYS, fills_of, with_fill

__all__ = [
    "CURVE_KEYS",
    "DEFAULT_FILL",
    "GROUP_KEYS",
    "f_threshold",
    "fills_of",
    "metric_columns",
    "pool_replicates",
    "summarise_curves",
    "trapezoid_weights",
    "with_fill",
]


def trapezoid_weights(f: np.ndarray) -> np.ndarray:
    """Weights ``w`` with ``w @ y == np.trapezoid(y, f)`` for increasing ``f``."""
    f = np.asarray(f, dtype=np.float64)
    w = np.zeros_like(f)
    if len(f) > 1:
        d = np.diff(f)
        w[:-1] += d / 2
        w[1:] += d / 2
    return w


def f_threshold(f: np.ndarray, acc: np.ndarray, full_accuracy: float, keep: float, mode: str) -> float:
    """Smallest f keeping ``keep`` x full accuracy (preserve) or falling below it (suppress); NaN if none."""
    target = keep * full_accuracy
    hit = acc >= target - 1e-12 if mode == "preserve" else acc < target - 1e-12
    return float(f[np.flatnonzero(hit)[0]]) if hit.any() else float("nan")


def _sorted_curves(table: pd.DataFrame) -> Iterator[tuple[tuple, pd.DataFrame]]:
    for key, g in with_fill(table).groupby(list(CURVE_KEYS), dropna=False, sort=True):
        yield key, g.sort_values("f")


def summarise_curves(table: pd.DataFrame, full_accuracy: float, keep_accuracy: float = 0.95) -> pd.DataFrame:
    """One row per curve: AUC of accuracy and macro-F1 over f, ``f_threshold``, and CPR and CMD of
    each ``faithfulness_<metric>`` column the table has."""
    faith = [f"faithfulness_{m}" for m in METRICS.values() if f"faithfulness_{m}" in table.columns]
    rows = []
    for key, g in _sorted_curves(table):
        f = g["f"].to_numpy(dtype=float)
        acc = g["accuracy"].to_numpy(dtype=float)
        areas = {}
        for col in faith:
            name = str(col).removeprefix("faithfulness_")
            values = g[col].to_numpy(dtype=float)
            areas[f"cpr_{name}"], areas[f"cmd_{name}"] = float(cpr(values, f)), float(cmd(values, f))
        rows.append(
            {
                **dict(zip(CURVE_KEYS, key, strict=False)),
                "layer": g["layer"].iloc[0],
                "module": g["module"].iloc[0],
                "n_scope": int(g["n_scope"].iloc[0]),
                "n_f": len(f),
                "auc_accuracy": float(np.trapezoid(acc, f)),
                "auc_macro_f1": float(np.trapezoid(g["macro_f1"].to_numpy(dtype=float), f)),
                "full_accuracy": full_accuracy,
                "keep_accuracy": keep_accuracy,
                "f_threshold": f_threshold(f, acc, full_accuracy, keep_accuracy, str(key[3])),
                **areas,
            }
        )
    out = pd.DataFrame(rows)
    if not out.empty:
        out["seed"] = out["seed"].astype("Int64")
        out["layer"] = out["layer"].astype("Int64")
    return out


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The per-row metrics of an ablation table: accuracy, macro-F1, the mean log-probability of the
    true class (``mean_logp``, where measured) and every ``recall_<label>``."""
    logp = ["mean_logp"] if "mean_logp" in table.columns else []
    return ["accuracy", "macro_f1", *logp, *(c for c in table.columns if str(c).startswith("recall_"))]


def pool_replicates(tables: list[pd.DataFrame], full_accuracies: list[float]) -> tuple[pd.DataFrame, float]:
    """Replicate 0's rows with every metric averaged over the replicates, and the mean intact accuracy.

    The replicates' tables hold the same rows in the same order (``random_comparison`` checks the
    row keys); one table is returned as it is.
    """
    if len(tables) == 1:
        return tables[0], full_accuracies[0]
    pooled = tables[0].copy()
    for col in metric_columns(pooled):
        pooled[col] = np.mean([t[col].to_numpy(dtype=float) for t in tables], axis=0)
    pooled["n_replicates"] = len(tables)
    return pooled, float(np.mean(full_accuracies))
