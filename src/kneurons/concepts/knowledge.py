"""Knowledge meets concepts: do the units that carry the classifier's knowledge align with catalytic sites?

The **knowledge units** of a kind (neurons, or SAE features) are its global top ``stats.top_fraction``
by the gold-class IG score, normalised per module as the ablation ranks them (``kneurons.ranking``:
the density statistics' knowledge neurons, the atlas's "top" flag). A unit's **catalytic F1** is the
test F1 of its best catalytic concept (active site, binding site, or on synthetic data a planted
motif; the concept chosen by validation F1, as the threshold is).

Per kind (``knowledge_comparison``):

* ``f1_gap``: the knowledge units' mean catalytic F1 minus that of random units with the same module
  composition (the expectation over such random sets: per module, the mean over all its scored
  units, weighted by the knowledge units' share in it), with a percentile bootstrap interval
  (knowledge units and each module's units resampled, stratified by module) and the p-value of
  ``n_boot`` random sets of that composition (one-sided: random sets doing at least as well; floor
  ``1 / (n_boot + 1)``). Claim 7 reads it (``kneurons.stats.claims``).
* ``spearman_ig``: the rank correlation between a unit's knowledge score and its catalytic F1 over
  all scored units, with a bootstrap interval over units; ``spearman_random``, the same with the
  random method's scores (its first seed) in place of IG's, is what no knowledge gives.

Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from kneurons.ranking import (
    NeuronLayout,
    global_top,
    normalise_per_module,
    resolve_normalisation,
    score_seeds,
    score_vector,
)

#: Columns of ``concepts/knowledge.tsv``.
KNOWLEDGE_COLUMNS: list[str] = [
    "units",
    "n_units",
    "n_knowledge",
    "catalytic_concepts",
    "f1_knowledge",
    "f1_random",
    "f1_gap",
    "ci_lo",
    "ci_hi",
    "p_value",
    "p_floor",
    "n_boot",
    "confidence",
    "spearman_ig",
    "spearman_ci_lo",
    "spearman_ci_hi",
    "spearman_random",
    "aligned_knowledge",
    "aligned_share_knowledge",
    "aligned_share_all",
]


@dataclass(frozen=True)
class UnitScores:
    """One kind of unit's knowledge scores over its layout: the IG score as the global ranking
    compares it (normalised per module), the knowledge flags, and the random method's scores."""

    ig: np.ndarray
    knowledge: np.ndarray
    random: np.ndarray | None


def unit_scores(
    layout: NeuronLayout,
    ig: pd.DataFrame,
    random: pd.DataFrame | None,
    top_fraction: float,
    normalise: str,
    source: str = "ig scores",
) -> UnitScores:
    """``UnitScores`` of the units of ``layout`` from the IG score table (gold-class rows) and,
    where given, the random table (its first seed)."""
    raw = score_vector(ig, layout, source=source)
    how = resolve_normalisation(normalise, "ig")
    knowledge, _ = global_top(raw, layout, top_fraction, how)
    rnd = None
    if random is not None:
        rnd = score_vector(random, layout, seed=score_seeds(random)[0], source="random scores")
    return UnitScores(normalise_per_module(raw, layout, how), knowledge, rnd)


def select_units(total: int, keep: np.ndarray, max_units: int | None, seed: int) -> np.ndarray:
    """Sorted flat indices of the units scored: all ``total`` when ``max_units`` allows, else the
    flat indices ``keep`` (the knowledge units) and a uniform random sample of the others
    (``numpy.random.default_rng(seed)``) up to ``max_units``."""
    if max_units is None or total <= max_units:
        return np.arange(total, dtype=np.int64)
    keep = np.unique(np.asarray(keep, dtype=np.int64))
    others = np.setdiff1d(np.arange(total, dtype=np.int64), keep)
    n = max(0, max_units - len(keep))
    drawn = np.random.default_rng(seed).choice(others, size=min(n, len(others)), replace=False)
    return np.sort(np.concatenate([keep, drawn]))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(sps.spearmanr(x, y).statistic)


def _gap_draws(
    f1: np.ndarray, know: np.ndarray, blocks: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """The gap, the random sets' expectation, ``n_boot`` bootstrap gaps and ``n_boot`` random sets'
    mean F1 (module docstring). Draw order, per module in (layer, module) order: the knowledge units'
    resample ``rng.integers(0, k, (n_boot, k))`` (when it has any), the module's units' resample
    ``rng.integers(0, n, (n_boot, n))``; then per module with knowledge units, in the same order, the
    random sets: the first ``k`` of ``rng.permuted(np.tile(np.arange(n), (n_boot, 1)), axis=1)``."""
    k_in = [b[know[b]] for b in blocks]
    k_total = int(know.sum())
    weights = [len(k) / k_total for k in k_in]
    f1_random = float(sum(w * f1[b].mean() for w, b in zip(weights, blocks, strict=True) if w))
    observed = float(f1[know].mean()) - f1_random
    k_sum = np.zeros(n_boot)
    pop = np.zeros(n_boot)
    for w, k, b in zip(weights, k_in, blocks, strict=True):
        if len(k):
            k_sum += f1[k][rng.integers(0, len(k), (n_boot, len(k)))].sum(axis=1)
        draw = f1[b][rng.integers(0, len(b), (n_boot, len(b)))].mean(axis=1)
        pop += w * draw
    boots = k_sum / k_total - pop
    random_sum = np.zeros(n_boot)
    for k, b in zip(k_in, blocks, strict=True):
        if len(k):
            sets = rng.permuted(np.tile(np.arange(len(b)), (n_boot, 1)), axis=1)[:, : len(k)]
            random_sum += f1[b][sets].sum(axis=1)
    return observed, f1_random, boots, random_sum / k_total


def _compare_kind(
    units: pd.DataFrame, n_boot: int, confidence: float, rng: np.random.Generator, catalytic: int
) -> dict:
    """One row of ``knowledge_comparison`` for the units of one kind."""
    units = units.reset_index(drop=True)
    f1 = units["catalytic_f1"].to_numpy(dtype=np.float64)
    know = units["knowledge"].to_numpy(dtype=bool)
    aligned = units["catalytic_aligned"].to_numpy(dtype=bool)
    blocks = [np.asarray(b) for _, b in sorted(units.groupby(["layer", "module"]).indices.items())]
    row = {
        "n_units": len(units),
        "n_knowledge": int(know.sum()),
        "catalytic_concepts": catalytic,
        "n_boot": n_boot,
        "confidence": confidence,
        "aligned_knowledge": int((aligned & know).sum()),
        "aligned_share_knowledge": float(aligned[know].mean()) if know.any() else float("nan"),
        "aligned_share_all": float(aligned.mean()) if len(aligned) else float("nan"),
    }
    nan = float("nan")
    stats = ["f1_knowledge", "f1_random", "f1_gap", "ci_lo", "ci_hi", "p_value", "p_floor"]
    stats += ["spearman_ig", "spearman_ci_lo", "spearman_ci_hi", "spearman_random"]
    if not catalytic or not know.any():
        return row | dict.fromkeys(stats, nan)
    observed, f1_random, boots, random_means = _gap_draws(f1, know, blocks, n_boot, rng)
    alpha = 1 - confidence
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2]) if n_boot else (nan, nan)
    exceed = int((random_means >= f1[know].mean() - 1e-12).sum())
    ig = units["ig_score"].to_numpy(dtype=np.float64)
    picks = (rng.integers(0, len(f1), len(f1)) for _ in range(n_boot))
    rho_boot = np.array([_spearman(ig[pick], f1[pick]) for pick in picks])
    finite = np.isfinite(rho_boot)
    rho_lo, rho_hi = np.quantile(rho_boot[finite], [alpha / 2, 1 - alpha / 2]) if finite.any() else (nan, nan)
    rnd = units["random_score"].to_numpy(dtype=np.float64)
    return row | {
        "f1_knowledge": float(f1[know].mean()),
        "f1_random": f1_random,
        "f1_gap": observed,
        "ci_lo": float(lo),
        "ci_hi": float(hi),
        "p_value": (1 + exceed) / (1 + n_boot),
        "p_floor": 1 / (1 + n_boot),
        "spearman_ig": _spearman(ig, f1),
        "spearman_ci_lo": float(rho_lo),
        "spearman_ci_hi": float(rho_hi),
        "spearman_random": _spearman(rnd, f1) if np.isfinite(rnd).all() else nan,
    }


def knowledge_comparison(
    units: pd.DataFrame, catalytic_concepts: int, n_boot: int, confidence: float, seed: int
) -> pd.DataFrame:
    """One row per kind of unit (``KNOWLEDGE_COLUMNS``) from the scored units' table: ``units``
    (kind), ``layer``, ``module``, ``ig_score``, ``random_score``, ``knowledge``, ``catalytic_f1``
    (0 where a unit hits no catalytic concept) and ``catalytic_aligned``. Kinds without IG scores
    (``ig_score`` all missing) get no row. ``catalytic_concepts``: scored catalytic concepts (none:
    the statistics are NaN, and claim 7 has no row). The draws come from one
    ``numpy.random.default_rng(seed)``, kinds in sorted order, each kind's gap draws
    (``_gap_draws``) then its ``n_boot`` Spearman resamples, each ``rng.integers(0, n, n)``."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, g in units.groupby("units", sort=True):
        if g["ig_score"].isna().all():
            continue
        rows.append({"units": kind} | _compare_kind(g, n_boot, confidence, rng, catalytic_concepts))
    return pd.DataFrame(rows, columns=KNOWLEDGE_COLUMNS)
