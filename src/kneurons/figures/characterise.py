"""Figures of the characterisation stage: sequence logos, site AUROC by module type, class specificity.

Torch-free on purpose (the figure rules run in the plots environment); the inputs are the
tables that ``kneurons.characterise`` writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import logomaker
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kneurons.stats.keys import first_fill
from kneurons.vocabulary import FEATURE_MODULE, MODULE_TYPES


def _message(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()


def _neuron_title(row: pd.Series) -> str:
    if row["module"] == FEATURE_MODULE:  # a feature's unit name (DESIGN.md, "Features")
        parts = [f"#{int(row['rank'])} L{int(row['layer'])}.{FEATURE_MODULE}.{int(row['neuron'])}"]
    else:
        parts = [f"#{int(row['rank'])} L{int(row['layer'])} {row['module']} {int(row['neuron'])}"]
    if isinstance(row.get("top_class"), str):
        parts.append(f"class {row['top_class']}")
    if pd.notna(row.get("site_auroc")):
        parts.append(f"AUROC {row['site_auroc']:.2f}")
    return ", ".join(parts)


def plot_logos(neurons: pd.DataFrame, pfm: pd.DataFrame, n: int = 8, ncols: int = 2) -> plt.Figure:
    """Information-content logos of the best windows of the ``n`` top-ranked neurons."""
    top = neurons.sort_values("rank").head(n)
    nrows = max(1, int(np.ceil(len(top) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 1.8 * nrows), squeeze=False)
    for ax in axes.flat[len(top) :]:
        ax.set_axis_off()
    if top.empty:
        _message(axes.flat[0], "no neurons characterised")
        return fig
    for ax, (_, row) in zip(axes.flat, top.iterrows(), strict=False):
        sel = pfm[
            (pfm["layer"] == row["layer"])
            & (pfm["module"] == row["module"])
            & (pfm["neuron"] == row["neuron"])
        ]
        counts = sel.pivot_table(index="position", columns="residue", values="count", aggfunc="sum").fillna(0)
        if counts.to_numpy().sum() == 0:
            _message(ax, "no windows")
            continue
        info = logomaker.transform_matrix(counts, from_type="counts", to_type="information")
        logomaker.Logo(info, ax=ax, color_scheme="chemistry", show_spines=False)
        width = len(counts)
        ax.set_xticks(range(width))
        ax.set_xticklabels([str(i - (width - 1) // 2) for i in range(width)], fontsize=7)
        ax.set_ylabel("bits", fontsize=8)
        ax.set_title(_neuron_title(row), fontsize=8)
    fig.tight_layout()
    return fig


def plot_auroc_by_module(neurons: pd.DataFrame, annotation: str = "", alpha: float = 0.05) -> plt.Figure:
    """Site AUROC of the characterised neurons by module type and by layer (0.5 = no enrichment);
    neurons with BH q < ``alpha`` in red."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    a = neurons["site_auroc"].astype(float) if "site_auroc" in neurons else pd.Series(dtype=float)
    if not a.notna().any():
        # One message across the figure (two panel-centred copies would overlap).
        axes[1].set_axis_off()
        _message(axes[0], "")
        fig.text(
            0.5,
            0.5,
            f"Site AUROC not computed: {annotation or 'no residue annotations in the data'}",
            ha="center",
            va="center",
            wrap=True,
        )
        return fig
    df = neurons[a.notna()]
    significant = df["site_q"] < alpha
    for ax, by, order in (
        (axes[0], "module", [m for m in MODULE_TYPES if m in set(df["module"])]),
        (axes[1], "layer", sorted(df["layer"].unique())),
    ):
        data = [df.loc[df[by] == g, "site_auroc"].to_numpy() for g in order]
        ax.boxplot(data, showfliers=False)
        rng = np.random.default_rng(0)
        for i, g in enumerate(order):
            sel = df[by] == g
            x = i + 1 + rng.uniform(-0.15, 0.15, int(sel.sum()))
            ax.scatter(
                x,
                df.loc[sel, "site_auroc"],
                s=12,
                c=np.where(significant[sel], "tab:red", "tab:gray"),
                zorder=3,
            )
        ax.set_xticks(range(1, len(order) + 1))
        ax.set_xticklabels([str(g) for g in order])
        ax.axhline(0.5, ls="--", c="k", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_xlabel("module type" if by == "module" else "layer")
        ax.set_ylabel("site AUROC")
    axes[0].set_title(f"red: BH q < {alpha:g}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_class_specificity(matrix: pd.DataFrame, overlap: pd.DataFrame) -> plt.Figure:
    """Left: recall change of each class (columns) when a class's neurons (rows) are suppressed
    (the first fill's, ``first_fill``, named in the title). Right: Jaccard overlap of the class
    neuron sets."""
    matrix, fill = first_fill(matrix)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    if matrix.empty:
        _message(axes[0], "no class-conditional scores")
    else:
        labels = list(dict.fromkeys(matrix["evaluated"]))
        rows = list(dict.fromkeys(matrix["suppressed"]))
        m = matrix.pivot(index="suppressed", columns="evaluated", values="recall_change").reindex(
            index=rows, columns=labels
        )
        lim = max(0.05, float(np.nanmax(np.abs(m.to_numpy()))))
        im = axes[0].imshow(m.to_numpy(), cmap="RdBu", vmin=-lim, vmax=lim)
        _annotate(axes[0], m.to_numpy(), rows, labels, dark=lambda v: abs(v) > 0.6 * lim)
        axes[0].set_xlabel("evaluated class")
        axes[0].set_ylabel("suppressed class's neurons")
        axes[0].set_title(f"recall change ({fill} fill)")
        fig.colorbar(im, ax=axes[0], shrink=0.8, label="recall change (suppressed - intact)")
    if overlap.empty:
        _message(axes[1], "no class neuron sets")
    else:
        labels = list(dict.fromkeys(overlap["class_a"]))
        j = overlap.pivot(index="class_a", columns="class_b", values="jaccard").reindex(
            index=labels, columns=labels
        )
        im = axes[1].imshow(j.to_numpy(), cmap="viridis", vmin=0, vmax=1)
        _annotate(axes[1], j.to_numpy(), labels, labels, dark=lambda v: v < 0.6)
        axes[1].set_title("Jaccard overlap of class neuron sets")
        axes[1].set_xlabel("class")
        axes[1].set_ylabel("class")
        fig.colorbar(im, ax=axes[1], shrink=0.8, label="Jaccard index (0-1)")
    fig.tight_layout()
    return fig


def _annotate(ax: plt.Axes, values: np.ndarray, rows: Sequence[str], cols: Sequence[str], dark=None) -> None:
    """Tick labels and, for small matrices, the value in each cell (white where ``dark(value)``)."""
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    if values.size <= 400:
        for i in range(values.shape[0]):
            for k in range(values.shape[1]):
                if np.isfinite(values[i, k]):
                    colour = "white" if dark is not None and dark(values[i, k]) else "black"
                    ax.text(k, i, f"{values[i, k]:.2f}", ha="center", va="center", fontsize=7, color=colour)
