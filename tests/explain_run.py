"""A tiny finished run for the explain tests, built once per session by the real stage functions.

From the ``trained_synthetic`` classifier (replicate 0: 2 layers, 32 dims, planted motifs) and a
second, shorter fine-tuning (replicate 1, seed 1, 12 epochs), each replicate gets what a finished run
holds and ``kneurons explain`` reads: its IG score table (``run_score_job``, 8 Gauss-Legendre
points), its class characterisation (``run_class_job``), an SAE trained on the stream entering
layer 1 and its features' IG score table; the main run also its scoring set, its IG ablation table
(``run_ablation_job``: the fill), the label report, its run metadata and the atlas (``run_atlas_job``
on the IG table and its density). About a minute on one idle core.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import torch

from kneurons.config import validate_config
from kneurons.data.labels import extract_labels
from kneurons.data.synthetic import generate_synthetic
from kneurons.settings import job_settings
from kneurons.tables import write_label_report, write_scoring_set, write_split, write_stats_tables

#: The test split's first ``PER_CLASS`` proteins of each class with their planted motif sites, as a
#: user's TSV (contract names).
PROTEINS_TSV = "proteins.tsv"
PER_CLASS = 6
SAE_LAYER = 1

CONFIG = {
    "seed": 0,
    "device": "cpu",
    "score": {"ig": {"steps": 8, "method": "gausslegendre"}, "token_budget": 4096, "max_sequences": 48},
    "ablate": {"fractions": [0.02, 0.05], "modes": ["suppress"], "max_sequences": 24, "random_seeds": [0]},
    "characterise": {"random_sets": 3, "max_proteins": 40, "class_fraction": 0.02},
    "stats": {"top_fraction": 0.02},
    "atlas": {"top_per_method": 100},
    "model": {"name": "custom", "custom": {"num_layers": 2, "embed_dim": 32, "attention_heads": 4}},
}


def _scoring_set(split: pd.DataFrame, labels: list[str], n: int, seed: int) -> pd.DataFrame:
    train = split[split["split"] == "train"].sample(n=n, random_state=seed)
    index = {lab: i for i, lab in enumerate(labels)}
    return pd.DataFrame(
        {
            "accession": train["accession"].to_numpy(),
            "sequence": train["sequence"].to_numpy(),
            "label": train["label"].astype(str).to_numpy(),
            "label_index": train["label"].astype(str).map(index).to_numpy(),
        }
    )


def _replicate(
    results: Path, prefix: str, checkpoint: Path, split_path: Path, cfg: dict, train_seqs: list[str]
) -> None:
    """Scores, class characterisation, SAE and feature scores of one replicate under ``results/prefix``."""
    from kneurons.features.formats import save_sae
    from kneurons.features.train import train_sae
    from kneurons.io import sha256_file
    from kneurons.jobs.characterise import run_class_job
    from kneurons.jobs.score import run_score_job
    from kneurons.model.checkpoint import load_classifier

    root = results / prefix
    scoring_set = results / "scores/scoring_set.tsv"
    ig = root / "scores/ig.parquet"
    run_score_job(checkpoint, scoring_set, "ig", [0, 1], job_settings("score_layers", cfg, method="ig"), ig)
    char = root / "characterise"
    run_class_job(
        checkpoint,
        ig,
        split_path,
        job_settings("characterise_classes", cfg),
        {
            "neurons": char / "class_neurons.tsv",
            "overlap": char / "class_overlap.tsv",
            "matrix": char / "class_suppression.tsv",
            "specificity": char / "class_specificity.tsv",
            "summary": char / "class_summary.json",
        },
        scoring_set,
    )
    model, _ = load_classifier(checkpoint)
    sae = train_sae(
        model,
        train_seqs,
        SAE_LAYER,
        n_features=64,
        k=4,
        epochs=4,
        seed=0,
        model_sha256=sha256_file(checkpoint),
    )
    sae_path = root / f"features/sae/layer{SAE_LAYER}.pt"
    sae_path.parent.mkdir(parents=True, exist_ok=True)
    save_sae(sae_path, sae)
    spec = [{"layer": SAE_LAYER, "path": str(sae_path), "format": "kneurons", "k": None}]
    run_score_job(
        checkpoint,
        scoring_set,
        "ig",
        None,
        job_settings("score_layers", cfg, method="ig"),
        root / "features/scores/ig.parquet",
        saes=spec,
    )


def build_tiny_run(root: Path, trained, model_cfg: dict, train_cfg: dict, data_cfg: dict) -> Path:
    """The finished run under ``root/results`` (returned), and ``root/proteins.tsv``: the test split."""
    from kneurons.jobs.ablate import run_ablation_job
    from kneurons.jobs.atlas import run_atlas_job
    from kneurons.stats.density import density, with_q_values
    from kneurons.tables import read_score_table
    from kneurons.training.loop import fine_tune

    cfg = validate_config(CONFIG)
    results = root / "results"
    model_dir = results / "model"
    model_dir.mkdir(parents=True)
    for name in ("best.pt", "run_metadata.json", "metrics.json"):
        shutil.copyfile(trained.dir / name, model_dir / name)
    split_path = results / "data/split.tsv"
    split_path.parent.mkdir(parents=True)
    write_split(trained.split, split_path)
    proteins, _ = generate_synthetic(**data_cfg, seed=0)
    _, _, report = extract_labels(proteins, cfg["labels"])
    write_label_report(results / "data/label_report.json", report)
    write_scoring_set(_scoring_set(trained.split, trained.labels, 48, 0), results / "scores/scoring_set.tsv")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rep1 = results / "replicates/1/model"
        fine_tune(
            trained.split, trained.labels, model_cfg, {**train_cfg, "epochs": 12}, rep1, seed=1, device="cpu"
        )
        train_seqs = trained.split.loc[trained.split["split"] == "train", "sequence"].tolist()
        for prefix, ckpt in (("", model_dir / "best.pt"), ("replicates/1/", rep1 / "best.pt")):
            _replicate(results, prefix, ckpt, split_path, cfg, train_seqs)
        ig = results / "scores/ig.parquet"
        run_ablation_job(
            model_dir / "best.pt",
            split_path,
            ig,
            "ig",
            "global",
            job_settings("ablate", cfg),
            results / "ablation/ig/global.tsv",
            results / "ablation/ig/global.pred.npz",
            scoring_set_path=results / "scores/scoring_set.tsv",
        )
    finally:
        torch.set_num_threads(threads)
    dens = results / "stats/density.tsv"
    write_stats_tables(
        {"density": with_q_values(density(read_score_table(ig)[0], "ig", cfg["stats"]["top_fraction"]))},
        {"density": dens},
    )
    settings = {**job_settings("atlas", cfg), "methods": ["ig"]}
    char = results / "characterise"
    inputs = {
        "scores": [str(ig)],
        "density": str(dens),
        "class_neurons": str(char / "class_neurons.tsv"),
        "class_suppression": str(char / "class_suppression.tsv"),
        "class_specificity": str(char / "class_specificity.tsv"),
    }
    run_atlas_job(inputs, settings, results / "atlas/index.html")
    test = trained.split[trained.split["split"] == "test"].groupby("label", sort=True).head(PER_CLASS)
    test[["accession", "ec", "sequence", "motif_sites"]].to_csv(root / PROTEINS_TSV, sep="\t", index=False)
    return results
