"""Claim 6: knowledge is more compact in SAE features than in neurons (torch-free: runs in the plots env).

For each non-random method ablated both over neurons and over SAE features (global scope, preserve
mode: keep the top-f units, zero the rest):

* ``f_neurons`` / ``f_features``: the smallest fraction f of the grid whose accuracy is at least
  ``keep_accuracy`` x the intact model's accuracy (``kneurons.stats.curves.f_threshold``, the
  ``f_threshold`` of ``stats/summary.tsv``), on the curve pooled over the replicates (metrics and
  intact accuracy averaged, as ``pool_replicates`` does). Each side is measured against its own
  table's intact predictions (the same model; the SAE keeps its error term, so they agree).
  Two conventions make the ratio defined:

  - **never reached** (the grid lacks f = 1, where preserving every unit is the intact model): f is
    taken as 1.0, a lower bound of the true fraction, and ``reached_<units>`` is False;
  - **reached at f = 0** (the model keeps its accuracy with no unit kept, a model at its baseline):
    f is taken as the grid's smallest positive fraction, the resolution of the grid (a ratio needs
    a non-zero fraction); ``reached_<units>`` stays True.

* ``log2_ratio`` = log2(f_neurons / f_features): positive when fewer features than neurons (as a
  share of their kind) keep the accuracy, i.e. the knowledge is more compact in features;
* its interval (``confidence``) and p-value by a paired bootstrap over the test proteins: both
  curves were measured on the same proteins, so each resample reweights the proteins once
  (``kneurons.stats.random.protein_weights``) for neurons, features and the intact accuracies
  alike, and with R > 1 replicates then resamples the replicates (``replicate_picks``: the same
  picks for both sides), averaging the chosen replicates' curves, as ``random_comparison`` pools
  them. The resamples come from ``numpy.random.default_rng(seed)`` (proteins first, then
  replicates) and are shared by every method. ``p_value`` is the one-sided bootstrap p-value of
  a ratio greater than 1, ``P*(log2_ratio <= 0)`` (``bootstrap_p``), floored at ``p_floor`` = 1/B.
  Without bootstrap (B = 0) the interval and p-value are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.errors import InputError
from kneurons.stats.curves import f_threshold
from kneurons.stats.random import bootstrap_p, curve_matrix, protein_weights, replicate_picks
from kneurons.tables import AblationData

#: Columns of ``stats/compactness.tsv``.
COMPACTNESS_COLUMNS: list[str] = [
    "method",
    "f_neurons",
    "f_features",
    "reached_neurons",
    "reached_features",
    "log2_ratio",
    "ci_lo",
    "ci_hi",
    "p_value",
    "p_floor",
    "n_neurons",
    "n_features",
    "n_test",
    "n_replicates",
    "n_boot",
    "confidence",
    "keep_accuracy",
]


def compact_fraction(
    grid: np.ndarray, acc: np.ndarray, full_accuracy: float, keep: float
) -> tuple[float, bool]:
    """``(f, reached)``: the preserve-mode ``f_threshold`` of one curve with the module docstring's
    conventions (never reached: 1.0, False; reached at 0: the smallest positive f of ``grid``)."""
    f = f_threshold(grid, acc, full_accuracy, keep, "preserve")
    if np.isnan(f):
        return 1.0, False
    if f <= 0:
        positive = grid[grid > 0]
        f = float(positive.min()) if positive.size else float("nan")
    return f, True


def _preserve_rows(data: AblationData, method: str) -> pd.DataFrame:
    t = data.table
    return t[(t["method"] == method) & (t["scope"] == "global") & (t["mode"] == "preserve")]


def _methods(data: AblationData) -> set[str]:
    t = data.table
    rows = t[(t["scope"] == "global") & (t["mode"] == "preserve") & (t["method"] != "random")]
    return set(rows["method"].astype(str))


class _Side:
    """One kind of unit (neurons or features) of one method: its grid and, per replicate, the
    correctness ``(n_f, n_test)`` of its preserve curve and of the intact model ``(n_test,)``."""

    def __init__(self, datas: Sequence[AblationData], method: str) -> None:
        rows = [_preserve_rows(d, method) for d in datas]
        self.grid = np.sort(rows[0]["f"].to_numpy(dtype=float))
        self.correct = [curve_matrix(d, r, self.grid).astype(float) for d, r in zip(datas, rows, strict=True)]
        self.intact = [(d.full_pred == d.y_true).astype(float) for d in datas]
        n_scope = rows[0]["n_scope"] if "n_scope" in rows[0].columns else pd.Series(dtype=float)
        self.n_units = int(n_scope.iloc[0]) if n_scope.notna().any() else pd.NA

    def point(self, keep: float) -> tuple[float, bool]:
        """The fraction on the curve pooled over the replicates."""
        acc = np.mean([c.mean(1) for c in self.correct], axis=0)
        full = float(np.mean([i.mean() for i in self.intact]))
        return compact_fraction(self.grid, acc, full, keep)

    def boot(self, keep: float, weights: np.ndarray, pick: np.ndarray | None) -> np.ndarray:
        """The fraction of every bootstrap resample ``(B,)``."""
        acc = np.stack([c @ weights for c in self.correct])  # (R, n_f, B)
        full = np.stack([i @ weights for i in self.intact])  # (R, B)
        if pick is not None:
            cols = np.arange(weights.shape[1])
            acc = acc[pick.T, :, cols[None, :]].transpose(0, 2, 1)  # (R, n_f, B), replicates drawn
            full = full[pick.T, cols[None, :]]
        acc, full = acc.mean(0), full.mean(0)
        return np.array([compact_fraction(self.grid, acc[:, b], full[b], keep)[0] for b in range(len(full))])


def _check(neurons: Sequence[AblationData], features: Sequence[AblationData]) -> None:
    if not neurons or len(neurons) != len(features):
        raise InputError(
            f"compactness: {len(neurons)} replicate(s) of neuron ablations and {len(features)} of "
            "feature ablations (give one of each per replicate, at least one)"
        )
    ref = neurons[0]
    for i, d in enumerate([*neurons, *features]):
        kind, r = ("neuron", i) if i < len(neurons) else ("feature", i - len(neurons))
        if not (np.array_equal(d.accessions, ref.accessions) and np.array_equal(d.y_true, ref.y_true)):
            raise InputError(
                f"compactness: replicate {r}'s {kind} ablations were evaluated on other test proteins "
                "than replicate 0's neuron ablations (the bootstrap pairs them protein by protein)"
            )


def compactness(
    neurons: Sequence[AblationData],
    features: Sequence[AblationData],
    keep_accuracy: float = 0.95,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per method (``COMPACTNESS_COLUMNS``, sorted by method): claim 6's statistic, interval
    and p-value (module docstring). ``neurons[r]`` / ``features[r]``: replicate ``r``'s neuron and
    feature ablation data (any scopes and methods; the global preserve rows of each non-random
    method present in both are used). A method ablated on one side only gets no row."""
    _check(neurons, features)
    methods = sorted(_methods(neurons[0]) & _methods(features[0]))
    rng = np.random.default_rng(seed)
    n_test = len(neurons[0].y_true)
    weights = protein_weights(rng, n_test, n_boot) if n_boot else None
    pick = replicate_picks(rng, len(neurons), n_boot)
    alpha = (1 - confidence) / 2
    rows = []
    for method in methods:
        sides = _Side(neurons, method), _Side(features, method)
        (f_n, reached_n), (f_x, reached_x) = (s.point(keep_accuracy) for s in sides)
        lo = hi = p = floor = float("nan")
        if weights is not None:
            ratio = np.log2(
                sides[0].boot(keep_accuracy, weights, pick) / sides[1].boot(keep_accuracy, weights, pick)
            )
            lo, hi = (float(q) for q in np.quantile(ratio, [alpha, 1 - alpha]))
            p, floor = bootstrap_p(ratio, "greater"), 1.0 / n_boot
        rows.append(
            {
                "method": method,
                "f_neurons": f_n,
                "f_features": f_x,
                "reached_neurons": reached_n,
                "reached_features": reached_x,
                "log2_ratio": float(np.log2(f_n / f_x)),
                "ci_lo": lo,
                "ci_hi": hi,
                "p_value": p,
                "p_floor": floor,
                "n_neurons": sides[0].n_units,
                "n_features": sides[1].n_units,
                "n_test": n_test,
                "n_replicates": len(neurons),
                "n_boot": n_boot,
                "confidence": confidence,
                "keep_accuracy": keep_accuracy,
            }
        )
    out = pd.DataFrame(rows, columns=COMPACTNESS_COLUMNS)
    for col in ("n_neurons", "n_features"):
        out[col] = out[col].astype("Int64")
    return out
