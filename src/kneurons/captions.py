"""The run in words, for the report's figure captions: model, data, split, scoring and ablation.

Torch-free: the Snakefile renders it into every caption (``workflow/rules/common.smk``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

Config = Mapping[str, Any]


def _replicates_text(config: Config) -> str:
    n, seed = config["train"]["replicates"], config["seed"]
    return f"with seed {seed}" if n == 1 else f"{n} times (replicates: seeds {seed}-{seed + n - 1})"


def run_description(config: Config) -> str:
    """What was run, for the figure captions: model, data, split, scoring and ablation settings."""
    m, d, lab, sp = config["model"], config["data"], config["labels"], config["split"]
    if m["name"] == "custom":
        c = m["custom"]
        model = f"custom ESM-2 ({c['num_layers']} layers, {c['embed_dim']} dim, {c['attention_heads']} heads)"
    else:
        model = m["name"]
    model += ", pretrained weights" if m["pretrained"] else ", random initialisation"
    src = d["source"]
    if src == "synthetic":
        s = d["synthetic"]
        data = (
            f"synthetic planted-motif proteins ({s['n_classes']} classes x {s['n_per_class']}, "
            f"lengths {s['length_min']}-{s['length_max']})"
        )
    elif src in ("tsv", "fasta"):
        data = f"{src} file {Path(str(d[src])).name}"
    else:
        data = f"{src}"
    fr = sp["fractions"]
    sc, ab = config["score"], config["ablate"]
    return (
        f"Model: {model}, fine-tuned {_replicates_text(config)}. Data: {data}; "
        f"EC level {lab['level']} labels "
        f"(classes with < {lab['min_class_size']} proteins dropped). Split: {sp['method']} "
        f"train/val/test = {fr['train']}/{fr['val']}/{fr['test']}. "
        f"Scores: {', '.join(sc['methods'])} on up to "
        f"{sc['max_sequences']} {sc['split']} proteins "
        f"(IG: {sc['ig']['steps']} steps, target {sc['ig']['target']}). "
        f"Ablation on the test split: fills {', '.join(ab['fills'])}, "
        f"per-module normalisation {ab['normalise']}, "
        f"f in {ab['fractions']}, random baseline seeds {ab['random_seeds']}."
    )
