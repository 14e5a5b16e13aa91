"""How a stage is scattered over jobs: scoring in chunks of layers, the random baseline in chunks of
seeds (``score.layers_per_job``, ``ablate.seeds_per_job``), and the ``{seeds}`` wildcard of a chunk.

The Snakefile (which jobs exist), the settings seam (what a job receives), the SLURM profile's
runtimes and the cost plan all read these; torch-free. The chunking decides which jobs exist,
never a result: every layer and seed is computed on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kneurons.config import num_layers

Config = Mapping[str, Any]


def per_job(setting: int | str, n_items: int, model_name: str) -> int:
    """Items per job of a scatter (``*_per_job`` settings): ``auto`` is every item in one job for a
    ``custom`` model, whose jobs are mostly interpreter and torch start-up (~2.5 s each), and one
    item per job for a named ESM-2 model, so that a cluster runs them in parallel."""
    if setting == "auto":
        return max(n_items, 1) if model_name == "custom" else 1
    return int(setting)


def score_layer_chunks(cfg: Config) -> list[tuple[int, int]]:
    """The ``(first, last)`` layers (both included) of each scoring job of a method, in layer order:
    ``score.layers_per_job`` consecutive layers per job (``per_job``), the last chunk shorter where
    they do not divide the layer count. A job scores each of its layers on its own, so the
    chunking changes which jobs exist, never a score: it is no job's setting."""
    n = num_layers(cfg)
    size = per_job(cfg["score"]["layers_per_job"], n, cfg["model"]["name"])
    return [(first, min(first + size, n) - 1) for first in range(0, n, size)]


def random_seed_chunks(cfg: Config) -> list[list[int]]:
    """The random baseline's seeds per ablation job (``ablate.seeds_per_job``), in config order."""
    seeds = list(cfg["ablate"]["random_seeds"])
    size = per_job(cfg["ablate"]["seeds_per_job"], len(seeds), cfg["model"]["name"])
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def seed_chunk_label(seeds: list[int]) -> str:
    """The ``{seeds}`` wildcard of a chunk of random seeds: ``3`` or ``0_1_2``."""
    return "_".join(str(s) for s in seeds)


def seed_chunk_seeds(label: str) -> list[int]:
    """The seeds of a ``{seeds}`` wildcard (the inverse of ``seed_chunk_label``)."""
    return [int(s) for s in label.split("_")]


#: ``units.features``'s word for an SAE the workflow trains itself (a ``train_sae`` job per layer
#: and replicate).
TRAIN_SAE = "train"


def trained_sae_layers(features: list[Mapping[str, Any]]) -> list[int]:
    """The layers of the ``units.features`` entries the workflow trains (``sae: train``), in config order."""
    return [int(entry["layer"]) for entry in features if entry["sae"] == TRAIN_SAE]
