"""Fine-tuning figures: the training curve and the confusion matrix."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kneurons.errors import InputError
from kneurons.figures.ablation import RC


def plot_training_curve(curve: pd.DataFrame, metrics: dict | None = None, replicate: int = 0) -> Figure:
    """Fine-tuning of one replicate (the workflow draws replicate 0, the main run): training loss and
    validation accuracy / macro-F1 per epoch; the best epoch marked; its intact test accuracy in
    the title, named as that replicate's (the ablation curves show the mean over replicates)."""
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
        fig.suptitle(f"Fine-tuning, replicate {replicate}{note}")
        fig.tight_layout()
    return fig


def plot_confusion(metrics: dict, part: str = "test", replicate: int = 0) -> Figure:
    """Confusion matrix of ``metrics[part]`` of one replicate (rows: true class, normalised to recall;
    counts annotated)."""
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
            f"{part} confusion matrix, replicate {replicate} (n = {int(cm.sum())})\n"
            f"accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}"
        )
        fig.tight_layout()
    return fig
