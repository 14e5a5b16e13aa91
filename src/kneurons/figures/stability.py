"""Stability of the knowledge neurons across fine-tuning replicates (stats/stability.tsv)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from kneurons.figures.ablation import RC, method_order, style
from kneurons.vocabulary import MODULE_TYPES

JACCARD_LABEL = "Jaccard overlap between replicates"
#: What the shaded bands of the left panel are, in the figure itself.
BAND_LABEL = (
    "shaded, in each method's colour: random selections'\n95% interval (same size, same neurons per module)"
)


def plot_stability(stab: pd.DataFrame) -> Figure:
    """Jaccard overlap of the replicates' top neurons against random selections of the same size
    and module composition.

    Left: the global ranking at each top fraction, one line per method (mean over replicate
    pairs; whiskers: min-max over pairs) over its own random 95% interval (shaded in the method's
    colour; the widest over pairs). Right: per module type at the largest fraction, with the
    random 97.5% quantile. Both panels say in their legends what the bands and marks are, so the
    figure reads without its caption. With one replicate the figure says so.
    """
    with plt.rc_context(RC):
        if stab.empty:
            fig, ax = plt.subplots(figsize=(6, 2.2), layout="constrained")
            ax.axis("off")
            text = "One fine-tuning replicate: no stability to measure\n(set train.replicates >= 2)"
            ax.text(0.5, 0.5, text, ha="center", va="center")
            return fig
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
        glob = stab[stab["level"] == "global"]
        fractions = sorted(glob["k_fraction"].unique())
        x = np.arange(len(fractions))
        methods = method_order(glob["method"].unique())
        for i, method in enumerate(methods):
            label, colour, marker, _ = style(method)
            rows = glob[glob["method"] == method].groupby("k_fraction")
            mean = rows["jaccard"].mean().reindex(fractions)
            lo, hi = rows["jaccard"].min().reindex(fractions), rows["jaccard"].max().reindex(fractions)
            # Each method's own null: random selections with its top sets' module composition.
            band_lo = rows["random_lo"].min().reindex(fractions)
            band_hi = rows["random_hi"].max().reindex(fractions)
            left.fill_between(x, band_lo, band_hi, color=colour, alpha=0.12, linewidth=0)
            offset = (i - (len(methods) - 1) / 2) * 0.06
            left.errorbar(
                x + offset,
                mean,
                yerr=[mean - lo, hi - mean],
                color=colour,
                marker=marker,
                capsize=3,
                label=label,
            )
        left.set_xticks(x, [f"{100 * f:g}%" for f in fractions])
        left.set_xlabel("top fraction of all neurons")
        left.set_ylabel(JACCARD_LABEL)
        n_rep = len(set(stab["replicate_a"]) | set(stab["replicate_b"]))
        left.set_title(f"global ranking ({n_rep} replicates)")
        band = Patch(color="grey", alpha=0.25, linewidth=0, label=BAND_LABEL)
        handles = [*left.get_legend_handles_labels()[0], band]
        title = "mean of replicate pairs (whiskers: min-max)"
        left.legend(handles=handles, fontsize="small", title=title, title_fontsize="small")
        mid = fractions[-1]  # the largest fraction: the fewest ties within a module
        per = stab[(stab["level"] == "module_type") & (stab["k_fraction"] == mid)]
        types = [m for m in MODULE_TYPES if m in set(per["module"])]
        width = 0.8 / max(1, len(methods))
        for i, method in enumerate(methods):
            label, colour, _, _ = style(method)
            vals = per[per["method"] == method].groupby("module")["jaccard"].mean().reindex(types)
            right.bar(
                np.arange(len(types)) + (i - (len(methods) - 1) / 2) * width,
                vals,
                width,
                color=colour,
                label=label,
            )
        hi = per.groupby("module")["random_hi"].max().reindex(types)
        right.scatter(
            np.arange(len(types)),
            hi,
            marker="_",
            s=300,
            color="black",
            label="random selections' 97.5% quantile",
        )
        right.set_xticks(np.arange(len(types)), types)
        right.set_xlabel("module type (its top neurons within the type)")
        right.set_ylabel(JACCARD_LABEL)
        right.set_title(f"per module type, top {100 * mid:g}%")
        right.legend(fontsize="small")
        return fig
