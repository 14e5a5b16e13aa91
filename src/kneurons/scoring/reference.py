"""Reference computations for tests and benchmarks only; no production module imports this one.

The straightforward way to get what ``kneurons.scoring.ig`` computes fast: captum's
``IntegratedGradients`` on the whole model with one module's output replaced, the module's output
itself, ``F`` at a given scale (completeness checks), and scoring batches with their gold classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kneurons.model.classifier import EsmClassifier, get_alphabet, tokenize
from kneurons.model.hooks import module_output_hook
from kneurons.model.inference import plan_batches
from kneurons.scoring.ig import target_value


@dataclass
class ScoringBatch:
    """Sequences of similar length: row indices in the scoring set, tokens (B, T), gold classes (B,)."""

    index: np.ndarray
    tokens: torch.Tensor
    gold: torch.Tensor


def make_batches(
    sequences: Sequence[str],
    gold: Sequence[int] | None,
    token_budget: int,
    copies: int = 1,
    max_padding: float | None = None,
) -> list[ScoringBatch]:
    """The batches ``run_batches`` forms (``plan_batches``), with tokens and gold classes, on the CPU."""
    alphabet = get_alphabet()
    gold_arr = np.zeros(len(sequences), dtype=np.int64) if gold is None else np.asarray(gold, dtype=np.int64)
    out = []
    for idx in plan_batches(sequences, token_budget, copies, max_padding):
        idx = np.asarray(idx, dtype=np.int64)
        out.append(
            ScoringBatch(
                index=idx,
                tokens=tokenize([sequences[i] for i in idx], alphabet),
                gold=torch.as_tensor(gold_arr[idx]),
            )
        )
    return out


def target_at_scale(
    model: EsmClassifier,
    tokens: torch.Tensor,
    gold: torch.Tensor,
    layer: int,
    module_type: str,
    alpha: float,
    target: str = "prob",
) -> torch.Tensor:
    """``F`` per sequence (B,) with the module's output scaled by ``alpha`` (completeness checks)."""
    with torch.no_grad(), module_output_hook(model.module(layer, module_type), lambda a: a * alpha):
        return target_value(model(tokens), gold, target)


def replaced_output_forward(
    model: EsmClassifier, tokens: torch.Tensor, layer: int, module_type: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f(a) -> logits``: the full model on ``tokens`` with the module's output replaced by ``a``.

    ``a`` is batch-first ``(k*B, T, n)`` (captum stacks its ``k`` scaled copies along dim 0); the
    tokens are repeated to match. This is the network tail after the module as a function of
    the module's output, computed the straightforward way (the whole model every call).
    """
    module = model.module(layer, module_type)
    B = tokens.shape[0]

    def f(a: torch.Tensor) -> torch.Tensor:
        k = a.shape[0] // B
        replacement = a.transpose(0, 1)
        with module_output_hook(module, lambda _out: replacement * 1):
            return model(tokens.repeat(k, 1))

    return f


def module_output(model: EsmClassifier, tokens: torch.Tensor, layer: int, module_type: str) -> torch.Tensor:
    """The module's output for ``tokens``, batch-first ``(B, T, n)``."""
    held = {}
    with (
        torch.no_grad(),
        module_output_hook(
            model.module(layer, module_type), lambda a: held.__setitem__("a", a.detach().clone())
        ),
    ):
        model(tokens)
    return held["a"].transpose(0, 1)


def captum_ig_per_sequence(
    model: EsmClassifier,
    tokens: torch.Tensor,
    gold: torch.Tensor,
    layer: int,
    module_type: str,
    steps: int,
    method: str = "riemann_right",
    target: str = "prob",
) -> torch.Tensor:
    """Reference IG (B, n_neurons): captum ``IntegratedGradients`` on ``replaced_output_forward``
    (zero baseline).

    Token attributions are summed over non-padding tokens, as in ``attribution_per_sequence``.
    """
    from captum.attr import IntegratedGradients

    f = replaced_output_forward(model, tokens, layer, module_type)
    fwd = (lambda a: torch.softmax(f(a), dim=-1)) if target == "prob" else f
    a = module_output(model, tokens, layer, module_type)
    attr = IntegratedGradients(fwd, multiply_by_inputs=True).attribute(
        a, baselines=torch.zeros_like(a), target=gold, n_steps=steps, method=method
    )
    mask = tokens.ne(model.padding_idx).unsqueeze(-1).to(attr.dtype)
    return (attr * mask).sum(1)
