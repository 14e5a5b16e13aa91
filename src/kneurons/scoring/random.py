"""Random scores: seeded uniform scores in [0, 1), one set per seed (the baseline selections)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from kneurons.model.classifier import MODULE_TYPES, EsmClassifier
from kneurons.scoring.base import ScoringMethod
from kneurons.scoring.rows import concat, frame


def random_scores(neuron_counts: dict[str, int], layer: int, seeds: Sequence[int]) -> pd.DataFrame:
    """Seeded uniform scores: module ``t`` of ``layer`` with ``seed`` draws from
    ``default_rng([seed, layer, i])``, ``i`` the index of ``t`` in ``MODULE_TYPES``.

    Seeding by (seed, layer, module) keeps each job independent and reproducible on its own.
    """
    frames = []
    for seed in seeds:
        for t, count in neuron_counts.items():
            rng = np.random.default_rng([int(seed), int(layer), MODULE_TYPES.index(t)])
            frames.append(frame("random", layer, t, rng.random(count), label=None, seed=int(seed)))
    return concat(frames)


@dataclass(frozen=True)
class RandomScores(ScoringMethod):
    """Random scores, one set per seed (column ``seed``); they look at no sequence."""

    name: ClassVar[str] = "random"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    @classmethod
    def from_config(cls, score_cfg: dict[str, Any]) -> RandomScores:
        """Seeds from ``score.random.seeds``."""
        return cls(seeds=tuple(score_cfg["random"]["seeds"]))

    def score_layer(
        self, model: EsmClassifier, scoring_set: pd.DataFrame, layer: int, device: torch.device | str = "cpu"
    ) -> pd.DataFrame:
        """Random rows for every neuron of the six modules of ``layer`` (``scoring_set`` is not read)."""
        return random_scores({t: model.neuron_count(t) for t in MODULE_TYPES}, layer, self.seeds)
