"""External test sets: label an external set against the model's classes, and the statistics of
the knowledge neurons' ablation on it (pooled over replicates)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kneurons.data.external import label_external, overlap_with_train, read_external
from kneurons.stats.curves import pool_replicates
from kneurons.stats.metrics import accuracy, macro_f1, majority_share
from kneurons.stats.random import random_comparison
from kneurons.tables import (
    AblationData,
    load_ablation,
    read_class_labels,
    read_split,
    write_external_proteins,
    write_json_result,
    write_stats_tables,
)

log = logging.getLogger(__name__)


def run_external_set(
    name: str,
    path: str | Path,
    split_path: str | Path,
    classes_path: str | Path,
    settings: dict[str, Any],
    out_proteins: str | Path,
    out_report: str | Path,
    threads: int = 1,
) -> pd.DataFrame:
    """Read, label and check external set ``name`` against the training split; write its proteins
    and report. ``settings``: the rule's params (``labels``, ``max_identity``)."""
    proteins = read_external(name, path)
    labels = read_class_labels(classes_path)
    labelled, report = label_external(name, proteins, settings["labels"], labels, str(path))
    split = read_split(split_path)
    train = split[split["split"] == "train"]
    checked, overlap = overlap_with_train(labelled, train, settings["max_identity"], threads=threads)
    report["overlap_with_train"] = overlap
    report["evaluated"] = len(checked)
    write_external_proteins(checked, out_proteins)
    write_json_result(out_report, report)
    log.info(
        "external set %s: %d proteins read, %d of the model's classes, %d identical to training, "
        "%d evaluated",
        name, report["read"], report["kept"], overlap["identical_to_train"], len(checked),
    )  # fmt: skip
    return checked


def run_external_stats(
    tables: Sequence[Sequence[str | Path]],
    predictions: Sequence[Sequence[str | Path]],
    settings: dict[str, Any],
    out: dict[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """Curves, gap to random (the global scope's knowledge neurons) and the intact model's metrics
    on one external set; ``tables[r]`` / ``predictions[r]`` are replicate ``r``'s."""
    st = settings["stats"]
    datas = [load_ablation(t, p) for t, p in zip(tables, predictions, strict=True)]
    table, full_accuracy = pool_replicates([d.table for d in datas], [d.full_accuracy for d in datas])
    curves = table.copy()
    curves["full_accuracy"] = full_accuracy
    gap, _ = random_comparison(
        datas, n_boot=st["bootstrap"], confidence=st["confidence"], seed=settings["seed"]
    )
    write_stats_tables({"curves": curves, "random_gap": gap}, out)
    write_json_result(out["metrics"], _intact_metrics(datas))
    return {"curves": curves, "random_gap": gap}


def _intact_metrics(datas: list[AblationData]) -> dict[str, Any]:
    """The fine-tuned (intact) model's accuracy and macro-F1 (over the set's classes) on the set,
    per replicate and their mean, beside the set's size and majority-class baseline (the share of
    its most frequent class; every replicate is evaluated on the same proteins)."""
    per = []
    for d in datas:
        n_classes = int(max(d.y_true.max(), d.full_pred.max())) + 1
        per.append(
            {
                "accuracy": accuracy(d.y_true, d.full_pred),
                "macro_f1": macro_f1(d.y_true, d.full_pred, n_classes),
                "n": len(d.y_true),
            }
        )
    return {
        "replicates": per,
        "n": len(datas[0].y_true),
        "accuracy": float(np.mean([p["accuracy"] for p in per])),
        "majority_baseline": majority_share(datas[0].y_true),
        "macro_f1": float(np.mean([p["macro_f1"] for p in per])),
    }
