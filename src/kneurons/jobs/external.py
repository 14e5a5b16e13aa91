"""External test sets: generate the synthetic one, label an external set against the model's classes,
and the statistics of the knowledge neurons' ablation on it (pooled over replicates)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kneurons.data.external import label_external, overlap_with_train, read_external
from kneurons.data.split import full_length_sequences
from kneurons.data.synthetic import generate_synthetic
from kneurons.stats.curves import pool_replicates
from kneurons.stats.metrics import accuracy, macro_f1, majority_share
from kneurons.stats.random import compare_with_random
from kneurons.tables import (
    AblationData,
    load_ablation,
    read_class_labels,
    read_proteins_table,
    read_split,
    write_dropped,
    write_external_proteins,
    write_json_result,
    write_proteins,
    write_stats_tables,
)

log = logging.getLogger(__name__)


def run_external_synthetic(settings: Mapping[str, Any], out: str | Path) -> pd.DataFrame:
    """New synthetic proteins carrying the training data's planted motifs (an external test set);
    writes ``out``. ``settings``: the rule's params (``synthetic``: the training data's generator
    settings with the set's class size, ``seed``: the training data's, so the same motifs;
    ``sequence_seed``: new background sequences).
    """
    proteins, _ = generate_synthetic(
        **settings["synthetic"],
        seed=settings["seed"],
        sequence_seed=settings["sequence_seed"],
        accession_prefix="EXT",
    )
    write_proteins(proteins, out)
    log.info("external synthetic set: %d proteins", len(proteins))
    return proteins


def training_proteins(split: pd.DataFrame, proteins: pd.DataFrame) -> pd.DataFrame:
    """The training proteins (``accession, sequence, label``) with their full-length sequences: the
    split holds them cropped to ``labels.max_length``, ``data/proteins.tsv`` as read."""
    train = split.loc[split["split"] == "train", ["accession", "sequence", "label"]]
    return full_length_sequences(train, proteins, "training proteins").reset_index(drop=True)


def _why_dropped(dropped: pd.DataFrame) -> str:
    """The dropped proteins in one phrase per reason, for the log line."""
    by_step = dropped["step"].value_counts()
    policies = {k: int(v) for k, v in by_step.items() if k not in ("model_classes", "max_identity")}
    each = ", ".join(f"{k} {v}" for k, v in policies.items())
    parts = [
        f"{sum(policies.values())} by the label policies ({each})"
        if policies
        else "none by the label policies",
        f"{int(by_step.get('model_classes', 0))} of classes the model lacks",
    ]
    if "max_identity" in by_step:
        parts.append(f"{int(by_step['max_identity'])} above evaluate.max_identity")
    return "; ".join(parts)


def run_external_set(
    name: str,
    path: str | Path,
    split_path: str | Path,
    classes_path: str | Path,
    proteins_path: str | Path,
    settings: dict[str, Any],
    out: Mapping[str, str | Path],
    threads: int = 1,
) -> pd.DataFrame:
    """Read, label and check external set ``name`` against the training split; write its proteins,
    the proteins dropped and why, and its report (``out``: ``proteins``, ``dropped``, ``report``).

    ``proteins_path``: the run's ``data/proteins.tsv`` (the training proteins at full length, for
    the overlap). ``settings``: the rule's params (``labels``, ``max_identity``, ``mmseqs``).
    """
    proteins = read_external(name, path)
    labels = read_class_labels(classes_path)
    labelled, report, dropped = label_external(name, proteins, settings["labels"], labels, str(path))
    split = read_split(split_path)
    train = training_proteins(split, read_proteins_table(proteins_path))
    full_length = dict(zip(proteins["accession"], proteins["sequence"], strict=True))
    # what the model read of each training protein: the split's cropped sequences
    train_input = dict(zip(split["accession"], split["sequence"], strict=True))
    checked, overlap, too_close = overlap_with_train(
        labelled, train, settings["max_identity"], settings["mmseqs"], threads, full_length, train_input
    )
    dropped = pd.concat([dropped, too_close], ignore_index=True)
    report["overlap_with_train"] = overlap
    report["evaluated"] = len(checked)
    report["dropped"] = {str(k): int(v) for k, v in dropped["step"].value_counts().sort_index().items()}
    write_external_proteins(checked, out["proteins"])
    write_dropped(dropped, out["dropped"])
    write_json_result(out["report"], report)
    log.info(
        "external set %s: %d proteins read, %d dropped (%s), %d evaluated; %d identical to training "
        "(%d of another label), %d of identical model input (%d of another label)",
        name,
        report["read"],
        len(dropped),
        _why_dropped(dropped),
        len(checked),
        overlap["identical_to_train"],
        overlap["label_conflict"],
        overlap["identical_input_to_train"],
        overlap["input_label_conflict"],
    )
    return checked


def run_external_stats(
    tables: Sequence[Sequence[str | Path]],
    predictions: Sequence[Sequence[str | Path]],
    settings: dict[str, Any],
    out: dict[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """Curves, gap to random and normalised faithfulness (the global scope's knowledge neurons, per
    fill) and the intact model's metrics on one external set; ``tables[r]`` / ``predictions[r]`` are
    replicate ``r``'s. Writes ``out`` curves, random_gap, faithfulness (TSV; each where ``out`` names
    it) and metrics (JSON)."""
    st = settings["stats"]
    datas = [load_ablation(t, p) for t, p in zip(tables, predictions, strict=True)]
    table, full_accuracy = pool_replicates([d.table for d in datas], [d.full_accuracy for d in datas])
    curves = table.copy()
    curves["full_accuracy"] = full_accuracy
    compared = compare_with_random(
        datas, n_boot=st["bootstrap"], confidence=st["confidence"], seed=settings["seed"]
    )
    frames = {
        "curves": curves,
        "random_gap": compared["random_gap"],
        "faithfulness": compared["faithfulness"],
    }
    write_stats_tables({k: v for k, v in frames.items() if k in out}, out)
    write_json_result(out["metrics"], _intact_metrics(datas))
    return frames


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
