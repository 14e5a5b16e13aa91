"""How well a ranking of all neurons finds the planted units S (torch-free).

Every metric reads one method's scores over the model's ``N`` neurons as the ablation's global
scope ranks them (``kneurons.ranking``: the global rows, normalised per module by
``ablate.normalise``), and S as a boolean membership vector:

* **AUPRC** (average precision): ``sum over thresholds t of (R(t) - R(t')) P(t)``, the precision
  ``P`` at each distinct score ``t`` (from the highest down) weighted by the recall it adds over the
  previous threshold ``t'`` (scikit-learn's ``average_precision_score``, which does not interpolate).
  Tied scores enter together, at one threshold. A random ranking's expected value is not ``|S|/N``
  exactly but ``(H_N + (|S| - 1)(N - H_N)/(N - 1)) / N`` (``H_N`` the harmonic number; derived from
  ``E[pos_j pos_k] = |S|(|S| - 1)/(N(N - 1))``), a little above ``|S|/N`` (``random_expected_auprc``).
* **precision@|S|**: the share of S among the method's top ``|S|`` neurons (the selection the
  ablation would make: ties by neuron order); a random selection's expected value is ``|S|/N``.
* **median rank**: the rank (1 = top) of S's median neuron; a random ranking's expected median
  is about ``N/2``.
* **precision-recall curve**: precision and recall at each distinct score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.ranking import rank_order, top_mask


def _check(scores: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    member = np.asarray(member, dtype=bool)
    if scores.shape != member.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and membership {member.shape} must be one vector each")
    if not member.any():
        raise ValueError("no planted unit among the neurons")
    return scores, member


def pr_points(scores: np.ndarray, member: np.ndarray) -> pd.DataFrame:
    """``threshold, recall, precision`` at each distinct score, from the highest down (ties together)."""
    scores, member = _check(scores, member)
    order = np.argsort(-scores, kind="stable")
    s, m = scores[order], member[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # the last position of each tie group
    tp = np.cumsum(m)[last]
    return pd.DataFrame({"threshold": s[last], "recall": tp / member.sum(), "precision": tp / (last + 1)})


def average_precision(scores: np.ndarray, member: np.ndarray) -> float:
    """AUPRC of ``member`` ranked by ``scores`` (module docstring)."""
    pts = pr_points(scores, member)
    recall = pts["recall"].to_numpy()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * pts["precision"].to_numpy()))


def precision_at(scores: np.ndarray, member: np.ndarray, k: int | None = None) -> float:
    """Share of ``member`` among the top ``k`` (default ``|S|``) of ``scores``, ties by index order."""
    scores, member = _check(scores, member)
    k = int(member.sum()) if k is None else int(k)
    return float((top_mask(scores, k) & member).sum() / k)


def median_rank(scores: np.ndarray, member: np.ndarray) -> float:
    """Rank (1 = highest score, ties by index order) of the median neuron of ``member``."""
    scores, member = _check(scores, member)
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[rank_order(scores)] = np.arange(1, len(scores) + 1)
    return float(np.median(ranks[member]))


def ranking_metrics(scores: np.ndarray, member: np.ndarray) -> tuple[float, float, float]:
    """``(average_precision, precision_at, median_rank / N)`` of one ranking from one sort (the
    bootstrap computes them thousands of times); equal to the three functions' values."""
    scores, member = _check(scores, member)
    n, k = len(scores), int(member.sum())
    order = np.argsort(-scores, kind="stable")  # rank order, ties by index (as ``rank_order``)
    s, m = scores[order], member[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), n - 1]
    tp = np.cumsum(m)[last]
    ap = float(np.sum(np.diff(np.r_[0, tp]) / k * tp / (last + 1)))
    return ap, float(m[:k].sum() / k), float(np.median(np.flatnonzero(m) + 1)) / n


def random_expected_auprc(n_total: int, n_units: int) -> float:
    """Expected AUPRC of a uniformly random ranking (no ties) of ``n_units`` among ``n_total``."""
    harmonic = float(np.sum(1.0 / np.arange(1, n_total + 1)))
    if n_total == 1:
        return 1.0
    return (harmonic + (n_units - 1) * (n_total - harmonic) / (n_total - 1)) / n_total


def interpolated_precision(points: pd.DataFrame, recall_grid: Sequence[float]) -> np.ndarray:
    """Precision at each recall of ``recall_grid``: the highest precision reached at that recall or
    beyond (the usual interpolation, so that curves of several rankings can be averaged)."""
    recall = points["recall"].to_numpy()
    precision = points["precision"].to_numpy()
    best_beyond = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.asarray(recall_grid, dtype=np.float64), side="left")
    return np.where(idx < len(recall), best_beyond[np.minimum(idx, len(recall) - 1)], 0.0)
