"""The run's knowledge units as an explanation uses them, and the settings it runs with.

* **Knowledge units**: the run's knowledge neurons, the global top ``top_fraction`` of its IG
  ranking (``kneurons.ranking`` with the run's per-module normalisation: the units the density
  statistics and the atlas call knowledge neurons), and with SAE features the top fraction of the
  features by their own IG ranking; each with its class profile from the class-conditional rows.
* ``IgSettings``: how the run computed IG (its score table's provenance), which an explanation
  repeats on each protein; ``ExplainSettings``: the ``explain`` section.
* ``ReplicateModel``: one replicate ready to explain with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from kneurons.ablation.fill import Fill
from kneurons.atlas.neurons import rank_method
from kneurons.characterise.classes import neuron_class_profile, split_ig_scores
from kneurons.errors import InputError
from kneurons.model.classifier import EsmClassifier
from kneurons.ranking import NeuronLayout
from kneurons.scoring.integration import integration_points
from kneurons.tables import COMPLETENESS_KEY
from kneurons.vocabulary import NEURON_KEY


@dataclass(frozen=True)
class ExplainSettings:
    """The ``explain`` settings: units named per protein, windows, the causal check's random draws."""

    top_units: int = 10
    window: int = 9
    peaks: int = 2
    random_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    track_steps: int = 64
    token_budget: int = 8192

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> ExplainSettings:
        """From the validated ``explain`` config section (or the CLI's values for it)."""
        return cls(
            top_units=int(section["top_units"]),
            window=int(section["window"]),
            peaks=int(section["peaks"]),
            random_seeds=tuple(int(s) for s in section["random_seeds"]),
            track_steps=int(section["track_steps"]),
            token_budget=int(section["token_budget"]),
        )


@dataclass(frozen=True)
class IgSettings:
    """How the run computed IG (its score table's provenance ``settings``)."""

    steps: int
    rule: str
    target: str
    #: The run's completeness rule (``score.ig.tolerance``, ``max_steps``; None: a run of older
    #: code, whose IG kept its steps): a protein's module is integrated again with twice the steps
    #: while its attributions miss its effect by more than ``tolerance`` of it.
    tolerance: float | None = None
    max_steps: int | None = None
    #: Per ``(layer, module)`` the run's error allowed per protein: ``tolerance`` x the mean
    #: ``|F(1) - F(0)|`` over its scoring set (its score tables' completeness records); where the
    #: run recorded none, a protein's own effect takes its place.
    shares: Mapping[tuple[int, str], float] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], source: str) -> IgSettings:
        """From an IG score table's provenance; InputError naming ``source`` without them."""
        s = meta.get("settings") or {}
        missing = [k for k in ("steps", "method", "target") if k not in s]
        if missing:
            raise InputError(
                f"{source}: the IG score table records no {', '.join(missing)} in its provenance"
            )
        tolerance = s.get("tolerance")
        made = cls(
            int(s["steps"]),
            str(s["method"]),
            str(s["target"]),
            None if tolerance is None else float(tolerance),
            None if s.get("max_steps") is None else int(s["max_steps"]),
        )
        return made.with_shares(meta)

    def with_shares(self, meta: Mapping[str, Any]) -> IgSettings:
        """These settings with the per-protein error shares of another score table of the run
        (``meta``: its provenance; the SAE features' IG table beside the neurons')."""
        n = int((meta.get("subset") or {}).get("n") or 0)
        if self.tolerance is None or n == 0:
            return self
        shares = dict(self.shares)
        for r in meta.get(COMPLETENESS_KEY) or []:
            shares[(int(r["layer"]), str(r["module"]))] = self.tolerance * float(r["effect"]) / n
        return dataclasses.replace(self, shares=shares)

    def as_json(self) -> dict[str, Any]:
        """What ``explain.json`` records of the run's IG settings (the shares are the run's tables')."""
        return {k: v for k, v in self.__dict__.items() if k != "shares"}

    def points(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The integration points ``(alphas, weights)`` as float32 tensors on ``device``."""
        al, wt = integration_points(self.steps, self.rule)
        return (
            torch.as_tensor(np.asarray(al), dtype=torch.float32, device=device),
            torch.as_tensor(np.asarray(wt), dtype=torch.float32, device=device),
        )


def unit_id(layer: int, module: str, index: int) -> str:
    """A unit's name, as the atlas names it: ``L3.k_proj.17`` (a neuron), ``L2.sae.31`` (a feature)."""
    return f"L{int(layer)}.{module}.{int(index)}"


def knowledge_units(
    scores: pd.DataFrame, layout: NeuronLayout, top_fraction: float, normalise: str, source: str
) -> pd.DataFrame:
    """The run's knowledge units of one kind: the global top ``top_fraction`` of its IG ranking.

    Returns ``layer, module, neuron, run_rank, run_score, top_class, class_share`` (class profile
    from the class-conditional IG rows, where the table has them), best first.
    """
    overall, per_class = split_ig_scores(scores, source)
    ranking = rank_method(overall, "ig", layout, top_fraction, normalise)
    flat = np.flatnonzero(ranking.top)
    flat = flat[np.argsort(ranking.rank[flat], kind="stable")]
    units = layout.keys(flat).assign(run_rank=ranking.rank[flat], run_score=ranking.score[flat])
    profile = neuron_class_profile(per_class)
    units = units.merge(profile, on=NEURON_KEY, how="left")
    return units.reset_index(drop=True)


@dataclass
class ReplicateModel:
    """One replicate ready to explain with: the model, its knowledge units and its fill."""

    replicate: int
    model: EsmClassifier
    labels: list[str]
    neurons: pd.DataFrame  # knowledge_units of the neurons
    features: pd.DataFrame | None  # of the SAE features (None: the run has none)
    fill: Fill
    ig: IgSettings
    neuron_layout: NeuronLayout
    feature_layout: NeuronLayout | None
    columns: dict[str, dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.columns = {"neurons": candidate_columns(self.neurons)}
        if self.features is not None:
            self.columns["features"] = candidate_columns(self.features)


def candidate_columns(units: pd.DataFrame) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
    """Per (layer, module), the unit indices among the candidates and their rows in ``units``."""
    rows: dict[tuple[int, str], list[int]] = {}
    for i, (layer, module) in enumerate(zip(units["layer"], map(str, units["module"]), strict=True)):
        rows.setdefault((int(layer), module), []).append(i)
    neuron = units["neuron"].to_numpy(dtype=np.int64)
    return {b: (neuron[np.asarray(r)], np.asarray(r)) for b, r in sorted(rows.items())}
