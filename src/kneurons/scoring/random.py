"""Random scores: seeded uniform scores in [0, 1), one set per seed (the baseline selections).

For SAE features (``"sae"``) a random selection must be a selection of features that could
matter: a feature that never fires on the evaluated proteins is a no-op when masked, and a
baseline padded with them would look weaker than chance (DESIGN.md, "Features"). So random
feature scores are drawn only for the features active on the scoring set; the others score
``INELIGIBLE``, below every draw, and are never picked before an active feature.
"""

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
from kneurons.vocabulary import FEATURE_MODULE

#: The score of a feature that never fires on the scoring set: below every uniform draw.
INELIGIBLE: float = -1.0

#: The stream index of each unit type in the seed ``[seed, layer, index]``: the neuron modules
#: keep their ``MODULE_TYPES`` positions (so neuron draws are unchanged); features come after.
STREAM_INDEX: dict[str, int] = {
    **{t: i for i, t in enumerate(MODULE_TYPES)},
    FEATURE_MODULE: len(MODULE_TYPES),
}


def random_scores(
    counts: dict[str, int],
    layer: int,
    seeds: Sequence[int],
    eligible: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Seeded uniform scores: units ``t`` of ``layer`` with ``seed`` draw from
    ``default_rng([seed, layer, STREAM_INDEX[t]])``.

    Seeding by (seed, layer, unit type) keeps each job independent and reproducible on its own.
    ``eligible[t]`` (bool per unit): only those units are drawn for (the draw is the same as
    without it, so eligibility never reshuffles the eligible units); the others score
    ``INELIGIBLE``.
    """
    frames = []
    for seed in seeds:
        for t, count in counts.items():
            rng = np.random.default_rng([int(seed), int(layer), STREAM_INDEX[t]])
            values = rng.random(count)
            if eligible is not None and t in eligible:
                values = np.where(np.asarray(eligible[t], dtype=bool), values, INELIGIBLE)
            frames.append(frame("random", layer, t, values, label=None, seed=int(seed)))
    return concat(frames)


@dataclass(frozen=True)
class RandomScores(ScoringMethod):
    """Random scores, one set per seed (column ``seed``); neurons' look at no sequence."""

    name: ClassVar[str] = "random"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    token_budget: int = 8192

    @classmethod
    def from_config(cls, score_cfg: dict[str, Any]) -> RandomScores:
        """Seeds from ``score.random.seeds``; ``score.token_budget`` for the features' eligibility
        pass (a neuron job's settings leave it out: random neuron scores never run the model)."""
        budget = score_cfg.get("token_budget", cls.token_budget)
        return cls(seeds=tuple(score_cfg["random"]["seeds"]), token_budget=int(budget))

    def score_layer(
        self,
        model: EsmClassifier,
        scoring_set: pd.DataFrame,
        layer: int,
        device: torch.device | str = "cpu",
        module_types: Sequence[str] = MODULE_TYPES,
    ) -> pd.DataFrame:
        """Random rows for every unit ``module_types`` of ``layer``. Neurons: ``scoring_set`` is not
        read. Features: drawn among those active on the scoring set's sequences (module docstring)."""
        eligible = None
        if FEATURE_MODULE in module_types:
            from kneurons.features.quality import active_features, sae_inputs

            # active where the SAE reads the model: its input tokens, its run, stream or update
            seqs = scoring_set["sequence"].astype(str).tolist()
            sae = model.saes[layer]
            h = sae_inputs(model, sae, seqs, None, self.token_budget, device)[layer]
            eligible = {FEATURE_MODULE: active_features(sae, h).numpy()}
        counts = {t: model.module(layer, t).out_features for t in module_types}
        return random_scores(counts, layer, self.seeds, eligible)
