"""The shape every scoring method has (captum-style: one class per method, one ``attribute()``), and
``score_layer``, the one (method, layer) scoring step; a job runs it for each layer of its chunk.

A method class is built from the validated ``score`` config section (``from_config``) and holds its
settings; ``score_layer(model, scoring_set, layer, device)`` gives the score-table rows of one layer.
Methods that score sequences (activation, ig, gradxact, delta) share ``attribute(model, sequences, gold,
layer, module_types, device) -> {module: (n_seq, n_neurons)}``, per-sequence scores whose means over
all sequences (and, class-conditionally, over each class's sequences) are the table. Random scores
do not look at sequences; that class draws its rows directly. The registry
(``kneurons.scoring.registry``) names the classes.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from kneurons.errors import ModelError
from kneurons.model.classifier import MODULE_TYPES, EsmClassifier
from kneurons.scoring import registry
from kneurons.scoring.rows import scores_table

log = logging.getLogger(__name__)


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast) -> float32 for reductions; float32 and float64 stay as they are."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


class ScoringMethod(ABC):
    """A scoring method with its settings; ``name`` is its key in ``registry.METHODS``."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_config(cls, score_cfg: dict[str, Any]) -> ScoringMethod:
        """The method with its settings from the validated ``score`` config section."""

    @property
    def spec(self) -> registry.MethodSpec:
        """The method's registry entry (label, styles, ranking rule, settings keys)."""
        return registry.get(self.name)

    @abstractmethod
    def score_layer(
        self,
        model: EsmClassifier,
        scoring_set: pd.DataFrame,
        layer: int,
        device: torch.device | str = "cpu",
        module_types: Sequence[str] = MODULE_TYPES,
    ) -> pd.DataFrame:
        """Score-table rows of the units ``module_types`` of ``layer`` (the six neuron modules by
        default; ``("sae",)``: the features of the SAE attached there).

        ``scoring_set`` has columns ``sequence, label, label_index``.
        """


class PerSequenceMethod(ScoringMethod):
    """A method that scores each sequence; the table holds means over sequences (and over classes)."""

    class_conditional: bool

    @staticmethod
    def batch_settings(score_cfg: dict[str, Any]) -> dict[str, Any]:
        """``token_budget`` and ``bf16`` from the ``score`` section: how every such method batches."""
        return {"token_budget": int(score_cfg["token_budget"]), "bf16": bool(score_cfg.get("bf16", True))}

    @abstractmethod
    def attribute(
        self,
        model: EsmClassifier,
        sequences: Sequence[str],
        gold: Sequence[int] | None,
        layer: int,
        module_types: Sequence[str] = MODULE_TYPES,
        device: torch.device | str = "cpu",
    ) -> dict[str, np.ndarray]:
        """Per-sequence scores ``{module: (n_seq, n_neurons)}`` of the modules of ``layer``.

        ``gold``: the gold class index of each sequence (the target of attributions).
        """

    def layer_scores(
        self,
        model: EsmClassifier,
        sequences: Sequence[str],
        gold: Sequence[int],
        layer: int,
        module_types: Sequence[str] = MODULE_TYPES,
        device: torch.device | str = "cpu",
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(per-sequence scores, what the table records of how they were computed)``: ``attribute``
        and nothing to record, unless a method has more to say (IG's completeness)."""
        return self.attribute(model, sequences, gold, layer, module_types, device=device), {}

    def score_layer(
        self,
        model: EsmClassifier,
        scoring_set: pd.DataFrame,
        layer: int,
        device: torch.device | str = "cpu",
        module_types: Sequence[str] = MODULE_TYPES,
    ) -> pd.DataFrame:
        """Means of ``attribute`` over all sequences, and over each class's with ``class_conditional``;
        the table's ``attrs`` hold what ``layer_scores`` records (the job puts it in the metadata)."""
        seqs = scoring_set["sequence"].astype(str).tolist()
        labels = scoring_set["label"].astype(str).tolist()
        gold = scoring_set["label_index"].astype(int).tolist()
        per, recorded = self.layer_scores(model, seqs, gold, layer, module_types, device=device)
        table = scores_table(per, self.name, layer, labels, class_conditional=self.class_conditional)
        table.attrs.update(recorded)
        return table


def check_layer(model: EsmClassifier, layer: int, module_types: Sequence[str] = MODULE_TYPES) -> None:
    """Raise ModelError unless every unit type of ``module_types`` exists at ``layer`` of ``model``.

    Neurons exist in layers ``0..L-1``; SAE features (``"sae"``) where an SAE is attached, which
    may be ``L``, the output of the final norm (``EsmClassifier.unit_layers``).
    """
    for module_type in module_types:
        if layer not in model.unit_layers(module_type):
            if module_type in MODULE_TYPES:
                raise ModelError(f"layer {layer} does not exist; the model has {model.num_layers} layers")
            raise ModelError(
                f"no {module_type} units at layer {layer}; only at {model.unit_layers(module_type)}"
            )


def score_layer(
    model: EsmClassifier,
    scoring_set: pd.DataFrame,
    method: str,
    layer: int,
    score_cfg: dict[str, Any],
    device: torch.device | str = "cpu",
    module_types: Sequence[str] = MODULE_TYPES,
    reference: Mapping[tuple[int, str], Any] | None = None,
) -> pd.DataFrame:
    """The score table of one (method, layer): all six modules of ``layer``, or the units
    ``module_types`` (``("sae",)``: the features of the SAE attached at ``layer``).

    ``score_cfg`` is the validated ``score`` section of the config; ``scoring_set`` has columns
    ``sequence, label, label_index``. ``reference``: the reference rows
    (``kneurons.model.reference.reference_rows``) of a method that compares the model with the
    weights fine-tuning started from (``MethodSpec.needs_reference``); ignored by the others.
    """
    check_layer(model, layer, module_types)
    scorer = registry.build(method, score_cfg)
    if registry.needs_reference(method):
        if reference is None:
            raise ModelError(f"score method {method!r} needs the reference weights; none were given")
        scorer = scorer.with_reference(reference)
    return scorer.score_layer(model, scoring_set, layer, device, module_types)
