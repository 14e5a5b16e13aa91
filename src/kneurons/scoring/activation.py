"""Activation scores: per sequence, a reduction of each neuron's output over the non-padding tokens.

``abs_mean`` = mean over tokens of ``|a_i|`` (default), ``mean`` = signed mean, ``max`` = largest
``|a_i|``; tokens are every non-padding token, BOS and EOS included (the tokens ablation masks act
on), and for SAE features the SAE's input tokens (``EsmClassifier.unit_mask``: residues only for
an InterPLM SAE, whose features do not exist at BOS and EOS). The table holds the mean over
sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from kneurons.model.classifier import MODULE_TYPES, EsmClassifier
from kneurons.model.hooks import module_output_hooks
from kneurons.model.inference import Batch, run_batches
from kneurons.progress import Progress
from kneurons.scoring.base import PerSequenceMethod, at_least_fp32

ACTIVATION_REDUCTIONS: tuple[str, ...] = ("abs_mean", "mean", "max")


def _token_reducer(
    store: dict[str, torch.Tensor], name: str, reduce: str, mask: torch.Tensor, counts: torch.Tensor
) -> Callable[[torch.Tensor], None]:
    """Hook function storing the per-sequence reduction over non-padding tokens of a (T, B, n) output."""

    def fn(a: torch.Tensor) -> None:
        a = at_least_fp32(a)
        if reduce == "abs_mean":
            store[name] = (a.abs() * mask).sum(0) / counts
        elif reduce == "mean":
            store[name] = (a * mask).sum(0) / counts
        else:
            store[name] = a.abs().masked_fill(~mask, float("-inf")).amax(0)

    return fn


def activation_per_sequence(
    model: EsmClassifier,
    sequences: Sequence[str],
    layer: int,
    module_types: Sequence[str] = MODULE_TYPES,
    reduce: str = "abs_mean",
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> dict[str, np.ndarray]:
    """Per-sequence activation statistics ``{module: (n_seq, n_neurons)}`` for the modules of ``layer``.

    One forward pass per batch through layers ``0..layer`` only (``run_through``: the final norm too
    for the units after it, an SAE's at ``num_layers``); the reduction over tokens runs
    inside the hook (before fair-esm's in-place scaling of ``q_proj`` outputs).
    """
    if reduce not in ACTIVATION_REDUCTIONS:
        raise ValueError(
            f"unknown activation reduction {reduce!r}; one of {', '.join(ACTIVATION_REDUCTIONS)}"
        )
    device = torch.device(device)
    model = model.to(device).eval()
    n = len(sequences)
    out = {t: np.zeros((n, model.module(layer, t).out_features), dtype=np.float64) for t in module_types}
    what = f"activation layer {layer}"
    progress = Progress(what, n)

    def step(batch: Batch) -> dict[str, np.ndarray]:
        current: dict[str, torch.Tensor] = {}
        hooks = []
        for t in module_types:
            mask = model.unit_mask(batch.tokens, layer, t)
            counts = mask.sum(0).clamp_min(1).float()  # (B, 1)
            hooks.append((model.module(layer, t), _token_reducer(current, t, reduce, mask, counts)))
        with torch.no_grad(), module_output_hooks(hooks):
            x, pm = model.embed(batch.tokens)
            model.run_through(x, pm, layer)
        return {t: current[t].double().cpu().numpy() for t in module_types}

    # Per-sequence statistics do not depend on batch partners, so run_batches may halve a batch.
    for batch, res in run_batches(model, sequences, step, token_budget, device, bf16, what=what):
        for t in module_types:
            out[t][batch.index] = res[t]
        progress.step(len(batch.index))
    return out


@dataclass(frozen=True)
class Activation(PerSequenceMethod):
    """Activation scores with reduction ``reduce`` (``ACTIVATION_REDUCTIONS``)."""

    name: ClassVar[str] = "activation"
    reduce: str = "abs_mean"
    class_conditional: bool = False
    token_budget: int = 8192
    bf16: bool = True

    @classmethod
    def from_config(cls, score_cfg: dict[str, Any]) -> Activation:
        """Settings from ``score.activation``, ``score.token_budget`` and ``score.bf16``."""
        section = score_cfg["activation"]
        return cls(
            reduce=section["reduce"],
            class_conditional=bool(section.get("class_conditional", False)),
            **cls.batch_settings(score_cfg),
        )

    def attribute(
        self,
        model: EsmClassifier,
        sequences: Sequence[str],
        gold: Sequence[int] | None,
        layer: int,
        module_types: Sequence[str] = MODULE_TYPES,
        device: torch.device | str = "cpu",
    ) -> dict[str, np.ndarray]:
        """``activation_per_sequence`` with this method's settings (``gold`` is not needed)."""
        return activation_per_sequence(
            model, sequences, layer, module_types, self.reduce, self.token_budget, device, self.bf16
        )
