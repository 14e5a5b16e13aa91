"""Suppress each class's neurons: the recall change of every class, and each class's specificity.

Suppressing class ``c``'s set (under each fill of ``ablate.fills``, through
``kneurons.ablation.engine.evaluate_fills``) and measuring every class's recall on the held-out
split gives a class x class matrix of recall change per fill; class ``c``'s *specificity* compares
its own recall drop with the mean drop of the other classes, against random sets with the same
number of neurons in every module (seeded; the same sets under every fill).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from kneurons.ablation.engine import evaluate_fills
from kneurons.ablation.fill import Fill
from kneurons.ablation.masks import Mask, layout_of
from kneurons.characterise.classes import as_mask, random_matched_mask
from kneurons.errors import InputError
from kneurons.model.classifier import EsmClassifier
from kneurons.progress import progress_callback
from kneurons.ranking import NeuronLayout
from kneurons.stats.metrics import confusion_matrix, per_class_scores

log = logging.getLogger(__name__)


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of every class (NaN for classes absent from ``y_true``)."""
    s = per_class_scores(confusion_matrix(y_true, y_pred, n_classes))
    return np.where(s["support"] > 0, s["recall"], np.nan)


def _own_other(drops: np.ndarray, c: int) -> tuple[float, float]:
    others = np.delete(drops, c)
    return float(drops[c]), float(np.nanmean(others)) if np.isfinite(others).any() else float("nan")


def _ratio(own: float, other: float, floor: float) -> float:
    """Own drop over the others' mean drop; the denominator is floored so that it stays finite."""
    return max(own, 0.0) / max(other, floor) if np.isfinite(other) else float("nan")


def _class_masks(
    groups: list[tuple[str, pd.DataFrame]], layout: NeuronLayout, random_sets: int, seed: int
) -> list[Mask]:
    """The intact model (empty mask), then per class its own set followed by its random sets."""
    rng = np.random.default_rng(seed)
    masks: list[Mask] = [{}]
    for _, g in groups:
        masks.append(as_mask(g, layout))
        masks.extend(random_matched_mask(g, layout, rng) for _ in range(random_sets))
    return masks


def _specificity(own: float, other: float, rand: list[tuple[float, float]], floor: float) -> dict[str, float]:
    """Specificity of one class's set (difference and ratio) against its random sets."""
    diff = own - other
    n = len(rand)
    rd = np.array([o - t for o, t in rand])
    rr = np.array([_ratio(o, t, floor) for o, t in rand])
    nan = float("nan")
    return {
        "drop_own": own,
        "drop_other": other,
        "specificity_diff": diff,
        "specificity_ratio": _ratio(own, other, floor),
        "random_sets": n,
        "random_diff_mean": float(np.nanmean(rd)) if n else nan,
        "random_diff_lo": float(np.nanpercentile(rd, 2.5)) if n else nan,
        "random_diff_hi": float(np.nanpercentile(rd, 97.5)) if n else nan,
        "random_ratio_mean": float(np.nanmean(rr)) if n else nan,
        "random_ratio_lo": float(np.nanpercentile(rr, 2.5)) if n else nan,
        "random_ratio_hi": float(np.nanpercentile(rr, 97.5)) if n else nan,
        "p_value": float((1 + (rd >= diff - 1e-12).sum()) / (1 + n)) if n else nan,
    }


def class_suppression(
    model: EsmClassifier,
    sequences: Sequence[str],
    y_true: np.ndarray,
    labels: Sequence[str],
    class_sets: pd.DataFrame,
    fill: Fill | Sequence[Fill] | None = None,
    random_sets: int = 20,
    seed: int = 0,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Suppress each class's neurons; recall change of every class, and each class's specificity.

    All masks (each class's set and ``random_sets`` random sets per class with the same number
    of neurons in every module) go through ``kneurons.ablation.engine.evaluate_fills`` in one call,
    under every fill of ``fill`` (one fill or several; zero by default). Returns ``(matrix,
    specificity)``, fill-major, each row naming its ``fill``. ``matrix``: ``suppressed, evaluated,
    recall_base, recall, recall_change`` for every pair of classes. ``specificity`` per suppressed class:
    ``n_neurons, drop_own, drop_other`` (mean over the other classes), ``specificity_diff``
    (own - other), ``specificity_ratio`` (own / other, the denominator floored at one protein's
    recall, ``1 / smallest class support``, so it stays finite), the same two statistics over the
    random sets (mean, 2.5 and 97.5 percentiles) and an empirical one-sided p-value for the
    difference, ``(1 + #random >= observed) / (1 + random_sets)``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    label_index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted(set(class_sets["label"]) - set(label_index))
    if unknown:
        raise InputError(
            f"class-conditional scores name class(es) {unknown}, "
            f"which the model does not have ({list(labels)})"
        )
    groups = list(class_sets.groupby("label", sort=True))
    masks = _class_masks(groups, layout_of(model), random_sets, seed)
    fills = [Fill()] if fill is None else [fill] if isinstance(fill, Fill) else list(fill)
    log.info(
        "class suppression: %d masks x %d fill(s) on %d held-out proteins",
        len(masks),
        len(fills),
        len(sequences),
    )
    progress = progress_callback(
        f"class suppression, {len(masks)} masks x {len(fills)} fill(s)", "batches", log
    )
    ev = evaluate_fills(
        model, sequences, masks, fills, None, token_budget, device=device, bf16=bf16, progress=progress
    )
    matrices, specs = [], []
    for f, preds in zip(fills, ev.pred, strict=True):
        matrix, spec = _suppression_tables(y_true, preds, labels, groups, label_index, random_sets)
        matrices.append(matrix.assign(fill=f.kind))
        specs.append(spec.assign(fill=f.kind))
    return pd.concat(matrices, ignore_index=True), pd.concat(specs, ignore_index=True)


def _suppression_tables(
    y_true: np.ndarray,
    preds: np.ndarray,
    labels: Sequence[str],
    groups: list[tuple[str, pd.DataFrame]],
    label_index: dict[str, int],
    random_sets: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recall-change matrix and the specificity table of one fill's predictions (masks in
    ``_class_masks``' order)."""
    k = len(labels)
    base = per_class_recall(y_true, preds[0], k)
    support = np.bincount(y_true, minlength=k)
    floor = 1.0 / int(support[support > 0].min()) if (support > 0).any() else 1.0
    matrix_rows, spec_rows = [], []
    for gi, (label, g) in enumerate(groups):
        c = label_index[label]
        at = 1 + gi * (1 + random_sets)
        recall = per_class_recall(y_true, preds[at], k)
        matrix_rows.extend(
            {
                "suppressed": label,
                "evaluated": lab,
                "recall_base": base[j],
                "recall": recall[j],
                "recall_change": recall[j] - base[j],
            }
            for j, lab in enumerate(labels)
        )
        own, other = _own_other(base - recall, c)
        rand = [
            _own_other(base - per_class_recall(y_true, preds[at + 1 + r], k), c) for r in range(random_sets)
        ]
        spec = _specificity(own, other, rand, floor)
        head = {"class": label, "n_neurons": len(g), "support": int(support[c]), "recall_base": base[c]}
        spec_rows.append({**head, **spec})
        log.info("class %s: %d neurons, own recall drop %.3f, others %.3f", label, len(g), own, other)
    return pd.DataFrame(matrix_rows), pd.DataFrame(spec_rows)
