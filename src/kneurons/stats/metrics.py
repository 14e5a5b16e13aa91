"""Classification metrics shared by fine-tuning and ablation (one implementation, numpy only)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of true class i predicted as j."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix (0 where undefined)."""
    tp = np.diag(cm).astype(float)
    pred = cm.sum(0).astype(float)
    true = cm.sum(1).astype(float)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true}


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of correct predictions."""
    y_true = np.asarray(y_true)
    return float((y_true == np.asarray(y_pred)).mean()) if len(y_true) else float("nan")


def majority_share(y_true: np.ndarray) -> float:
    """Share of the most frequent class: the accuracy of a model that always predicts it (the
    majority-class baseline a model must beat before its neurons say anything)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    return float(np.bincount(y_true).max() / len(y_true)) if len(y_true) else float("nan")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean F1 over the classes present in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    s = per_class_scores(cm)
    present = s["support"] > 0
    return float(s["f1"][present].mean()) if present.any() else float("nan")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, the majority-class baseline (``majority_share``), macro-F1, per-class
    precision/recall/F1/support and the confusion matrix, JSON-ready."""
    n = len(labels)
    cm = confusion_matrix(y_true, y_pred, n)
    s = per_class_scores(cm)
    return {
        "n": len(np.asarray(y_true)),
        "accuracy": accuracy(y_true, y_pred),
        "majority_baseline": majority_share(y_true),
        "macro_f1": macro_f1(y_true, y_pred, n),
        "per_class": {
            lab: {k: float(s[k][i]) for k in ("precision", "recall", "f1", "support")}
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
    }
