"""Ablation curves (metric vs f, random as a band) and the smallest f that keeps the accuracy."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kneurons.errors import InputError
from kneurons.figures.ablation import F_TICKS, HATCHES, MODE_AXIS, RC, method_order, style
from kneurons.stats.keys import fills_of, first_fill, with_fill
from kneurons.vocabulary import MODULE_TYPES


def f_axis(ax, mode: str | None = None) -> None:
    """The f axis of every curve figure: symlog (linear below 0.01), 0 to 1, the grid's usual ticks."""
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
    fills = fills_of(curves) if "fill" in curves else ["?"]
    parts = [
        f"test proteins n = {n_test}" if n_test else None,
        f"fill{'s' if len(fills) > 1 else ''} = {', '.join(fills)}",
    ]
    if seeds:
        parts.append(f"random: {len(seeds)} seeds")
    if "n_replicates" in curves and int(curves["n_replicates"].iloc[0]) > 1:
        parts.append(f"mean of {int(curves['n_replicates'].iloc[0])} fine-tuning replicates")
    return "; ".join(p for p in parts if p)


def intact_label(curves: pd.DataFrame, full: float) -> str:
    """The intact model's line in the legend, saying whose accuracy it is: the mean over the
    fine-tuning replicates when the curves pool several (replicate 0's alone is in the atlas and
    the training figures)."""
    reps = int(curves["n_replicates"].iloc[0]) if "n_replicates" in curves else 1
    who = f"intact model, mean of {reps} replicates" if reps > 1 else "intact model"
    return f"{who} ({full:.3f})"


def _n_classes(curves: pd.DataFrame) -> int | None:
    n = sum(1 for c in curves.columns if str(c).startswith("recall_"))
    return n or None


#: What the curves' units are called: (plural noun, global panel title, random baseline's legend).
UNITS: dict[str, tuple[str, str, str]] = {
    "neurons": ("neurons", "all modules (global)", "random (mean; band: 2.5-97.5% of seeds)"),
    "features": (
        "SAE features",
        "all SAE features (global)",
        "random features active on the scoring set\n(mean; band: 2.5-97.5% of seeds)",
    ),
}


def plot_ablation_curves(
    curves: pd.DataFrame, mode: str, metric: str = "accuracy", units: str = "neurons"
) -> Figure:
    """Metric vs f for one mode: a panel for the global scope and one per module type; random as a band.

    ``units``: ``neurons`` (the neuron ablation tables) or ``features`` (the SAE features', global
    scope only), named in the title, the global panel and the legend. With several fills
    (``ablate.fills``) each scope's panels for its fills stand side by side, each titled with its fill.
    """
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError(f"unknown metric {metric!r}")
    if units not in UNITS:
        raise ValueError(f"unknown units {units!r}; known: {', '.join(UNITS)}")
    noun, global_title, _ = UNITS[units]
    curves = with_fill(curves)
    df = curves[curves["mode"] == mode]
    if df.empty:
        raise InputError(f"no ablation rows with mode {mode!r}")
    base = [("global", "global")] if (df["scope"] == "global").any() else []
    types = [m for m in MODULE_TYPES if ((df["scope"] == "module_type") & (df["scope_name"] == m)).any()]
    base += [("module_type", m) for m in types]
    if not base:
        raise InputError("no global or module_type ablation rows to plot")
    fills = fills_of(df)
    # a scope ablated under the first fill only (ablate.fill_scopes) has no panel for the others
    present = {
        (str(f), str(sc), str(n)) for f, sc, n in df[["fill", "scope", "scope_name"]].itertuples(index=False)
    }
    # each scope's fills side by side
    panels = [(fill, scope, name) for scope, name in base for fill in fills if (fill, scope, name) in present]
    full = float(curves["full_accuracy"].iloc[0]) if "full_accuracy" in curves else None
    k = _n_classes(curves)
    ylabel = "test accuracy" if metric == "accuracy" else "test macro-F1"
    with plt.rc_context(RC):
        ncols = min(4, len(base) + 1)
        nrows = int(np.ceil((len(panels) + 1) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.3 * nrows), sharey=True, squeeze=False)
        flat = axes.ravel()
        for ax, (fill, scope, name) in zip(flat, panels, strict=False):
            sub = df[(df["scope"] == scope) & (df["scope_name"] == name) & (df["fill"].astype(str) == fill)]
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
            title = global_title if scope == "global" else f"{name} (all layers)"
            ax.set_title(f"{title}\n{fill} fill" if len(fills) > 1 else title)
            f_axis(ax)
            ax.set_ylim(0, 1.02)
        short = "fraction preserved, f" if mode == "preserve" else "fraction suppressed, f"
        for ax in flat[: len(panels)]:
            ax.set_xlabel(short)
        for row in axes:
            row[0].set_ylabel(ylabel)
        _legend(flat[len(panels)], df, full if metric == "accuracy" else None, k, units)
        for ax in flat[len(panels) + 1 :]:
            ax.axis("off")
        verb = "Preserve" if mode == "preserve" else "Suppress"
        fig.suptitle(f"{verb} the top-f {noun}: {ylabel} vs f, symlog x axis ({_run_note(curves)})", y=1.0)
        fig.tight_layout()
    return fig


def _legend(legend_ax, df: pd.DataFrame, full: float | None, k: int | None, units: str = "neurons") -> None:
    """The curves' legend in its own panel: methods, random's band, intact model and chance lines."""
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
                        label=UNITS[units][2],
                    ),
                    matplotlib.patches.Patch(color="#BBBBBB", alpha=0.6),
                )
            )
        else:
            handles.append(plt.Line2D([], [], color=colour, marker=marker, ls=ls, ms=3.5, label=label))
    labels = [h[0].get_label() if isinstance(h, tuple) else h.get_label() for h in handles]
    if full is not None:
        handles.append(plt.Line2D([], [], color="black", lw=0.7, ls=(0, (4, 2))))
        labels.append(intact_label(df, full))
    if k:
        handles.append(plt.Line2D([], [], color="black", lw=0.6, ls=(0, (1, 2))))
        labels.append(f"chance (1/{k})")
    legend_ax.legend(
        handles, labels, loc="center left", frameon=False, title=f"{UNITS[units][0]} selected by"
    )


def plot_threshold_bars(summary: pd.DataFrame) -> Figure:
    """Smallest f keeping ``keep_accuracy`` of intact accuracy (preserve), per method, module type, global;
    the first fill's (``first_fill``), named in the title."""
    summary, fill = first_fill(summary)
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
                xs,
                heights,
                width=width * 0.95,
                color=colour if method != "random" else "#BBBBBB",
                edgecolor="black",
                lw=0.5,
                hatch=HATCHES.get(method, ""),
                label=name,
                **kw,
            )
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
            f"Fewest neurons that keep {keep:.0%} of the intact test accuracy\n"
            f"(lower = knowledge more concentrated; {fill} fill)",
            loc="left",
        )
        fig.tight_layout()
    return fig
