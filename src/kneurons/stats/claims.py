"""A verdict per claim: the paper's claims (and ours) tested by decision rules fixed in advance.

Each claim is a directional statement about one statistic. Its interval (at ``stats.confidence``)
comes from the table that measured it, and one rule, the same for every claim, turns interval and
equivalence margin into a verdict:

* ``supported``: the interval excludes zero in the claimed direction;
* ``not supported``: the interval excludes zero in the other direction, or lies entirely within
  ``[-margin, +margin]`` (an effect too small to matter, measured precisely enough to say so);
* ``inconclusive``: anything else (the interval holds zero and reaches beyond the margin).

The claims (``CLAIMS``):

1. preserving activation-selected neurons keeps more accuracy than random selections of the same
   size: AUC gap to random, global scope, preserve (``stats/random_gap.tsv``: a bootstrap over
   test proteins and random seeds);
2. the same for IG-selected neurons;
3. knowledge neurons are enriched in ``k_proj``: log2 enrichment of ``k_proj`` among the global
   top ``stats.top_fraction`` of neurons, per method (``stats/density.tsv``); the interval is the
   Clopper-Pearson interval of the top set's ``k_proj`` share, divided by ``k_proj``'s share of all
   neurons, and the p-value the one-sided hypergeometric tail of random selections of that size;
4. suppressing the top IG neurons hurts more than suppressing random ones: AUC gap, global scope,
   suppress, claimed negative;
5. class-specific neurons are specific: suppressing a class's own IG neurons drops its recall more
   than the other classes' (``characterise/class_specificity.tsv``: mean over classes of own minus
   other drop, t interval across classes, two-sided one-sample t-test);
6. knowledge is more compact in SAE features than in neurons, per method: log2 of the smallest
   fraction of neurons over the smallest fraction of SAE features that keeps ``stats.keep_accuracy``
   of the intact accuracy (global, preserve), claimed positive (``stats/compactness.tsv``, see
   ``kneurons.stats.compactness``: a paired bootstrap over test proteins and replicates, one-sided
   bootstrap p-value). Test split only, where SAE features were ablated.
7. knowledge units align with catalytic sites more than random units, per kind of unit (neurons,
   SAE features): the knowledge units' (global top ``stats.top_fraction`` by IG) mean best
   catalytic-concept F1 minus that of random units of the same module composition, claimed positive
   (``concepts/knowledge.tsv``, see ``kneurons.concepts.knowledge``: a stratified bootstrap over
   units, the p-value of random sets). Test split only; no row where no catalytic concept (active
   site, binding site, planted motif) was scored.

Every claim rests on the fine-tuned model having learned something on the proteins it is judged on:
a model that predicts one class scores the majority-class share, and ablating it merely moves that
constant prediction to another class, which can look like an effect. So before any rule applies,
the **baseline rule**: the intact model's accuracy on the proteins the claim was measured on
(``IntactModel``: the mean over the replicates, all evaluated on the same ``n`` proteins) must beat
their majority-class share with its interval excluding it. Those proteins are, per claim (the
claims job reads them): the ablation's evaluated proteins for claims 1, 2, 4 and 6 (the test split's
``ablate.max_sequences`` subset; an external set's, capped alike), and for claim 3, whose scores come
from the training split, the same held-out subset (the rule asks whether the model learned the task);
the characterisation's held-out proteins for claim 5 (``characterise.split``, ``max_proteins``). The
interval is the exact binomial (Clopper-Pearson) interval at ``stats.confidence`` over the ``n``
proteins, taken at the replicate-pooled count of correct proteins ``n x accuracy`` (not an integer
when the replicates differ; the Beta quantiles take it as it is), and the majority share is a
property of the proteins, not an estimate. Otherwise the claim row keeps its statistics, its verdict
is ``inconclusive`` and ``note`` says why, and on which proteins (``model at baseline: accuracy 0.460
[0.389, 0.532], majority 0.395 (n = 200; the test proteins of ablate.max_sequences)``). ``note`` is
empty when the rule passes.

Claim 6 rests, besides, on the SAE features being features of the model they are ablated in: the
**SAE quality rule** (``kneurons.stats.sae_quality``, ``sae.quality``) must pass for every SAE on
every replicate, else claim 6 is ``inconclusive`` and ``note`` says which SAE failed where
(``sae_quality_note``, ``with_sae_quality``: the claims job applies it to the claim 6 rows).

Torch-free: runs in the plots environment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

#: Verdicts, in the order the report lists them.
VERDICTS: tuple[str, ...] = ("supported", "not supported", "inconclusive")

#: Columns of ``stats/claims.tsv``.
CLAIM_COLUMNS: list[str] = [
    "claim",
    "statement",
    "method",
    "set",
    "statistic",
    "estimate",
    "ci_lo",
    "ci_hi",
    "confidence",
    "p_value",
    "p_floor",
    "n_replicates",
    "direction",
    "margin",
    "verdict",
    "note",
    "rule",
    "figure",
    "source",
]

#: The figure behind each claim (``results/figures/...``), as the report and the atlas link it.
FIGURE_OF: dict[str, str] = {
    "1": "figures/accuracy_preserve.png",
    "2": "figures/accuracy_preserve.png",
    "3": "figures/density.png",
    "4": "figures/accuracy_suppress.png",
    "5": "figures/characterise/class_specificity.png",
    "6": "figures/compactness.png",
    "7": "figures/concepts/knowledge.png",
}


@dataclass(frozen=True)
class Evidence:
    """One measured statistic: estimate, interval and p-value, and where it came from.

    ``p_floor``: the smallest p-value its test can give (a bootstrap of B draws: ``1 / B``,
    ``kneurons.stats.random.bootstrap_p``); NaN for tests with exact tails.
    """

    estimate: float
    ci_lo: float
    ci_hi: float
    p_value: float
    source: str
    p_floor: float = float("nan")


@dataclass(frozen=True)
class IntactModel:
    """The fine-tuned (intact) model on the proteins a claim was measured on: its accuracy (the mean
    over the replicates, all evaluated on the same ``n`` proteins), their majority-class share, and
    which proteins they are, in words for the note (``the test proteins of ablate.max_sequences``;
    empty: not named)."""

    accuracy: float
    n: int
    majority: float
    proteins: str = ""


def clopper_pearson(count: float, n: int, confidence: float) -> tuple[float, float]:
    """Exact binomial (Clopper-Pearson) interval of a share ``count / n`` at ``confidence``.

    ``count`` may be fractional (a count pooled over replicates): the Beta quantiles are continuous in it.
    """
    alpha = 1 - confidence
    lo = float(sps.beta.ppf(alpha / 2, count, n - count + 1)) if count > 0 else 0.0
    hi = float(sps.beta.ppf(1 - alpha / 2, count + 1, n - count)) if count < n else 1.0
    return lo, hi


def baseline_note(model: IntactModel, confidence: float) -> str:
    """The baseline rule (module docstring): ``""`` when the intact model's accuracy interval lies
    above the majority-class share, else the note that makes every claim of the set inconclusive."""
    lo, hi = clopper_pearson(model.accuracy * model.n, model.n, confidence)
    if lo > model.majority:
        return ""
    which = f"; {model.proteins}" if model.proteins else ""
    return (
        f"model at baseline: accuracy {model.accuracy:.3f} [{lo:.3f}, {hi:.3f}], "
        f"majority {model.majority:.3f} (n = {model.n}{which})"
    )


#: The claims that rest on SAE features (the SAE quality rule applies to them).
FEATURE_CLAIMS: tuple[str, ...] = ("6",)


def sae_quality_note(quality: pd.DataFrame) -> str:
    """The SAE quality rule (module docstring): ``""`` when every SAE fits every replicate
    (``features/stats/sae_quality.tsv``), else the note that makes the feature claims inconclusive."""
    failed = quality[~quality["fits"].astype(bool)]
    if failed.empty:
        return ""
    where = "; ".join(
        f"replicate {int(r.replicate)} layer {int(r.layer)}: {r.reason}" for r in failed.itertuples()
    )
    return f"SAE does not fit its model (sae.quality): {where}"


def with_sae_quality(claims: pd.DataFrame, note: str) -> pd.DataFrame:
    """``claims`` with the feature claims (``FEATURE_CLAIMS``) inconclusive and ``note`` added to
    theirs, when ``note`` (``sae_quality_note``) is not empty; their statistics are kept."""
    if not note or claims.empty:
        return claims
    out = claims.copy()
    rows = out["claim"].astype(str).isin(FEATURE_CLAIMS)
    out.loc[rows, "verdict"] = "inconclusive"
    out.loc[rows, "note"] = [f"{old}; {note}" if old else note for old in out.loc[rows, "note"].fillna("")]
    return out


def verdict(ci_lo: float, ci_hi: float, direction: int, margin: float) -> str:
    """The decision rule (module docstring) for a claim that the effect has sign ``direction`` (+1 / -1)."""
    if not (math.isfinite(ci_lo) and math.isfinite(ci_hi)):
        return "inconclusive"
    lo, hi = (ci_lo, ci_hi) if direction > 0 else (-ci_hi, -ci_lo)
    if lo > 0:
        return "supported"
    if hi < 0 or (-margin <= lo and hi <= margin):
        return "not supported"
    return "inconclusive"


def rule_text(direction: int, margin: float, confidence: float) -> str:
    """The decision rule of one claim in words."""
    side = "above" if direction > 0 else "below"
    other = "below" if direction > 0 else "above"
    pct = f"{100 * confidence:g}%"
    return (
        f"supported if the {pct} interval lies {side} 0; not supported if it lies {other} 0 "
        f"or within ±{margin:g}; inconclusive otherwise"
    )


def _auc_gap(random_gap: pd.DataFrame, method: str, mode: str, source: str) -> Evidence | None:
    rows = random_gap[
        (random_gap["method"] == method) & (random_gap["scope"] == "global") & (random_gap["mode"] == mode)
    ]
    if rows.empty:
        return None
    r = rows.iloc[0]
    p = float(r["p_value"]) if "p_value" in rows.columns else float("nan")
    n_boot = float(r["n_boot"]) if "n_boot" in rows.columns else 0.0
    floor = 1.0 / n_boot if n_boot > 0 else float("nan")
    return Evidence(float(r["auc_gap"]), float(r["ci_lo"]), float(r["ci_hi"]), p, source, floor)


def _k_proj_enrichment(density: pd.DataFrame | None, method: str, confidence: float) -> Evidence | None:
    if density is None:
        return None
    rows = density[
        (density["method"] == method) & (density["level"] == "module_type") & (density["module"] == "k_proj")
    ]
    if rows.empty:
        return None
    r = rows.iloc[0]
    count, n_top = int(r["count"]), int(r["n_top"])
    share = int(r["n_neurons"]) / int(r["n_total"])
    lo, hi = clopper_pearson(count, n_top, confidence)

    def log2_ratio(p: float) -> float:
        return math.log2(p / share) if p > 0 else float("-inf")

    return Evidence(
        log2_ratio(count / n_top), log2_ratio(lo), log2_ratio(hi), float(r["p_enriched"]), "stats/density.tsv"
    )


def _class_specificity(spec: pd.DataFrame | None, confidence: float) -> Evidence | None:
    if spec is None or spec.empty:
        return None
    d = spec["drop_own"].astype(float).to_numpy() - spec["drop_other"].astype(float).to_numpy()
    mean = float(d.mean())
    if len(d) < 2 or np.all(d == d[0]):
        lo = hi = mean
        p = 1.0 if mean == 0 else 0.0
    else:
        half = sps.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
        lo, hi = mean - half, mean + half
        p = float(sps.ttest_1samp(d, 0.0).pvalue)
    return Evidence(mean, float(lo), float(hi), p, "characterise/class_specificity.tsv")


def _compactness(table: pd.DataFrame, method: str) -> Evidence:
    r = table[table["method"] == method].iloc[0]
    return Evidence(
        float(r["log2_ratio"]),
        float(r["ci_lo"]),
        float(r["ci_hi"]),
        float(r["p_value"]),
        "stats/compactness.tsv",
        float(r["p_floor"]),
    )


def _compactness_specs(
    table: pd.DataFrame | None, margin: float
) -> list[tuple[str, str, str, str, int, float, Evidence | None]]:
    """Claim 6's specs, one per method of the compactness table (none without the table)."""
    if table is None or table.empty:
        return []
    keep = f"f{100 * float(table['keep_accuracy'].iloc[0]):g}" if "keep_accuracy" in table else "f"
    return [
        (
            "6",
            "knowledge is more compact in SAE features than in neurons",
            m,
            f"log2 {keep} neurons / {keep} features (global, preserve)",
            +1,
            margin,
            _compactness(table, m),
        )
        for m in sorted(table["method"].astype(str).unique())
    ]


def _concept_specs(
    table: pd.DataFrame | None, margin: float
) -> list[tuple[str, str, str, str, int, float, Evidence | None]]:
    """Claim 7's specs, one per kind of unit of ``concepts/knowledge.tsv`` with a measured gap."""
    if table is None or table.empty:
        return []
    rows = table.dropna(subset=["f1_gap", "ci_lo", "ci_hi"])
    return [
        (
            "7",
            "knowledge units align with catalytic sites more than random units",
            "ig",
            f"mean best catalytic-concept F1, top IG {r.units} minus random {r.units} (same modules)",
            +1,
            margin,
            Evidence(
                float(r.f1_gap),
                float(r.ci_lo),
                float(r.ci_hi),
                float(r.p_value),
                "concepts/knowledge.tsv",
                float(r.p_floor),
            ),
        )
        for r in rows.itertuples(index=False)
    ]


def evaluate_claims(
    random_gap: pd.DataFrame,
    density: pd.DataFrame | None,
    class_specificity: pd.DataFrame | None,
    settings: Mapping[str, Any],
    n_replicates: int = 1,
    set_name: str = "test",
    intact: IntactModel | None = None,
    random_gap_source: str = "stats/random_gap.tsv",
    compactness: pd.DataFrame | None = None,
    intact_by_claim: Mapping[str, IntactModel] | None = None,
    concepts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per claim (``CLAIM_COLUMNS``), from the statistics tables of one evaluation set
    (``density`` None: no density measured, as on an external set).

    ``settings`` is the ``stats`` config section (``confidence``, ``top_fraction`` and the
    ``claims`` margins). A claim whose table lacks its rows (a method not scored, the
    characterisation stage off) gets no row: a missing measurement is not a verdict. ``intact``:
    the intact model on the set, for the baseline rule (None: the rule is not applied, as for
    tables without a model behind them). ``random_gap_source``: the file ``random_gap`` was read
    from, named in the ``source`` column. ``compactness``: ``stats/compactness.tsv`` (None: no SAE
    features were ablated, no claim 6, and its margin ``claims.compactness_margin`` is not read).
    ``intact_by_claim``: the intact model on the proteins a claim was measured on where they are not
    ``intact``'s (claim 5's held-out proteins), by claim number.
    ``concepts``: ``concepts/knowledge.tsv`` (None: the concept stage did not run, no claim 7, and
    ``claims.concept_margin`` is not read). Verdicts are decided on these full-precision values.
    """
    confidence = float(settings["confidence"])
    notes: dict[str, str] = {}

    def note_of(claim: str) -> str:
        model = (intact_by_claim or {}).get(claim, intact)
        if claim not in notes:
            notes[claim] = baseline_note(model, confidence) if model is not None else ""
        return notes[claim]

    margins = settings["claims"]
    top = settings["top_fraction"]
    specs: list[tuple[str, str, str, str, int, float, Evidence | None]] = [
        (
            "1",
            "preserving activation-selected neurons keeps more accuracy than random selections",
            "activation",
            "AUC gap to random (global, preserve)",
            +1,
            margins["auc_margin"],
            _auc_gap(random_gap, "activation", "preserve", random_gap_source),
        ),
        (
            "2",
            "preserving IG-selected neurons keeps more accuracy than random selections",
            "ig",
            "AUC gap to random (global, preserve)",
            +1,
            margins["auc_margin"],
            _auc_gap(random_gap, "ig", "preserve", random_gap_source),
        ),
        *(
            (
                "3",
                "knowledge neurons are enriched in the key projections (k_proj)",
                m,
                f"log2 enrichment of k_proj in the global top {top:g}",
                +1,
                margins["log2_enrichment_margin"],
                _k_proj_enrichment(density, m, confidence),
            )
            for m in ("activation", "ig")
        ),
        (
            "4",
            "suppressing the top IG neurons hurts more than suppressing random ones",
            "ig",
            "AUC gap to random (global, suppress)",
            -1,
            margins["auc_margin"],
            _auc_gap(random_gap, "ig", "suppress", random_gap_source),
        ),
        (
            "5",
            "class-specific neurons are specific: own-class recall drops more than other classes'",
            "ig",
            "mean over classes of own minus other recall drop",
            +1,
            margins["specificity_margin"],
            _class_specificity(class_specificity, confidence),
        ),
    ]
    if compactness is not None:
        specs += _compactness_specs(compactness, margins["compactness_margin"])
    if concepts is not None:
        specs += _concept_specs(concepts, margins["concept_margin"])
    rows = []
    for claim, statement, method, statistic, direction, margin, ev in specs:
        if ev is None:
            continue
        note = note_of(claim)
        rows.append(
            {
                "claim": claim,
                "statement": statement,
                "method": method,
                "set": set_name,
                "statistic": statistic,
                "estimate": ev.estimate,
                "ci_lo": ev.ci_lo,
                "ci_hi": ev.ci_hi,
                "confidence": confidence,
                "p_value": ev.p_value,
                "p_floor": ev.p_floor,
                "n_replicates": n_replicates,
                "direction": "greater" if direction > 0 else "less",
                "margin": margin,
                "verdict": "inconclusive" if note else verdict(ev.ci_lo, ev.ci_hi, direction, margin),
                "note": note,
                "rule": rule_text(direction, margin, confidence),
                "figure": FIGURE_OF[claim],
                "source": ev.source,
            }
        )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)
