"""Claim 6's figure: at each SAE's stream, the four bases' preserve curves on one axis of directions
kept (``stats/bases_curves.tsv``), with claim 6's statistics (``stats/compactness.tsv``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kneurons.errors import InputError
from kneurons.figures.ablation import RC, method_order, style
from kneurons.stats.keys import fills_of, with_fill
from kneurons.vocabulary import BASIS_NAMES

#: Basis -> (colour, marker, line style): Okabe-Ito colours and distinct markers and dashes, so the
#: four curves of a panel stay apart in grayscale; the SAE's features solid and darkest.
BASIS_STYLE: dict[str, tuple[str, str, object]] = {
    "features": ("#000000", "o", "-"),
    "dimensions": ("#E69F00", "s", (0, (4, 2))),
    "pca": ("#0072B2", "^", (0, (6, 2, 1, 2))),
    "random_basis": ("#999999", "x", (0, (1, 1.5))),
}


def _points(curves: pd.DataFrame, layer: int, method: str, fill: str, basis: str) -> pd.DataFrame:
    """Accuracy per number of directions kept, both grids of one basis merged (a count on both is
    one mask: the same accuracy), sorted by directions kept."""
    rows = curves[
        (curves["layer"] == layer)
        & (curves["method"] == method)
        & (curves["fill"].astype(str) == fill)
        & (curves["basis"] == basis)
        & (curves["mode"] == "preserve")
    ]
    kept = rows["kept"] if "kept" in rows else rows["n_scope"] - rows["n_filled"]
    out = pd.DataFrame({"kept": kept.astype(float), "accuracy": rows["accuracy"].astype(float)})
    return out.groupby("kept", as_index=False)["accuracy"].mean().sort_values("kept")


def _title(table: pd.DataFrame, layer: int, method: str, fill: str) -> str:
    rows = table[
        (table["layer"] == layer) & (table["method"] == method) & (table["fill"].astype(str) == fill)
    ]
    lines = [f"{style(method)[0]}, {fill} fill, stream L{layer}"]
    for r in rows.itertuples():
        if r.comparison == "random_basis":
            continue
        lines.append(
            f"vs {r.comparison}: min CPR gap {r.estimate:+.2f} [{r.ci_lo:+.2f}, {r.ci_hi:+.2f}]"
            if np.isfinite(r.ci_lo)
            else f"vs {r.comparison}: min CPR gap {r.estimate:+.2f}"
        )
    return "\n".join(lines)


def plot_compactness(compactness: pd.DataFrame, curves: pd.DataFrame) -> Figure:
    """One panel per SAE stream, fill and non-random method: test accuracy against the number of
    directions kept (log x; the empty set at the left edge), for the SAE's features, the stream's
    dimensions, its PCA components and a random orthogonal basis, each basis's directions ranked by
    the method and the rest filled; the intact accuracy dashed. Titles give claim 6's statistic."""
    compactness, curves = with_fill(compactness), with_fill(curves)
    if compactness.empty or "basis" not in curves:
        raise InputError("no same-site bases to plot (stats/compactness.tsv, stats/bases_curves.tsv)")
    layers = sorted(int(v) for v in compactness["layer"].unique())
    methods = [m for m in method_order(compactness["method"].astype(str).unique()) if m != "random"]
    fills = fills_of(compactness)
    panels = [(layer, fill, method) for layer in layers for fill in fills for method in methods]
    full = float(curves["full_accuracy"].iloc[0]) if "full_accuracy" in curves else None
    keep = float(compactness["keep_accuracy"].iloc[0]) if "keep_accuracy" in compactness else 0.95
    with plt.rc_context(RC):
        ncols = len(methods)
        nrows = len(panels) // ncols
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows), sharey=True, squeeze=False)
        for ax, (layer, fill, method) in zip(axes.ravel(), panels, strict=True):
            width = 1.0
            for basis, (colour, marker, ls) in BASIS_STYLE.items():
                pts = _points(curves, layer, method, fill, basis)
                if pts.empty:
                    continue
                width = max(width, float(pts["kept"].max()))
                # the empty set (0 kept) sits at 0.5 on the log axis, labelled 0
                x = np.where(pts["kept"] > 0, pts["kept"], 0.5)
                ax.plot(x, pts["accuracy"], color=colour, marker=marker, ls=ls, ms=3.5, lw=1.3)
            if full is not None:
                ax.axhline(full, color="black", lw=0.7, ls=(0, (4, 2)))
                ax.axhline(keep * full, color="black", lw=0.5, ls=(0, (1, 2)))
            ax.set_xscale("log", base=2)
            ticks = [0.5, *[2**i for i in range(int(np.log2(width)) + 1)]]
            ax.set_xticks(ticks, ["0", *[f"{int(t)}" for t in ticks[1:]]])
            ax.set_xlim(0.4, width * 1.15)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("directions kept (log scale)")
            ax.set_title(_title(compactness, layer, method, fill), fontsize=7.5)
        for row in axes:
            row[0].set_ylabel("test accuracy")
        handles = [
            plt.Line2D([], [], color=c, marker=m, ls=ls, ms=3.5, label=BASIS_NAMES[b])
            for b, (c, m, ls) in BASIS_STYLE.items()
        ]
        if full is not None:
            handles.append(plt.Line2D([], [], color="black", lw=0.7, ls=(0, (4, 2)), label="intact model"))
            handles.append(
                plt.Line2D([], [], color="black", lw=0.5, ls=(0, (1, 2)), label=f"{keep:.0%} of intact")
            )
        fig.legend(handles=handles, loc="upper center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle(
            "Claim 6 at the same site: the bases of each SAE stream, top directions kept (by the method), "
            "the rest filled\n"
            "min CPR gap: the smaller of the features' normalised-faithfulness advantages per fraction "
            "and per direction (> 0: features more compact)",
            y=1.02,
        )
        fig.tight_layout()
    return fig
