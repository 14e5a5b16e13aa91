"""Weight-change scores (``delta``): how much fine-tuning changed what each neuron outputs.

A neuron ``i`` of a module computes ``a_i = W[i] . x + b[i]`` from the input ``x`` it receives. Its
score is the mean over the scoring set of the change fine-tuning made to that output, on that input:

    delta_i = mean over sequences of ( mean over tokens of |(W_ft[i] - W_ref[i]) . x + (b_ft[i] - b_ref[i])| )

with the tokens those of the activation scores (every non-padding token, BOS/EOS included) and
``W_ref`` the weights fine-tuning started from (``kneurons.model.reference``: the pretrained
backbone, or the base model of the planted-knowledge benchmark). It is exactly what the
``pretrained`` fill would change at the neuron's own output if that neuron alone were rolled back
(``|a_i - (W_ref[i] . x + b_ref[i])|``), so the method and the fill agree on what "where
fine-tuning wrote" means: a neuron fine-tuning left untouched scores exactly 0, and rolling it back
changes nothing. Unlike the norm of the row change ``||W_ft[i] - W_ref[i]||``, it weighs a change
by the inputs the neuron actually sees (a change along a direction the input never takes scores
0) and it keeps the bias change. One forward pass per batch, no gradients.

It needs a reference: a model fine-tuned from random initialisation has none, and the method is
refused for it (as the ``pretrained`` fill is). A gated unit with no weight row of its own (ESM C's
``fc1``) has no weight change and is refused, naming the module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kneurons.errors import ConfigError
from kneurons.model.classifier import MODULE_TYPES, EsmClassifier
from kneurons.model.inference import Batch, run_batches
from kneurons.model.reference import ReferenceRows, Rows
from kneurons.progress import Progress
from kneurons.scoring.base import PerSequenceMethod


def weight_changes(
    model: EsmClassifier, reference: ReferenceRows, layer: int, module_types: Sequence[str]
) -> dict[str, Rows]:
    """``(W_ft - W_ref, b_ft - b_ref)`` of each module of ``layer`` (float32; the bias change None
    where the module has no bias)."""
    out: dict[str, Rows] = {}
    for t in module_types:
        if (layer, t) not in reference:
            raise ConfigError(f"score method 'delta': no reference weights for layer {layer} {t}")
        mod = model.module(layer, t)
        w_ref, b_ref = reference[(layer, t)]
        w = mod.weight.detach().float()
        dw = w - w_ref.to(w.device, torch.float32)
        db = None
        if mod.bias is not None:
            db = mod.bias.detach().float() - (0.0 if b_ref is None else b_ref.to(w.device, torch.float32))
        out[t] = (dw, db)
    return out


def _change_reducer(
    store: dict[str, torch.Tensor], name: str, change: Rows, mask: torch.Tensor, counts: torch.Tensor
) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
    """Forward hook storing the per-sequence mean over non-padding tokens of ``|dW . x + db|``."""
    dw, db = change

    def hook(_mod: nn.Module, inputs: tuple, _out: torch.Tensor) -> None:
        x = inputs[0].float()  # (T, B, d_in), time-first as every hook sees it
        store[name] = (F.linear(x, dw, db).abs() * mask).sum(0) / counts

    return hook


def delta_per_sequence(
    model: EsmClassifier,
    sequences: Sequence[str],
    layer: int,
    reference: ReferenceRows,
    module_types: Sequence[str] = MODULE_TYPES,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> dict[str, np.ndarray]:
    """Per-sequence weight-change scores ``{module: (n_seq, n_neurons)}`` of the modules of ``layer``.

    One forward pass per batch through layers ``0..layer`` (``run_through``), the hooks reading
    each module's input; ``reference`` holds the reference rows of (at least) those modules.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    changes = weight_changes(model, reference, layer, module_types)
    n = len(sequences)
    out = {t: np.zeros((n, model.module(layer, t).out_features), dtype=np.float64) for t in module_types}
    what = f"delta layer {layer}"
    progress = Progress(what, n)

    def step(batch: Batch) -> dict[str, np.ndarray]:
        mask = model.token_mask(batch.tokens)
        counts = mask.sum(0).clamp_min(1).float()  # (B, 1)
        current: dict[str, torch.Tensor] = {}
        handles = [
            model.module(layer, t).register_forward_hook(
                _change_reducer(current, t, changes[t], mask, counts)
            )
            for t in module_types
        ]
        try:
            with torch.no_grad():
                x, pm = model.embed(batch.tokens)
                model.run_through(x, pm, layer)
        finally:
            for h in handles:
                h.remove()
        return {t: current[t].double().cpu().numpy() for t in module_types}

    # Per-sequence statistics do not depend on batch partners, so run_batches may halve a batch.
    for batch, res in run_batches(model, sequences, step, token_budget, device, bf16, what=what):
        for t in module_types:
            out[t][batch.index] = res[t]
        progress.step(len(batch.index))
    return out


@dataclass(frozen=True)
class WeightChange(PerSequenceMethod):
    """Weight-change scores against the reference rows ``reference`` (bound by ``with_reference``)."""

    name: ClassVar[str] = "delta"
    class_conditional: bool = False
    token_budget: int = 8192
    bf16: bool = True
    reference: Mapping[tuple[int, str], Rows] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_config(cls, score_cfg: dict[str, Any]) -> WeightChange:
        """Settings from ``score.delta``, ``score.token_budget`` and ``score.bf16``; the reference
        comes with ``with_reference``."""
        section = score_cfg["delta"]
        return cls(
            class_conditional=bool(section.get("class_conditional", False)), **cls.batch_settings(score_cfg)
        )

    def with_reference(self, reference: Mapping[tuple[int, str], Rows]) -> WeightChange:
        """This method scoring against ``reference`` (``kneurons.model.reference.reference_rows``)."""
        return replace(self, reference=reference)

    def attribute(
        self,
        model: EsmClassifier,
        sequences: Sequence[str],
        gold: Sequence[int] | None,
        layer: int,
        module_types: Sequence[str] = MODULE_TYPES,
        device: torch.device | str = "cpu",
    ) -> dict[str, np.ndarray]:
        """``delta_per_sequence`` with this method's settings (``gold`` is not needed)."""
        if self.reference is None:
            raise ConfigError(
                "score method 'delta' scores how fine-tuning changed each neuron, and needs the weights "
                "fine-tuning started from; none were given"
            )
        return delta_per_sequence(
            model, sequences, layer, dict(self.reference), module_types, self.token_budget, device, self.bf16
        )
