"""Figures of the concept stage (``results/concepts/``): units aligned per layer by kind, each concept's
best neuron and best feature against its controls, and the knowledge units' catalytic F1 (claim 7).

Torch-free (the figure rules run in the plots environment). Neurons and SAE features keep one colour
each in every panel (Okabe-Ito blue and vermillion), controls are grey.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kneurons.figures.ablation import RC
from kneurons.vocabulary import MODULE_TYPES

#: Kind of unit -> (legend name, colour, hatch).
KIND_STYLE = {"neurons": ("neurons", "#0072B2", ""), "features": ("SAE features", "#D55E00", "//")}
CONTROL_COLOUR = "#7F7F7F"


def _message(fig: Figure, text: str) -> Figure:
    ax = fig.add_subplot(111)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _criterion(info: Mapping[str, Any]) -> str:
    return (
        f"aligned: test F1 > {info.get('f1_floor', 0.5):g} and > the 99th percentile of "
        f"{info.get('shuffles', '?')} shuffles of each control (threshold chosen on validation)"
    )


def _bars(ax, groups: list[str], table: pd.DataFrame, by: str) -> None:
    """Share of scored units aligned per group and kind (the kinds a group has, side by side), counts
    on the bars, the control concepts' share as grey dots."""
    rows = table[table["group_by"] == by]
    labelled: set[str] = set()
    for x, group in enumerate(groups):
        here = [k for k in KIND_STYLE if ((rows["units"] == k) & (rows["group"] == group)).any()]
        width = 0.8 / max(1, len(here))
        for i, kind in enumerate(here):
            name, colour, hatch = KIND_STYLE[kind]
            r = rows[(rows["units"] == kind) & (rows["group"] == group)].iloc[0]
            pos = x - 0.4 + width * (i + 0.5)
            share = float(r["share_aligned"])
            ax.bar(
                pos,
                share,
                width,
                color=colour,
                hatch=hatch,
                edgecolor="white",
                label=None if kind in labelled else name,
            )
            labelled.add(kind)
            control = float(r["control_units_aligned"]) / float(r["n_units"])
            ax.plot(
                pos, control, "o", color=CONTROL_COLOUR, ms=4, label=None if "c" in labelled else "controls"
            )
            labelled.add("c")
            ax.text(
                pos,
                share,
                f"{int(r['units_aligned'])}/{int(r['n_units'])}",
                ha="center",
                va="bottom",
                fontsize=6.5,
            )
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, max(0.05, float(rows["share_aligned"].astype(float).max()) * 1.25))


def plot_units_aligned(summary: pd.DataFrame, info: Mapping[str, Any]) -> Figure:
    """Share of the scored units aligned with at least one concept, per layer (left) and per module
    type (right; SAE features as one group), neurons and SAE features side by side; grey dots: the same
    share for the control concepts (shuffled labels), which a sound metric keeps at 0."""
    with plt.rc_context(RC):
        fig = plt.figure(figsize=(10, 3.6))
        if summary.empty:
            return _message(fig, f"No concept alignment: {info.get('status', 'no concepts')}")
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        layers = sorted({g for g in summary.loc[summary["group_by"] == "layer", "group"]}, key=int)
        _bars(ax1, layers, summary, "layer")
        ax1.set_xlabel("layer (SAE features: the stream entering it)")
        ax1.set_ylabel("share of scored units aligned")
        ax1.legend(loc="upper right", frameon=False)
        types = summary.copy()
        feats = types["units"] == "features"
        types.loc[feats & (types["group_by"] == "all"), ["group_by", "group"]] = ["module", "sae"]
        modules = [
            m for m in (*MODULE_TYPES, "sae") if m in set(types.loc[types["group_by"] == "module", "group"])
        ]
        _bars(ax2, modules, types, "module")
        ax2.set_xlabel("module type")
        covered = summary[summary["group_by"] == "all"].set_index("units")
        parts = [
            f"{KIND_STYLE[k][0]}: {int(r.concepts_covered)} of {int(r.concepts_scored)} concepts covered"
            for k, r in covered.iterrows()
        ]
        fig.suptitle(
            "Units aligned with a concept (" + "; ".join(parts) + ")\n" + _criterion(info), fontsize=9
        )
        fig.tight_layout()
        return fig


def plot_concepts_covered(concepts: pd.DataFrame, info: Mapping[str, Any]) -> Figure:
    """Per concept, the test F1 of its best neuron and best SAE feature (chosen on validation), its
    aligned units in brackets, the floor (dashed), and the best unit's F1 on the concept's two controls
    (grey markers: positions shuffled within proteins, x; labels moved to random proteins, +)."""
    real = concepts[concepts["control"] == ""].reset_index(drop=True) if not concepts.empty else concepts
    with plt.rc_context(RC):
        fig = plt.figure(figsize=(8, 1.2 + 0.32 * max(1, len(real))))
        if real.empty:
            return _message(fig, f"No concept scored: {info.get('status', '')}")
        ax = fig.add_subplot(111)
        kinds = [k for k in KIND_STYLE if f"best_{k}_f1" in concepts.columns]
        y = np.arange(len(real))[::-1]
        height = 0.8 / max(1, len(kinds))
        for i, kind in enumerate(kinds):
            name, colour, hatch = KIND_STYLE[kind]
            pos = y + 0.4 - height * (i + 0.5)
            ax.barh(
                pos,
                real[f"best_{kind}_f1"].astype(float),
                height,
                color=colour,
                hatch=hatch,
                label=name,
                edgecolor="white",
            )
            ctrl = concepts[concepts["control"] != ""].set_index(["source", "control"])[f"best_{kind}_f1"]
            for control, marker in (("within", "x"), ("across", "+")):
                vals = [float(ctrl.get((c, control), np.nan)) for c in real["concept"]]
                ax.plot(
                    vals,
                    pos,
                    marker,
                    color=CONTROL_COLOUR,
                    ms=5,
                    label=f"controls ({control})" if i == 0 else None,
                )
        labels = []
        for r in real.itertuples():
            counts = "/".join(str(int(getattr(r, f"aligned_{k}"))) for k in kinds)
            labels.append(f"{r.concept} ({counts})")
        ax.set_yticks(y, labels)
        ax.axvline(float(info.get("f1_floor", 0.5)), color="black", ls="--", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("test F1 of the best unit (chosen on validation)")
        ax.legend(loc="lower right", frameon=False, fontsize=7)
        names = " / ".join(KIND_STYLE[k][0] for k in kinds)
        ax.set_title(f"Concepts and their best units (aligned {names} in brackets)\n{_criterion(info)}")
        fig.tight_layout()
        return fig


def plot_knowledge(units: pd.DataFrame, knowledge: pd.DataFrame, info: Mapping[str, Any]) -> Figure:
    """Claim 7, per kind of unit: each scored unit's catalytic F1 (its best catalytic concept's test F1)
    against its knowledge rank (IG score, as the ablation ranks), knowledge units highlighted; the title
    gives the gap to random units of the same module composition and the rank correlations."""
    with plt.rc_context(RC):
        fig = plt.figure(figsize=(9, 3.4))
        rows = knowledge.dropna(subset=["f1_gap"]) if not knowledge.empty else knowledge
        if rows.empty:
            why = (
                "no catalytic concept (active or binding site, planted motif) was scored"
                if not knowledge.empty
                else "no knowledge scores (score.methods without ig) or no concepts"
            )
            return _message(fig, f"Claim 7 not measured: {why}.")
        axes = fig.subplots(1, len(rows), squeeze=False)[0]
        for ax, r in zip(axes, rows.itertuples(), strict=True):
            name, colour, _ = KIND_STYLE.get(r.units, (r.units, "#555555", ""))
            g = units[units["units"] == r.units]
            order = g["ig_score"].astype(float).rank(ascending=False, method="first")
            pct = 100 * (order - 1) / max(1, len(g) - 1)
            know = g["knowledge"].astype(bool).to_numpy()
            f1 = g["catalytic_f1"].astype(float).fillna(0.0)
            ax.scatter(pct[~know], f1[~know], s=5, color=colour, alpha=0.35, lw=0, label=f"other {name}")
            ax.scatter(pct[know], f1[know], s=22, color="black", marker="*", label=f"knowledge {name}")
            ax.axhline(
                float(r.f1_random), color=CONTROL_COLOUR, ls=":", lw=1, label="random units (expected)"
            )
            ax.axhline(float(r.f1_knowledge), color="black", ls="--", lw=0.8, label="knowledge units (mean)")
            ax.set_xlabel(f"knowledge rank of the {name} (IG, % from the top)")
            ax.set_ylabel("best catalytic-concept test F1")
            ax.set_ylim(-0.02, 1.02)
            pct_ci = f"{100 * float(r.confidence):g}%"
            ax.set_title(
                f"{name}: gap {r.f1_gap:+.3f} [{r.ci_lo:+.3f}, {r.ci_hi:+.3f}] ({pct_ci}), "
                f"p = {r.p_value:.3g}\n"
                f"Spearman IG {r.spearman_ig:+.2f}, random scores {r.spearman_random:+.2f}",
                fontsize=8,
            )
            ax.legend(loc="upper right", frameon=True, framealpha=0.85, edgecolor="none", fontsize=6.5)
        fig.suptitle("Claim 7: do the knowledge units align with catalytic concepts more than random units?")
        fig.tight_layout()
        return fig
