"""The benchmark's statistics: how well each method recovers S, pooled over the replicates (torch-free).

Per variant and method, over the replicates (each its own S and planting) and, for ``random``, its
seeds:

* ``auprc``, ``precision_at_s``, ``median_rank_fraction`` (``kneurons.planted.metrics``; the rank of
  S's median neuron over N, 0 = top) with bootstrap intervals: each bootstrap draw resamples, per
  replicate, S's neurons and the other neurons (with replacement, separately, so every resample has
  ``|S|`` planted units among ``N``) and random's seeds, then the replicates themselves (as the
  ablation statistics do, ``kneurons.stats.random``), averaging; the same resampled neurons serve
  every method, so ``gap`` (AUPRC minus random's) is a paired difference with its own interval and
  bootstrap ``p_value``;
* ``random_expected_auprc`` and ``prevalence`` (``|S|/N``, random's expected precision@|S|);
* ``preserve_accuracy`` / ``suppress_accuracy``: the test accuracy with the method's top-|S| neurons
  preserved (every other neuron rolled back to the base) or suppressed (they alone rolled back), and
  ``keeps_accuracy``: whether preserving them keeps ``stats.keep_accuracy`` of the planted accuracy;
* for the ``concentrated`` variant, claim 3's density statistic on the method's global top
  ``stats.top_fraction`` neurons: S's module type's enrichment (``log2_enrichment`` with its
  Clopper-Pearson interval, as claim 3 computes it), the most enriched module type, and
  ``finds_module``: the share of the method's selections (1 for a deterministic method; random's
  seeds) in which S's module is the most enriched and claim 3's decision rule
  (``kneurons.stats.claims.verdict`` with ``stats.claims.log2_enrichment_margin``) calls its
  enrichment supported: its interval lies above 0 (the margin decides only "not supported").

A verdict per variant and method ("the method recovers the planted units") reads ``gap``'s interval
with the claims' decision rule (``kneurons.stats.claims.verdict``): supported when it lies above 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kneurons.planted.metrics import (
    average_precision,
    interpolated_precision,
    median_rank,
    pr_points,
    random_expected_auprc,
    ranking_metrics,
)
from kneurons.ranking import (
    NeuronLayout,
    normalise_per_module,
    resolve_normalisation,
    score_seeds,
    score_vector,
)
from kneurons.scoring.registry import METHODS
from kneurons.stats.claims import clopper_pearson, verdict
from kneurons.stats.density import density, pool_density
from kneurons.stats.random import bootstrap_p, replicate_picks

#: The recall levels at which the pooled precision-recall curves are tabulated.
RECALL_GRID = np.round(np.linspace(0.01, 1.0, 100), 6)
#: What the figure and verdicts call the oracle-like upper bound.
ORACLE_NOTE = "oracle-like upper bound: it measures where fine-tuning wrote, which is S by construction"


@dataclass
class Planting:
    """One replicate of one variant: its S (``member`` over ``layout``) and, per method, the ranking
    vectors (one per random seed) as the ablation's global scope ranks them."""

    layout: NeuronLayout
    member: np.ndarray
    rankings: dict[str, list[np.ndarray]]
    scores: dict[str, pd.DataFrame]


def rankings(
    scores: pd.DataFrame, layout: NeuronLayout, method: str, normalise: str, source: str = "score table"
) -> list[np.ndarray]:
    """The ranking vectors of one score table: global rows, normalised per module as ``ablate.normalise``
    asks for ``method``; one per seed of a random table."""
    how = resolve_normalisation(normalise, method)
    return [
        normalise_per_module(score_vector(scores, layout, seed=s, source=source), layout, how)
        for s in score_seeds(scores)
    ]


def _bootstrap(
    plantings: Sequence[Planting], methods: Sequence[str], n_boot: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``{method: (n_boot, 3)}`` bootstrap replicates of the pooled metrics (module docstring)."""
    reps = len(plantings)
    per = {m: np.zeros((n_boot, reps, 3)) for m in methods}
    for b in range(n_boot):
        for r, p in enumerate(plantings):
            pos, neg = np.flatnonzero(p.member), np.flatnonzero(~p.member)
            idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
            member = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
            for m in methods:
                vecs = p.rankings[m]
                picks = rng.integers(0, len(vecs), len(vecs)) if len(vecs) > 1 else [0]
                per[m][b, r] = np.mean([ranking_metrics(vecs[i][idx], member) for i in picks], axis=0)
    picks = replicate_picks(rng, reps, n_boot)
    out = {}
    for m in methods:
        if picks is None:
            out[m] = per[m].mean(1)
        else:
            out[m] = np.stack([per[m][b, picks[b]].mean(0) for b in range(n_boot)])
    return out


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    if len(values) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def _selection(selections: pd.DataFrame, method: str, mode: str) -> float:
    rows = selections[(selections["method"] == method) & (selections["mode"] == mode)]
    return float(rows["accuracy"].mean()) if len(rows) else float("nan")


def _density_columns(
    plantings: Sequence[Planting], method: str, module: str, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Claim 3's density statistic for S's ``module`` on the method's top neurons, pooled over replicates."""
    st, normalise = settings["stats"], settings["ablate"]["normalise"]
    pooled = pool_density(
        [density(p.scores[method], method, st["top_fraction"], normalise) for p in plantings]
    )
    types = pooled[pooled["level"] == "module_type"]
    found, log2s, lows, highs, tops = [], [], [], [], []
    for _, rows in types.groupby("seed", dropna=False, sort=True):
        row = rows[rows["module"] == module].iloc[0]
        count, n_top = int(row["count"]), int(row["n_top"])
        share = int(row["n_neurons"]) / int(row["n_total"])
        lo, hi = clopper_pearson(count, n_top, st["confidence"])

        def log2_ratio(p: float, share: float = share) -> float:
            return math.log2(p / share) if p > 0 else float("-inf")

        top = str(rows.sort_values("enrichment", ascending=False, kind="stable")["module"].iloc[0])
        found.append(
            top == module
            and verdict(log2_ratio(lo), log2_ratio(hi), +1, st["claims"]["log2_enrichment_margin"])
            == "supported"
        )
        log2s.append(log2_ratio(count / n_top))
        lows.append(log2_ratio(lo))
        highs.append(log2_ratio(hi))
        tops.append(top)
    return {
        "module": module,
        "log2_enrichment": float(np.mean(log2s)),
        "log2_lo": float(np.mean(lows)),
        "log2_hi": float(np.mean(highs)),
        "top_module": max(set(tops), key=tops.count),
        "finds_module": float(np.mean(found)),
    }


def recovery(
    variant: str,
    plantings: Sequence[Planting],
    selections: Sequence[pd.DataFrame],
    planted_accuracy: Sequence[float],
    settings: Mapping[str, Any],
    module: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recovery table (one row per method) and the pooled precision-recall curves of one variant.

    ``plantings[r]`` / ``selections[r]`` (``selections.tsv``) / ``planted_accuracy[r]``: replicate ``r``'s.
    ``settings``: ``stats`` (bootstrap, confidence, keep_accuracy, top_fraction, claims margins),
    ``ablate.normalise``, ``planted.auprc_margin``, ``seed``; ``module``: S's module type in the
    concentrated variant (its density columns), None in the spread one.
    """
    st = settings["stats"]
    methods = list(plantings[0].rankings)
    rng = np.random.default_rng([int(settings["seed"]), 35])
    boot = _bootstrap(plantings, methods, int(st["bootstrap"]), rng)
    n_units, n_total = int(plantings[0].member.sum()), plantings[0].layout.total
    full = float(np.mean(planted_accuracy))
    rows, curves = [], []
    for m in methods:
        point = np.mean(
            [np.mean([ranking_metrics(v, p.member) for v in p.rankings[m]], axis=0) for p in plantings],
            axis=0,
        )
        ranks = [median_rank(v, p.member) for p in plantings for v in p.rankings[m]]
        (ap_lo, ap_hi), (pr_lo, pr_hi), (mr_lo, mr_hi) = (
            _interval(boot[m][:, i], st["confidence"]) for i in range(3)
        )
        gap = boot[m][:, 0] - boot["random"][:, 0] if "random" in boot else np.zeros(0)
        gap_lo, gap_hi = _interval(gap, st["confidence"])
        random_point = (
            np.mean(
                [np.mean([average_precision(v, p.member) for v in p.rankings["random"]]) for p in plantings]
            )
            if "random" in boot
            else float("nan")
        )
        preserve = float(np.mean([_selection(s, m, "preserve") for s in selections]))
        row = {
            "variant": variant,
            "method": m,
            "label": METHODS[m].label if m in METHODS else m,
            "n_replicates": len(plantings),
            "n_units": n_units,
            "n_total": n_total,
            "prevalence": n_units / n_total,
            "random_expected_auprc": random_expected_auprc(n_total, n_units),
            "auprc": float(point[0]),
            "auprc_lo": ap_lo,
            "auprc_hi": ap_hi,
            "gap": float(point[0] - random_point),
            "gap_lo": gap_lo,
            "gap_hi": gap_hi,
            "p_value": bootstrap_p(gap) if m != "random" and len(gap) else float("nan"),
            "precision_at_s": float(point[1]),
            "precision_lo": pr_lo,
            "precision_hi": pr_hi,
            "median_rank": float(np.mean(ranks)),
            "median_rank_fraction": float(point[2]),
            "median_rank_lo": mr_lo,
            "median_rank_hi": mr_hi,
            "planted_accuracy": full,
            "preserve_accuracy": preserve,
            "suppress_accuracy": float(np.mean([_selection(s, m, "suppress") for s in selections])),
            "keeps_accuracy": bool(preserve >= st["keep_accuracy"] * full),
            "n_boot": int(st["bootstrap"]),
            "confidence": float(st["confidence"]),
        }
        if module is not None:
            row.update(_density_columns(plantings, m, module, settings))
        rows.append(row)
        precision = np.mean(
            [
                interpolated_precision(pr_points(v, p.member), RECALL_GRID)
                for p in plantings
                for v in p.rankings[m]
            ],
            axis=0,
        )
        curves.append(
            pd.DataFrame(
                {
                    "variant": variant,
                    "method": m,
                    "recall": RECALL_GRID,
                    "precision": precision,
                    "prevalence": n_units / n_total,
                }
            )
        )
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def verdicts(table: pd.DataFrame, settings: Mapping[str, Any]) -> pd.DataFrame:
    """One verdict row per variant and non-random method (the claims table's columns,
    ``kneurons.tables.claims``): does its AUPRC beat random's, ``gap``'s interval above 0?"""
    margin = float(settings["planted"]["auprc_margin"])
    rows = []
    for r in table[table["method"] != "random"].itertuples():
        note = ORACLE_NOTE if r.method == "delta" else ""
        rows.append(
            {
                "claim": "P",
                "statement": "the method recovers the planted units",
                "method": r.method,
                "set": r.variant,
                "statistic": f"AUPRC of S among all {r.n_total} neurons minus random's "
                f"(|S| = {r.n_units}; random expects {r.random_expected_auprc:.4f})",
                "estimate": r.gap,
                "ci_lo": r.gap_lo,
                "ci_hi": r.gap_hi,
                "p_value": r.p_value,
                "p_floor": 1.0 / r.n_boot if r.n_boot else float("nan"),
                "direction": "greater",
                "margin": margin,
                "confidence": r.confidence,
                "n_replicates": r.n_replicates,
                "verdict": verdict(r.gap_lo, r.gap_hi, +1, margin),
                "note": note,
                "figure": "figures/planted_precision_recall.png",
            }
        )
    return pd.DataFrame(rows)
