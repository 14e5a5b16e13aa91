"""Claim 6's figure: per method, the preserve curves of neurons and of SAE features with the smallest
fraction of each that keeps ``keep_accuracy`` of the intact accuracy (``stats/compactness.tsv``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kneurons.errors import InputError
from kneurons.figures.ablation import RC, method_order, style
from kneurons.figures.curves import f_axis

#: Units -> (legend name, marker face, line style): the method's colour for both, features dashed
#: with open markers, so that the two curves of one method stay apart in grayscale.
_UNIT_STYLE: dict[str, tuple[str, str | None, object]] = {
    "neurons": ("neurons", None, "-"),
    "features": ("SAE features", "white", (0, (4, 2))),
}


def _preserve_curve(curves: pd.DataFrame, method: str) -> pd.DataFrame:
    rows = curves[
        (curves["method"] == method) & (curves["scope"] == "global") & (curves["mode"] == "preserve")
    ]
    return rows.sort_values("f")


def _panel(ax, method: str, row: pd.Series, sides: dict[str, pd.DataFrame], keep: float) -> None:
    """One method's two curves, the keep-accuracy line(s) and each unit's smallest fraction marked."""
    _, colour, marker, _ = style(method)
    fulls = set()
    for units, curve in sides.items():
        name, face, ls = _UNIT_STYLE[units]
        f_at, reached = float(row[f"f_{units}"]), bool(row[f"reached_{units}"])
        ax.plot(
            curve["f"],
            curve["accuracy"],
            color=colour,
            ls=ls,
            marker=marker,
            ms=3.5,
            lw=1.3,
            mfc=face or colour,
        )
        full = float(curve["full_accuracy"].iloc[0]) if "full_accuracy" in curve else np.nan
        fulls.add(round(full, 12))
        ax.axvline(f_at, color=colour, ls=ls, lw=0.7, alpha=0.8)
        label = f"{name}: f = {f_at:.3g}" + ("" if reached else " (never reached: taken as 1)")
        ax.text(  # in the lower right corner, where preserve curves start low
            0.97,
            0.05 if units == "neurons" else 0.13,
            label,
            transform=ax.transAxes,
            ha="right",
            fontsize=7,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
        )
    for full in sorted(fulls):
        if np.isfinite(full):
            ax.axhline(keep * full, color="black", lw=0.7, ls=(0, (1, 2)))
    pct = f"{100 * float(row['confidence']):g}%" if "confidence" in row else "CI"
    ax.set_title(
        f"{style(method)[0]}\nlog2(f neurons / f features) = {float(row['log2_ratio']):.2f}\n"
        f"{pct} interval [{float(row['ci_lo']):.2f}, {float(row['ci_hi']):.2f}]"
    )
    f_axis(ax)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("fraction of units preserved, f")


def plot_compactness(
    compactness: pd.DataFrame, neuron_curves: pd.DataFrame, feature_curves: pd.DataFrame
) -> Figure:
    """Per method of ``compactness`` (claim 6): test accuracy vs the fraction preserved (global
    scope, symlog x) for neurons (solid) and SAE features (dashed, open markers), the keep-accuracy
    target (dotted), and each unit's smallest fraction reaching it (vertical lines)."""
    methods = [m for m in method_order(compactness["method"].astype(str).unique()) if m != "random"]
    if not methods:
        raise InputError("the compactness table has no method to plot")
    keep = float(compactness["keep_accuracy"].iloc[0]) if "keep_accuracy" in compactness else 0.95
    panels = []
    for method in methods:
        sides = {
            "neurons": _preserve_curve(neuron_curves, method),
            "features": _preserve_curve(feature_curves, method),
        }
        missing = [_UNIT_STYLE[u][0] for u, c in sides.items() if c.empty]
        if missing:
            raise InputError(f"no global preserve curve of {method!r} for {' and '.join(missing)}")
        panels.append((method, sides))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            1, len(panels), figsize=(3.2 * len(panels) + 0.4, 3.2), sharey=True, squeeze=False
        )
        for ax, (method, sides) in zip(axes[0], panels, strict=True):
            row = compactness[compactness["method"] == method].iloc[0]
            _panel(ax, method, row, sides, keep)
        axes[0][0].set_ylabel("test accuracy")
        handles = [
            plt.Line2D([], [], color="grey", ls=ls, marker="o", mfc=face or "grey", ms=3.5, label=name)
            for name, face, ls in _UNIT_STYLE.values()
        ]
        handles.append(
            plt.Line2D([], [], color="black", lw=0.7, ls=(0, (1, 2)), label=f"{keep:.0%} of intact accuracy")
        )
        fig.legend(handles=handles, loc="upper center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle(
            "Knowledge compactness: the smallest fraction of neurons and of SAE features\n"
            f"keeping {keep:.0%} of the intact accuracy (global, preserve; "
            "log2 ratio > 0: features more compact)",
            y=1.02,
        )
        fig.tight_layout()
    return fig
