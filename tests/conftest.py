"""Shared pytest fixtures (fixtures only; helpers live in the library)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch


# -- trained_synthetic: a small ESM-2 fine-tuned on planted motifs (training helper) ----------
@dataclass
class TrainedSynthetic:
    """A fine-tuned classifier on the synthetic planted-motif data, with everything that made it."""

    checkpoint: Path  # best.pt (kneurons.model.classifier.load_classifier)
    split: pd.DataFrame  # like data/split.tsv
    labels: list[str]  # in label_index order
    motifs: pd.DataFrame  # ec_class, motif
    dir: Path  # fine_tune's out_dir
    metrics: dict = field(default_factory=dict)  # metrics.json content


#: Settings of the trained_synthetic fixture: 4 classes x 100 short proteins, a 2-layer 32-dim
#: ESM-2, ~15 s on one CPU core; test accuracy >= 0.95 over data/training seeds 0-3.
SYNTHETIC_DATA = {
    "n_classes": 4,
    "n_per_class": 100,
    "length_min": 40,
    "length_max": 60,
    "motif_length": 6,
    "motifs_per_sequence": 2,
    "motif_noise": 0.05,
}
SYNTHETIC_MODEL = {
    "name": "custom",
    "pretrained": False,
    "pooling": "mean",
    "custom": {"num_layers": 2, "embed_dim": 32, "attention_heads": 4},
}
SYNTHETIC_TRAIN = {
    "epochs": 30,
    "lr": 0.003,
    "token_budget": 2048,
    "warmup_fraction": 0.1,
    "early_stopping_patience": 8,
}


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: tiny models run as fast, far faster when other jobs
    share the cores, and exact float equality between runs needs a fixed thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trained_synthetic(tmp_path_factory) -> TrainedSynthetic:
    """Synthetic data -> extract_labels -> stratified_split -> fine_tune (CPU, seed 0)."""
    from kneurons.data.labels import extract_labels
    from kneurons.data.split import stratified_split
    from kneurons.data.synthetic import generate_synthetic
    from kneurons.training.loop import fine_tune

    out = tmp_path_factory.mktemp("trained_synthetic")
    proteins, motifs = generate_synthetic(**SYNTHETIC_DATA, seed=0)
    labels_df, classes, _ = extract_labels(proteins, {"level": 1})
    split = stratified_split(labels_df, {"train": 0.7, "val": 0.1, "test": 0.2}, seed=0)
    labels = classes.sort_values("label_index")["label"].astype(str).tolist()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # other tests and helpers share the cores; 1 thread is as fast for this size
    try:
        metrics = fine_tune(
            split, labels, SYNTHETIC_MODEL, SYNTHETIC_TRAIN, out / "model", seed=0, device="cpu"
        )
    finally:
        torch.set_num_threads(threads)
    return TrainedSynthetic(
        checkpoint=out / "model" / "best.pt",
        split=split,
        labels=labels,
        motifs=motifs,
        dir=out / "model",
        metrics=metrics,
    )


@dataclass
class ExplainRun:
    """A tiny finished run (tests/explain_run.py) and a user's file of its test proteins."""

    results: Path  # the results folder
    proteins: Path  # TSV: accession, ec, sequence, motif_sites (the planted motifs)
    trained: TrainedSynthetic


@pytest.fixture(scope="session")
def explain_run(tmp_path_factory, trained_synthetic) -> ExplainRun:
    """Two replicates with IG scores, class characterisation, an SAE and its feature scores, the
    fill's ablation table and the atlas: what ``kneurons explain`` reads (about a minute)."""
    from explain_run import PROTEINS_TSV, build_tiny_run

    root = tmp_path_factory.mktemp("explain_run")
    results = build_tiny_run(root, trained_synthetic, SYNTHETIC_MODEL, SYNTHETIC_TRAIN, SYNTHETIC_DATA)
    return ExplainRun(results=results, proteins=root / PROTEINS_TSV, trained=trained_synthetic)
