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
   size: the gap in CPR (the area of MIB's normalised faithfulness of the accuracy over log f,
   ``kneurons.stats.faithfulness``) to random, global scope, preserve (``stats/faithfulness.tsv``:
   a bootstrap over test proteins, random seeds and replicates). A statistics folder of older code,
   without the faithfulness table, gives the AUC gap to random instead (``stats/random_gap.tsv``);
2. the same for IG-selected neurons;
3. knowledge neurons are enriched in ``k_proj``: log2 enrichment of ``k_proj`` among the global
   top ``stats.top_fraction`` of neurons, per method (``stats/density.tsv``); the interval is the
   Clopper-Pearson interval of the top set's ``k_proj`` share, divided by ``k_proj``'s share of all
   neurons, and the p-value the one-sided hypergeometric tail of random selections of that size;
4. suppressing the top IG neurons hurts more than suppressing random ones: CPR gap (AUC gap for
   an older folder), global scope, suppress (F is then the performance left by removing the top f:
   lower is more harm), claimed negative;
5. class-specific neurons are specific: suppressing a class's own IG neurons drops its recall more
   than the other classes' (``characterise/class_specificity.tsv``: mean over classes of own minus
   other drop, t interval across classes, two-sided one-sample t-test);
6. knowledge is more compact in an SAE's features than in other bases of the same stream, per
   method, comparison (features vs the stream's dimensions, features vs its PCA components) and
   SAE stream: the smaller of the two CPR gaps, per fraction of the basis and per number of
   directions kept, claimed positive (``stats/compactness.tsv``, see ``kneurons.stats.compactness``:
   a paired bootstrap over test proteins and replicates, one-sided bootstrap p-value). Test split
   only, where SAE features were ablated.
7. knowledge units align with catalytic sites more than random units, per kind of unit (neurons,
   SAE features): the knowledge units' (global top ``stats.top_fraction`` by IG) mean best
   catalytic-concept F1 minus that of random units of the same module composition, claimed positive
   (``concepts/knowledge.tsv``, see ``kneurons.concepts.knowledge``: a stratified bootstrap over
   units, the p-value of random sets). Test split only; no row where no catalytic concept (active
   site, binding site, planted motif) was scored.

**Fills.** Claims 1, 2, 4, 5 and 6 are decided once per fill of ``ablate.fills`` (each row names
its ``fill``); claims 3 (density) and 7 (concepts) do not depend on the fill (``fill`` empty). With
several fills, ``robust`` says whether a claim's verdict is the same under every fill the run made,
and ``other_fills`` gives the other fills' verdicts in words; with one fill both are empty (nothing
to compare). A verdict that changes with the way of ablating is not robust.

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
empty when the rule passes. A statistic that is undefined (the normalised faithfulness where
ablating the whole scope changes nothing, ``kneurons.stats.faithfulness.UNDEFINED_NOTE``) makes its
row inconclusive too, its ``note`` saying why.

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

from kneurons.stats.keys import fills_of, with_fill

#: Verdicts, in the order the report lists them.
VERDICTS: tuple[str, ...] = ("supported", "not supported", "inconclusive")

#: Columns of ``stats/claims.tsv``.
CLAIM_COLUMNS: list[str] = [
    "claim",
    "statement",
    "method",
    "set",
    "fill",
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
    "robust",
    "other_fills",
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
    note: str = ""


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
    theirs, when ``note`` (``sae_quality_note``) is not empty; their statistics are kept (and
    ``robust`` / ``other_fills`` follow the new verdicts)."""
    if not note or claims.empty:
        return claims
    out = claims.copy()
    rows = out["claim"].astype(str).isin(FEATURE_CLAIMS)
    out.loc[rows, "verdict"] = "inconclusive"
    out.loc[rows, "note"] = [f"{old}; {note}" if old else note for old in out.loc[rows, "note"].fillna("")]
    # the verdicts changed: whether each holds under every fill is decided again
    return robustness(out) if "robust" in out.columns else out


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


def _auc_gap(random_gap: pd.DataFrame, method: str, mode: str, source: str, fill: str) -> Evidence | None:
    rows = random_gap[
        (random_gap["method"] == method)
        & (random_gap["scope"] == "global")
        & (random_gap["mode"] == mode)
        & (with_fill(random_gap)["fill"].astype(str) == fill)
    ]
    if rows.empty:
        return None
    r = rows.iloc[0]
    p = float(r["p_value"]) if "p_value" in rows.columns else float("nan")
    n_boot = float(r["n_boot"]) if "n_boot" in rows.columns else 0.0
    floor = 1.0 / n_boot if n_boot > 0 else float("nan")
    return Evidence(float(r["auc_gap"]), float(r["ci_lo"]), float(r["ci_hi"]), p, source, floor)


def _cpr_gap(faithfulness: pd.DataFrame, method: str, mode: str, source: str, fill: str) -> Evidence | None:
    """The accuracy's CPR gap to random of one method's global curve under ``fill``."""
    f = faithfulness
    rows = f[
        (f["method"] == method)
        & (f["scope"] == "global")
        & (f["mode"] == mode)
        & (f["fill"].astype(str) == fill)
        & (f["metric"] == "accuracy")
    ]
    if rows.empty:
        return None
    r = rows.iloc[0]
    n_boot = float(r["n_boot"]) if "n_boot" in rows.columns else 0.0
    note = r["note"] if "note" in rows.columns and isinstance(r["note"], str) else ""
    return Evidence(
        float(r["cpr_gap"]),
        float(r["ci_lo"]),
        float(r["ci_hi"]),
        float(r["p_value"]),
        source,
        1.0 / n_boot if n_boot > 0 else float("nan"),
        note,
    )


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


def _class_specificity(spec: pd.DataFrame | None, confidence: float, fill: str) -> Evidence | None:
    if spec is None or spec.empty:
        return None
    spec = with_fill(spec)
    spec = spec[spec["fill"].astype(str) == fill]
    if spec.empty:
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


#: Claim 6's comparisons: the basis the SAE's features are compared with -> its name in words.
COMPARISONS: dict[str, str] = {"dimensions": "the stream's own dimensions", "pca": "its PCA components"}

#: A claim before its verdict: claim, statement, method, statistic, direction, margin, evidence, fill.
Spec = tuple[str, str, str, str, int, float, Evidence | None, str]


def _compactness(row: Any) -> Evidence:
    """Claim 6's evidence from one row of ``stats/compactness.tsv``."""
    note = row.note if isinstance(getattr(row, "note", ""), str) else ""
    return Evidence(
        float(row.estimate),
        float(row.ci_lo),
        float(row.ci_hi),
        float(row.p_value),
        "stats/compactness.tsv",
        float(row.p_floor),
        note,
    )


def _compactness_specs(table: pd.DataFrame | None, margin: float) -> list[Spec]:
    """Claim 6's specs, one per row of the compactness table (layer, method, comparison, fill) in its
    order, for the comparisons of ``COMPARISONS`` (the random basis is the null, not a claim); none
    without the table."""
    if table is None or table.empty:
        return []
    return [
        (
            "6",
            "knowledge is more compact in SAE features than in "
            + COMPARISONS.get(str(r.comparison), str(r.comparison)),
            str(r.method),
            f"smaller CPR gap (per fraction of the basis, per directions kept), SAE features - "
            f"{r.comparison} (stream L{int(r.layer)}, preserve)",
            +1,
            margin,
            _compactness(r),
            str(r.fill),
        )
        for r in table.itertuples(index=False)
        if str(r.comparison) in COMPARISONS
    ]


def _curve_specs(
    curves: pd.DataFrame, faithful: bool, source: str, fills: list[str], margin: float
) -> dict[str, list[Spec]]:
    """Claims 1, 2 and 4 per fill, from the faithfulness table (``faithful``) or an older folder's gap
    to random: ``{claim: specs}``."""
    get = _cpr_gap if faithful else _auc_gap
    what = "CPR gap to random (accuracy" if faithful else "AUC gap to random ("
    out: dict[str, list[Spec]] = {}
    for claim, statement, method, mode, direction in (
        (
            "1",
            "preserving activation-selected neurons keeps more accuracy than random selections",
            "activation",
            "preserve",
            +1,
        ),
        (
            "2",
            "preserving IG-selected neurons keeps more accuracy than random selections",
            "ig",
            "preserve",
            +1,
        ),
        ("4", "suppressing the top IG neurons hurts more than suppressing random ones", "ig", "suppress", -1),
    ):
        sep = "; " if faithful else ""
        out[claim] = [
            (
                claim,
                statement,
                method,
                f"{what}{sep}global, {mode})",
                direction,
                margin,
                get(curves, method, mode, source, fill),
                fill,
            )
            for fill in fills
        ]
    return out


def robustness(claims: pd.DataFrame) -> pd.DataFrame:
    """``claims`` with ``robust`` and ``other_fills`` filled in (module docstring): per claim, method,
    set and statistic, over its rows of every fill. One fill, or a claim of no fill: both empty."""
    out = claims.copy()
    out["robust"] = pd.array([pd.NA] * len(out), dtype="boolean")
    out["other_fills"] = ""
    keyed = out[out["fill"].astype(str) != ""]
    for _, g in keyed.groupby(["claim", "method", "set", "statistic"], sort=False):
        if len(g) < 2:
            continue
        same = g["verdict"].nunique() == 1
        for i in g.index:
            others = g[g.index != i]
            out.at[i, "robust"] = same
            out.at[i, "other_fills"] = "; ".join(f"{r.fill}: {r.verdict}" for r in others.itertuples())
    return out


def _concept_specs(table: pd.DataFrame | None, margin: float) -> list[Spec]:
    """Claim 7's specs, one per kind of unit of ``concepts/knowledge.tsv`` with a measured gap (no
    fill: the concept alignment ablates nothing)."""
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
            "",
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
    faithfulness: pd.DataFrame | None = None,
    faithfulness_source: str = "stats/faithfulness.tsv",
    intact_by_claim: Mapping[str, IntactModel] | None = None,
    concepts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per claim and fill (``CLAIM_COLUMNS``), from the statistics tables of one evaluation
    set (``density`` None: no density measured, as on an external set).

    ``settings`` is the ``stats`` config section (``confidence``, ``top_fraction`` and the
    ``claims`` margins). A claim whose table lacks its rows (a method not scored, the
    characterisation stage off) gets no row: a missing measurement is not a verdict. ``intact``:
    the intact model on the set, for the baseline rule (None: the rule is not applied, as for
    tables without a model behind them). ``faithfulness``: the set's ``faithfulness`` table
    (``kneurons.stats.random.compare_with_random``), whose accuracy CPR gaps decide claims 1, 2 and 4
    (named ``faithfulness_source``); None (a folder of older code): the AUC gaps of ``random_gap``
    (named ``random_gap_source``) do. ``compactness``: ``stats/compactness.tsv`` (None: no SAE
    features were ablated, no claim 6, and its margin ``claims.compactness_margin`` is not read).
    ``intact_by_claim``: the intact model on the proteins a claim was measured on where they are not
    ``intact``'s (claim 5's held-out proteins), by claim number.
    ``concepts``: ``concepts/knowledge.tsv`` (None: the concept stage did not run, no claim 7, and
    ``claims.concept_margin`` is not read). The fills are those of the curve table, in its order.
    Verdicts are decided on these full-precision values.
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
    faithful = faithfulness is not None
    curves = faithfulness if faithful else with_fill(random_gap)
    fills = fills_of(curves) if not curves.empty else []
    curve = _curve_specs(
        curves, faithful, faithfulness_source if faithful else random_gap_source, fills, margins["auc_margin"]
    )
    specs: list[Spec] = [
        *curve["1"],
        *curve["2"],
        *(
            (
                "3",
                "knowledge neurons are enriched in the key projections (k_proj)",
                m,
                f"log2 enrichment of k_proj in the global top {top:g}",
                +1,
                margins["log2_enrichment_margin"],
                _k_proj_enrichment(density, m, confidence),
                "",
            )
            for m in ("activation", "ig")
        ),
        *curve["4"],
        *(
            (
                "5",
                "class-specific neurons are specific: own-class recall drops more than other classes'",
                "ig",
                "mean over classes of own minus other recall drop",
                +1,
                margins["specificity_margin"],
                _class_specificity(class_specificity, confidence, fill),
                fill,
            )
            for fill in (fills_of(class_specificity) if class_specificity is not None else [])
        ),
    ]
    if compactness is not None:
        specs += _compactness_specs(compactness, margins["compactness_margin"])
    if concepts is not None:
        specs += _concept_specs(concepts, margins["concept_margin"])
    rows = []
    for claim, statement, method, statistic, direction, margin, ev, fill in specs:
        if ev is None:
            continue
        note = note_of(claim)
        why = "; ".join(n for n in (note, ev.note) if n)
        rows.append(
            {
                "claim": claim,
                "statement": statement,
                "method": method,
                "set": set_name,
                "fill": fill,
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
                "verdict": "inconclusive" if why else verdict(ev.ci_lo, ev.ci_hi, direction, margin),
                "note": why,
                "rule": rule_text(direction, margin, confidence),
                "figure": FIGURE_OF[claim],
                "source": ev.source,
            }
        )
    return robustness(pd.DataFrame(rows, columns=CLAIM_COLUMNS))
