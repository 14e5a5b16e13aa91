"""Layer x module type heatmaps: where the top neurons sit (density), and each module's gap to random."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from kneurons.errors import InputError
from kneurons.figures.ablation import RC, method_order, style
from kneurons.stats.keys import first_fill
from kneurons.vocabulary import MODULE_TYPES

#: Stars mark cells whose Benjamini-Hochberg q-value (``q_enriched``) is below this.
Q_STAR = 0.05


def density_title(density: pd.DataFrame) -> str:
    """What the cells count: the top set's size per replicate and how the replicates were pooled."""
    first = density.iloc[0]
    reps = int(first["n_replicates"]) if "n_replicates" in density.columns else 1
    per_rep = int(first["n_top"]) // reps
    text = f"top {first['top_fraction']:.1%} = {per_rep} of {int(first['n_total'])} neurons"
    if reps > 1:
        text += f" per replicate, counts summed over {reps} replicates"
    return text


def plot_density(density: pd.DataFrame) -> Figure:
    """Heatmaps of knowledge-neuron enrichment, layer x module type, one panel per method.

    Colour: log2 enrichment on a diverging scale centred on 1 (as many as by chance), so that a
    depleted cell (0.25) is as far from neutral as an enriched one (4). Random tables (several
    seeds) show the mean enrichment over seeds. Cells show the enrichment and, below it, the
    count of top neurons (summed over replicates); ``*`` marks q_enriched < ``Q_STAR``
    (Benjamini-Hochberg over the method's groups). The top row ``all`` is the module-type level
    over all layers.
    """
    lm = density[density["level"] == "layer_module"]
    mt = density[density["level"] == "module_type"]
    if lm.empty:
        raise InputError("density table has no layer_module rows")
    methods = method_order(lm["method"].unique())
    types = [m for m in MODULE_TYPES if m in set(lm["module"])]
    layers = sorted(int(v) for v in lm["layer"].unique())
    with np.errstate(divide="ignore"):
        logs = np.log2(density["enrichment"].to_numpy(dtype=float))
    finite = np.abs(logs[np.isfinite(logs)])
    # symmetric limits, at least 2x either way, at most 16x: beyond that the colour saturates
    lim = float(np.clip(finite.max() if finite.size else 1.0, 1.0, 4.0))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            1,
            len(methods),
            figsize=(0.6 * len(types) * len(methods) + 2.2, 0.45 * (len(layers) + 1) + 1.8),
            squeeze=False,
            layout="constrained",
        )
        im = None
        for ax, method in zip(axes[0], methods, strict=False):
            rows = ["all", *[str(v) for v in layers]]
            val = np.full((len(rows), len(types)), np.nan)
            cnt = np.full_like(val, np.nan)
            sig = np.zeros_like(val, dtype=bool)
            for j, t in enumerate(types):
                cells = [mt[(mt["method"] == method) & (mt["module"] == t)]]
                cells += [
                    lm[(lm["method"] == method) & (lm["module"] == t) & (lm["layer"] == layer)]
                    for layer in layers
                ]
                for i, c in enumerate(cells):
                    if not c.empty:
                        val[i, j], cnt[i, j] = c["enrichment"].mean(), c["count"].mean()
                        sig[i, j] = len(c) == 1 and c["q_enriched"].iloc[0] < Q_STAR
            with np.errstate(divide="ignore"):
                shade = np.clip(np.log2(val), -lim, lim)
            im = ax.imshow(shade, cmap="RdBu_r", norm=norm, aspect="auto")
            for i in range(len(rows)):
                for j in range(len(types)):
                    if np.isnan(val[i, j]):
                        continue
                    colour = "white" if abs(shade[i, j]) > 0.6 * lim else "black"
                    star = "*" if sig[i, j] else ""
                    n = f"{cnt[i, j]:.0f}" if float(cnt[i, j]).is_integer() else f"{cnt[i, j]:.1f}"
                    ax.text(
                        j,
                        i,
                        f"{val[i, j]:.1f}{star}\n({n})",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color=colour,
                    )
            ax.axhline(0.5, color="black", lw=1.5)
            ax.set_xticks(range(len(types)))
            ax.set_xticklabels(types, rotation=45, ha="right")
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels(rows)
            ax.set_xlabel("module type")
            seeds = lm.loc[lm["method"] == method, "seed"].dropna().nunique()
            ax.set_title(style(method)[0] + (f"\n(mean of {seeds} seeds)" if seeds > 1 else ""))
        axes[0][0].set_ylabel("layer (0 = first)")
        cb = fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, pad=0.02, extend="both")
        ticks = np.arange(-int(lim), int(lim) + 1)
        cb.set_ticks(ticks, labels=[f"{2.0**t:g}" for t in ticks])
        cb.set_label("enrichment, log scale (1 = as by chance)\n(share of top neurons / share of all)")
        fig.suptitle(
            f"Where the knowledge neurons sit: {density_title(density)}\n"
            f"cell: enrichment (count of top neurons); * enriched, Benjamini-Hochberg q < {Q_STAR:g}"
        )
    return fig


def plot_layer_module_gap(gap: pd.DataFrame) -> Figure:
    """AUC gap to random of each single module (layer_module scope): layer x module type, per method,
    mode; the first fill's (``first_fill``), named in the title."""
    gap, fill = first_fill(gap)
    g = gap[gap["scope"] == "layer_module"]
    if g.empty:
        raise InputError("no layer_module rows in the random-gap table")
    methods = method_order(g["method"].unique())
    modes = [m for m in ("preserve", "suppress") if m in set(g["mode"])]
    types = [m for m in MODULE_TYPES if m in set(g["module"])]
    layers = sorted(int(v) for v in g["layer"].unique())
    lim = max(0.05, float(np.nanmax(np.abs(g["auc_gap"].to_numpy(dtype=float)))))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            len(modes),
            len(methods),
            figsize=(0.6 * len(types) * len(methods) + 2.2, 0.45 * len(layers) * len(modes) + 2.0),
            squeeze=False,
            layout="constrained",
            sharex=True,
        )
        im = None
        for r, mode in enumerate(modes):
            for c, method in enumerate(methods):
                ax = axes[r][c]
                val = np.full((len(layers), len(types)), np.nan)
                sig = np.zeros_like(val, dtype=bool)
                for i, layer in enumerate(layers):
                    for j, t in enumerate(types):
                        row = g[
                            (g["method"] == method)
                            & (g["mode"] == mode)
                            & (g["layer"] == layer)
                            & (g["module"] == t)
                        ]
                        if not row.empty:
                            val[i, j] = row["auc_gap"].iloc[0]
                            sig[i, j] = bool(row["excludes_zero"].iloc[0])
                im = ax.imshow(val, cmap="PuOr", vmin=-lim, vmax=lim, aspect="auto")
                for i in range(len(layers)):
                    for j in range(len(types)):
                        if not np.isnan(val[i, j]):
                            colour = "white" if abs(val[i, j]) > 0.6 * lim else "black"
                            text = f"{val[i, j]:+.2f}{'*' if sig[i, j] else ''}"
                            ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color=colour)
                ax.set_xticks(range(len(types)))
                ax.set_yticks(range(len(layers)))
                ax.set_yticklabels(layers)
                ax.set_title(f"{style(method)[0]}, {mode}")
                if c == 0:
                    ax.set_ylabel("layer (0 = first)")
                if r == len(modes) - 1:
                    ax.set_xticklabels(types, rotation=45, ha="right")
                    ax.set_xlabel("module type")
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
        cb.set_label("AUC gap to random\n(area under accuracy vs f)")
        fig.suptitle(
            "Ablating one module of one layer: method's area under the accuracy curve minus random's\n"
            f"({fill} fill) * its 95% bootstrap interval excludes 0"
        )
    return fig
