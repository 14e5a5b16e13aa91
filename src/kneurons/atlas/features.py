"""The atlas's SAE overview: each SAE's fit to the main run (``features/saes.json``), the quality
rule on every replicate (``features/stats/sae_quality.tsv``), the features' gap to random features,
claim 6's compactness table and the feature figures.

The features themselves are units of the atlas's table (``build_atlas``: ranked among the
features by ``kneurons.ranking``, as their ablation ranks them). Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kneurons.atlas.records import png_uri, records
from kneurons.stats.keys import with_fill
from kneurons.tables import read_sae_report, read_stats_table

#: The SAE section's figures, in page order: file stem -> heading.
FEATURE_FIGURES = {
    "features_accuracy_preserve": "Accuracy when only the top f SAE features are preserved",
    "features_accuracy_suppress": "Accuracy when the top f SAE features are suppressed",
    "compactness": "Claim 6: smallest fraction keeping the accuracy, neurons against SAE features",
    "feature_logos": "Sequence logos of the top IG features",
}


def sae_summaries(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per SAE of ``features/saes.json`` (in layer order): layer, format, F, k, its input point and
    activation scale, FVU at its own layer, at the plain point (where its input point differs) and
    at every other layer it was measured on, loss recovered, dead and dense shares, validation
    tokens, and its training's epochs and held-out FVU when the workflow trained it."""
    out = []
    for sae in sorted(report["saes"], key=lambda s: int(s["layer"])):
        layer = int(sae["layer"])
        fvu = {int(k): float(v) for k, v in (sae.get("fvu") or {}).items()}
        training = sae.get("training") or {}
        out.append(
            {
                "layer": layer,
                "format": sae.get("format"),
                "n_features": int(sae["n_features"]),
                "k": sae.get("k"),
                "input_point": sae.get("input_point"),
                "activation_scale": sae.get("activation_scale"),
                "fvu_own": float(sae["fvu_own"]),
                "fvu_plain": sae.get("fvu_plain"),
                "fvu_neighbours": [{"layer": k, "fvu": v} for k, v in sorted(fvu.items()) if k != layer],
                "loss_recovered": sae.get("loss_recovered"),
                "dead_share": sae.get("dead_share"),
                "dense_share": sae.get("dense_share"),
                "n_tokens": sae.get("n_tokens"),
                "epochs": training.get("epochs"),
                "training_fvu": training.get("fvu"),
            }
        )
    return out


def quality_rows(path: Path) -> list[dict[str, Any]]:
    """The quality rule's rows (``features/stats/sae_quality.tsv``): every replicate and SAE."""
    cols = ["replicate", "layer", "fvu_own", "fvu_plain", "best_other_layer", "fvu_best_other"]
    cols += ["loss_recovered", "dead_share", "dense_share", "fits", "reason"]
    return records(read_stats_table(path, "sae_quality")[cols])


def feature_overview(
    sae_report: Path | None,
    random_gap: Path | None,
    compactness: Path | None,
    figures: Mapping[str, Path],
    sae_quality: Path | None = None,
) -> dict[str, Any] | None:
    """The page's SAE section; None (no section) when no feature input is given."""
    drawn = {stem: path for stem, path in figures.items() if stem in FEATURE_FIGURES}
    if (
        sae_report is None
        and random_gap is None
        and compactness is None
        and sae_quality is None
        and not drawn
    ):
        return None
    gap = None
    if random_gap is not None:
        g = with_fill(read_stats_table(random_gap, "random_gap"))
        gap = records(g[g["scope"] == "global"][["method", "mode", "fill", "auc_gap", "ci_lo", "ci_hi"]])
    compact = None
    if compactness is not None:
        c = read_stats_table(compactness, "compactness")
        cols = ["layer", "method", "fill", "comparison", "gap_fraction", "gap_directions", "estimate"]
        compact = records(c[[*cols, "ci_lo", "ci_hi", "k95_features", "k95_other", "n_features", "n_other"]])
    return {
        "saes": sae_summaries(read_sae_report(sae_report)) if sae_report is not None else [],
        "quality": quality_rows(sae_quality) if sae_quality is not None else None,
        "random_gap": gap,
        "compactness": compact,
        "figures": [
            {"name": stem, "title": title, "src": png_uri(path) if (path := drawn.get(stem)) else None}
            for stem, title in FEATURE_FIGURES.items()
        ],
    }
