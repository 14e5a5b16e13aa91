"""The planted-knowledge benchmark's figure: precision-recall curves of S per method and variant."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from kneurons.errors import InputError
from kneurons.figures.ablation import RC, method_order, style

#: What the legend says of the oracle-like upper bound.
ORACLE = {"delta": " (oracle-like upper bound)"}


def plot_precision_recall(curves: pd.DataFrame, recovery: pd.DataFrame) -> Figure:
    """One panel per variant: each method's precision vs recall of S (log y, pooled over the plantings),
    random's expected precision ``|S|/N`` as a dotted line; the legend gives each method's AUPRC."""
    variants = [v for v in ("spread", "concentrated") if (curves["variant"] == v).any()]
    variants += sorted(set(curves["variant"]) - set(variants))
    if not variants:
        raise InputError("no precision-recall curves to plot")
    with plt.rc_context(RC):
        # the curves on top, each panel's legend (its methods' AUPRC) in a panel of its own below
        fig, axes = plt.subplots(
            2,
            len(variants),
            figsize=(4.0 * len(variants), 4.4),
            squeeze=False,
            gridspec_kw={"height_ratios": [3, 1.3]},
        )
        for ax, legend_ax, variant in zip(axes[0], axes[1], variants, strict=True):
            sub = curves[curves["variant"] == variant]
            rec = recovery[recovery["variant"] == variant].set_index("method")
            prevalence = float(sub["prevalence"].iloc[0])
            for method in method_order(sub["method"].unique()):
                m = sub[sub["method"] == method].sort_values("recall")
                label, colour, _, ls = style(method)
                auprc = f"AUPRC {rec.loc[method, 'auprc']:.3f}" if method in rec.index else ""
                ax.plot(
                    m["recall"],
                    m["precision"].clip(lower=prevalence / 4),
                    color=colour,
                    ls=ls,
                    lw=1.4,
                    label=f"{label}{ORACLE.get(method, '')}: {auprc}",
                )
            ax.axhline(
                prevalence,
                color="black",
                lw=0.8,
                ls=(0, (1, 2)),
                label=f"random expects |S|/N = {prevalence:.3f}",
            )
            ax.set_yscale("log")
            ax.set_ylim(prevalence / 4, 1.05)
            ax.set_xlim(0, 1)
            ax.set_xlabel("recall (share of S found)")
            n_units, n_total = int(rec["n_units"].iloc[0]), int(rec["n_total"].iloc[0])
            where = "every module" if variant == "spread" else f"{rec['module'].iloc[0]} only"
            ax.set_title(f"{variant}: |S| = {n_units} of {n_total} neurons,\ndrawn from {where}")
            legend_ax.axis("off")
            legend_ax.legend(*ax.get_legend_handles_labels(), loc="upper center", frameon=False, fontsize=7)
        axes[0][0].set_ylabel("precision (share of S)")
        reps = int(recovery["n_replicates"].iloc[0])
        fig.suptitle(
            f"Planted knowledge: does each method's ranking of all neurons find S?\n"
            f"(precision vs recall, log y; mean of {reps} planting(s) per variant)",
            y=1.04,
        )
        fig.tight_layout()
    return fig
