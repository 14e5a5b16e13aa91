"""Paper figures from the tidy result tables (torch-free; runs in the plots environment).

One style for every figure: methods keep their colour, marker and line style everywhere
(colour-blind-safe Okabe-Ito colours, and distinct markers and dashes so that a grayscale print
stays readable); random selections are a grey band (2.5-97.5 percentile over seeds) around a
dotted mean. Axes name the quantity and its unit. Each ``plot_*`` returns a matplotlib Figure;
``save_figure`` writes it atomically in every requested format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kneurons.ablation.selection import MODULE_TYPES
from kneurons.errors import InputError
from kneurons.io import atomic_path

#: Method -> (label, colour, marker, line style). Unknown methods get a fallback style.
METHOD_STYLE: dict[str, tuple[str, str, str, str]] = {
    "activation": ("activation", "#0072B2", "o", "-"),
    "ig": ("integrated gradients", "#D55E00", "s", "--"),
    "gradxact": ("gradient x activation", "#009E73", "^", "-."),
    "random": ("random", "#555555", "", ":"),
}
HATCHES = {"activation": "", "ig": "///", "gradxact": "...", "random": "xx"}
RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}
MODE_AXIS = {
    "preserve": "fraction of neurons preserved, f (others filled)",
    "suppress": "fraction of neurons suppressed, f (top-f filled)",
}
F_TICKS = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]


def style(method: str) -> tuple[str, str, str, str]:
    """(label, colour, marker, line style) of a method."""
    return METHOD_STYLE.get(method, (method, "#CC79A7", "D", (0, (1, 1))))


def method_order(methods: Sequence[str]) -> list[str]:
    """Known methods first in a fixed order, then the others sorted."""
    known = [m for m in METHOD_STYLE if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def save_figure(
    fig: Figure, base: str | Path, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150
) -> list[Path]:
    """Write ``fig`` to ``base.<fmt>`` for every format, atomically; closes the figure."""
    paths = []
    try:
        for fmt in formats:
            path = Path(f"{base}.{fmt}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def _f_axis(ax, mode: str | None = None) -> None:
    ax.set_xscale("symlog", linthresh=0.01, linscale=0.5)
    ax.set_xlim(0, 1)
    ax.set_xticks(F_TICKS)
    ax.set_xticklabels(["0", ".01", ".02", ".05", ".1", ".2", ".5", "1"])
    if mode:
        ax.set_xlabel(MODE_AXIS[mode])


def _random_band(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    g = rows.groupby("f")[metric]
    return pd.DataFrame({"mean": g.mean(), "lo": g.quantile(0.025), "hi": g.quantile(0.975), "n": g.size()})


def _run_note(curves: pd.DataFrame) -> str:
    n_test = int(curves["n_test"].iloc[0]) if "n_test" in curves else None
    seeds = sorted(int(s) for s in curves.loc[curves["method"] == "random", "seed"].dropna().unique())
    fill = curves["fill"].iloc[0] if "fill" in curves else "?"
    parts = [f"test proteins n = {n_test}" if n_test else None, f"fill = {fill}"]
    if seeds:
        parts.append(f"random: {len(seeds)} seeds")
    return "; ".join(p for p in parts if p)


def _n_classes(curves: pd.DataFrame) -> int | None:
    n = sum(1 for c in curves.columns if str(c).startswith("recall_"))
    return n or None


def plot_ablation_curves(curves: pd.DataFrame, mode: str, metric: str = "accuracy") -> Figure:
    """Metric vs f for one mode: a panel for the global scope and one per module type; random as a band."""
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError(f"unknown metric {metric!r}")
    df = curves[curves["mode"] == mode]
    if df.empty:
        raise InputError(f"no ablation rows with mode {mode!r}")
    panels = [("global", "global")] if (df["scope"] == "global").any() else []
    types = [m for m in MODULE_TYPES if ((df["scope"] == "module_type") & (df["scope_name"] == m)).any()]
    panels += [("module_type", m) for m in types]
    if not panels:
        raise InputError("no global or module_type ablation rows to plot")
    full = float(curves["full_accuracy"].iloc[0]) if "full_accuracy" in curves else None
    k = _n_classes(curves)
    ylabel = "test accuracy" if metric == "accuracy" else "test macro-F1"
    with plt.rc_context(RC):
        ncols = min(4, len(panels) + 1)
        nrows = int(np.ceil((len(panels) + 1) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.3 * nrows), sharey=True, squeeze=False)
        flat = axes.ravel()
        for ax, (scope, name) in zip(flat, panels, strict=False):
            sub = df[(df["scope"] == scope) & (df["scope_name"] == name)]
            rnd = sub[sub["method"] == "random"]
            if not rnd.empty:
                band = _random_band(rnd, metric)
                label, colour, _, ls = style("random")
                ax.fill_between(band.index, band["lo"], band["hi"], color="#BBBBBB", alpha=0.6, lw=0)
                ax.plot(band.index, band["mean"], color=colour, ls=ls, lw=1.2)
            for method in method_order(sub["method"].unique()):
                if method == "random":
                    continue
                m = sub[sub["method"] == method].sort_values("f")
                label, colour, marker, ls = style(method)
                ax.plot(m["f"], m[metric], color=colour, marker=marker, ls=ls, ms=3.5, lw=1.3)
            if full is not None and metric == "accuracy":
                ax.axhline(full, color="black", lw=0.7, ls=(0, (4, 2)))
            if k:
                ax.axhline(1 / k, color="black", lw=0.6, ls=(0, (1, 2)))
            title = "all modules (global)" if scope == "global" else f"{name} (all layers)"
            ax.set_title(title)
            _f_axis(ax)
            ax.set_ylim(0, 1.02)
        short = "fraction preserved, f" if mode == "preserve" else "fraction suppressed, f"
        for ax in flat[: len(panels)]:
            ax.set_xlabel(short)
        for row in axes:
            row[0].set_ylabel(ylabel)
        legend_ax = flat[len(panels)]
        legend_ax.axis("off")
        handles = []
        for method in method_order(df["method"].unique()):
            label, colour, marker, ls = style(method)
            if method == "random":
                handles.append(
                    (
                        plt.Line2D(
                            [],
                            [],
                            color=colour,
                            ls=ls,
                            lw=1.2,
                            label="random (mean; band: 2.5-97.5% of seeds)",
                        ),
                        matplotlib.patches.Patch(color="#BBBBBB", alpha=0.6),
                    )
                )
            else:
                handles.append(plt.Line2D([], [], color=colour, marker=marker, ls=ls, ms=3.5, label=label))
        labels = [h[0].get_label() if isinstance(h, tuple) else h.get_label() for h in handles]
        if full is not None and metric == "accuracy":
            handles.append(plt.Line2D([], [], color="black", lw=0.7, ls=(0, (4, 2))))
            labels.append(f"intact model ({full:.3f})")
        if k:
            handles.append(plt.Line2D([], [], color="black", lw=0.6, ls=(0, (1, 2))))
            labels.append(f"chance (1/{k})")
        legend_ax.legend(handles, labels, loc="center left", frameon=False, title="neurons selected by")
        for ax in flat[len(panels) + 1 :]:
            ax.axis("off")
        verb = "Preserve" if mode == "preserve" else "Suppress"
        fig.suptitle(f"{verb} the top-f neurons: {ylabel} vs f, symlog x axis ({_run_note(curves)})", y=1.0)
        fig.tight_layout()
    return fig


def plot_density(density: pd.DataFrame) -> Figure:
    """Heatmaps of knowledge-neuron enrichment, layer x module type, one panel per method.

    Random tables (several seeds) show the mean enrichment over seeds. Cells show the
    enrichment and, below it, the count of top neurons; ``*`` marks p_enriched < 0.05.
    The top row ``all`` is the module-type level over all layers.
    """
    lm = density[density["level"] == "layer_module"]
    mt = density[density["level"] == "module_type"]
    if lm.empty:
        raise InputError("density table has no layer_module rows")
    methods = method_order(lm["method"].unique())
    types = [m for m in MODULE_TYPES if m in set(lm["module"])]
    layers = sorted(int(v) for v in lm["layer"].unique())
    top = density[["n_top", "n_total", "top_fraction"]].iloc[0]
    vmax = max(2.0, float(np.nanmax(density["enrichment"].to_numpy(dtype=float))))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            1, len(methods), figsize=(0.6 * len(types) * len(methods) + 2.2, 0.45 * (len(layers) + 1) + 1.8),
            squeeze=False, layout="constrained",
        )  # fmt: skip
        im = None
        for ax, method in zip(axes[0], methods, strict=False):
            rows = ["all", *[str(v) for v in layers]]
            val = np.full((len(rows), len(types)), np.nan)
            cnt = np.full_like(val, np.nan)
            sig = np.zeros_like(val, dtype=bool)
            for j, t in enumerate(types):
                a = mt[(mt["method"] == method) & (mt["module"] == t)]
                if not a.empty:
                    val[0, j], cnt[0, j] = a["enrichment"].mean(), a["count"].mean()
                    sig[0, j] = len(a) == 1 and a["p_enriched"].iloc[0] < 0.05
                for i, layer in enumerate(layers, start=1):
                    c = lm[(lm["method"] == method) & (lm["module"] == t) & (lm["layer"] == layer)]
                    if not c.empty:
                        val[i, j], cnt[i, j] = c["enrichment"].mean(), c["count"].mean()
                        sig[i, j] = len(c) == 1 and c["p_enriched"].iloc[0] < 0.05
            im = ax.imshow(val, cmap="cividis", vmin=0, vmax=vmax, aspect="auto")
            for i in range(len(rows)):
                for j in range(len(types)):
                    if np.isnan(val[i, j]):
                        continue
                    colour = "black" if val[i, j] > 0.6 * vmax else "white"
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
            ax.axhline(0.5, color="white", lw=2)
            ax.set_xticks(range(len(types)))
            ax.set_xticklabels(types, rotation=45, ha="right")
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels(rows)
            ax.set_xlabel("module type")
            seeds = lm.loc[lm["method"] == method, "seed"].dropna().nunique()
            ax.set_title(style(method)[0] + (f"\n(mean of {seeds} seeds)" if seeds > 1 else ""))
        axes[0][0].set_ylabel("layer (0 = first)")
        cb = fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, pad=0.02)
        cb.set_label("enrichment\n(share of top neurons / share of all)")
        fig.suptitle(
            f"Where the global top {top['top_fraction']:.1%} neurons sit (N = {int(top['n_top'])} of "
            f"{int(top['n_total'])})\ncell: enrichment (count of top neurons); * p < 0.05 vs random selection"
        )
    return fig


def plot_threshold_bars(summary: pd.DataFrame) -> Figure:
    """Smallest f keeping ``keep_accuracy`` of full accuracy (preserve), per module type (and global) and method."""
    s = summary[(summary["mode"] == "preserve") & summary["scope"].isin(["global", "module_type"])]
    if s.empty:
        raise InputError("summary has no preserve rows for the global or module_type scope")
    groups = (["global"] if (s["scope"] == "global").any() else []) + [
        m for m in MODULE_TYPES if ((s["scope"] == "module_type") & (s["scope_name"] == m)).any()
    ]
    methods = method_order(s["method"].unique())
    keep = float(s["keep_accuracy"].iloc[0])
    width = 0.8 / len(methods)
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(1.0 * len(groups) + 2.2, 3.0))
        for i, method in enumerate(methods):
            label, colour, _, _ = style(method)
            xs, heights, errs, missing = [], [], [[], []], []
            for g, name in enumerate(groups):
                rows = s[(s["method"] == method) & (s["scope_name"] == name)]
                if rows.empty:
                    continue
                vals = rows["f_threshold"].to_numpy(dtype=float)
                x = g - 0.4 + width * (i + 0.5)
                if np.isnan(vals).all():
                    missing.append(x)
                    continue
                v = np.nanmean(vals)
                xs.append(x)
                heights.append(v)
                errs[0].append(v - np.nanmin(vals))
                errs[1].append(np.nanmax(vals) - v)
            kw = {"yerr": errs, "capsize": 2, "error_kw": {"lw": 0.8}} if method == "random" else {}
            name = "random (mean; whiskers: min-max of seeds)" if method == "random" else label
            bars = ax.bar(
                xs, heights, width=width * 0.95, color=colour if method != "random" else "#BBBBBB",
                edgecolor="black", lw=0.5, hatch=HATCHES.get(method, ""), label=name, **kw,
            )  # fmt: skip
            for bar, h, up in zip(bars, heights, errs[1], strict=False):
                top = h + (up if method == "random" else 0.0)
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    top + 0.015,
                    f"{h:.2g}",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                )
            if missing:
                ax.scatter(missing, [1.04] * len(missing), marker="x", color="black", s=14, zorder=3)
        ax.scatter([], [], marker="x", color="black", s=14, label="never reached on the f grid")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(["all (global)" if g == "global" else g for g in groups], rotation=30, ha="right")
        ax.set_ylim(0, 1.15)
        ax.set_ylabel(f"smallest fraction f preserved\nkeeping {keep:.0%} of intact accuracy")
        ax.set_xlabel("selection scope (a module type = that module in all layers)")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_title(
            f"Fewest neurons that keep {keep:.0%} of the intact test accuracy\n(lower = knowledge more concentrated)",
            loc="left",
        )
        fig.tight_layout()
    return fig


def plot_layer_module_gap(gap: pd.DataFrame) -> Figure:
    """AUC gap to random of each single module (layer_module scope): layer x module type, per method and mode."""
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
            len(modes), len(methods), figsize=(0.6 * len(types) * len(methods) + 2.2, 0.45 * len(layers) * len(modes) + 2.0),
            squeeze=False, layout="constrained", sharex=True,
        )  # fmt: skip
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
            "* its 95% bootstrap interval excludes 0"
        )
    return fig


def plot_training_curve(curve: pd.DataFrame, metrics: dict | None = None) -> Figure:
    """Fine-tuning: training loss and validation accuracy / macro-F1 per epoch; the best epoch marked."""
    for col in ("epoch", "train_loss"):
        if col not in curve.columns:
            raise InputError(f"training curve lacks column {col!r}")
    if curve.empty:
        raise InputError("training curve is empty")
    best = (metrics or {}).get("best_epoch")
    with plt.rc_context(RC):
        fig, (a, b) = plt.subplots(1, 2, figsize=(7.0, 2.7))
        a.plot(curve["epoch"], curve["train_loss"], color="black", marker="o", ms=3, lw=1.2)
        a.set_xlabel("epoch")
        a.set_ylabel("training loss (cross-entropy, nats)")
        a.set_title("training loss")
        for col, (label, colour, marker, ls) in (
            ("val_accuracy", ("validation accuracy", "#0072B2", "o", "-")),
            ("val_macro_f1", ("validation macro-F1", "#D55E00", "s", "--")),
        ):
            if col in curve.columns:
                b.plot(
                    curve["epoch"], curve[col], color=colour, marker=marker, ls=ls, ms=3, lw=1.2, label=label
                )
        b.set_xlabel("epoch")
        b.set_ylabel("score (0-1)")
        b.set_ylim(0, 1.02)
        b.set_title("validation")
        if best is not None:
            for ax in (a, b):
                ax.axvline(best, color="grey", lw=0.8, ls=":")
            b.plot([], [], color="grey", lw=0.8, ls=":", label=f"best epoch ({best})")
        b.legend(frameon=False, loc="lower right")
        test = (metrics or {}).get("test")
        note = (
            f"; test accuracy {test['accuracy']:.3f}, macro-F1 {test['macro_f1']:.3f} (n = {test['n']})"
            if test
            else ""
        )
        fig.suptitle(f"Fine-tuning{note}")
        fig.tight_layout()
    return fig


def plot_confusion(metrics: dict, part: str = "test") -> Figure:
    """Confusion matrix of ``metrics[part]`` (rows: true class, normalised to recall; counts annotated)."""
    m = metrics.get(part)
    if not m or "confusion_matrix" not in m:
        raise InputError(f"metrics have no {part!r} confusion matrix")
    cm = np.asarray(m["confusion_matrix"], dtype=float)
    labels = m.get("labels") or [str(i) for i in range(len(cm))]
    rec = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = 1.0 + 0.45 * len(labels)
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(size + 1.2, size))
        im = ax.imshow(rec, cmap="Greys", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rec[i, j] > 0.5 else "black",
                )
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels)
        ax.set_xlabel("predicted class (EC)")
        ax.set_ylabel("true class (EC)")
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        cb.set_label("share of the true class (recall)")
        ax.set_title(
            f"{part} confusion matrix (n = {int(cm.sum())})\naccuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}"
        )
        fig.tight_layout()
    return fig
