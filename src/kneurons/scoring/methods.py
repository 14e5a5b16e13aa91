"""Neuron scores: activation, integrated gradients (Dai et al. 2022 style), grad x activation, random.

Definitions (DESIGN.md, "Scoring methods"); ``a`` is a module's output, ``(T, B, n)`` inside a layer:

* **tokens**: every non-padding token of a sequence, BOS and EOS included. IG scales the
  module's whole output, and ablation masks act on every token, so the scores look at the same
  tokens the interventions touch. Padding is excluded (it never reaches the pooled output).
* **activation**: per sequence, ``abs_mean`` = mean over tokens of ``|a_i|`` (default), ``mean`` =
  signed mean, ``max`` = largest ``|a_i|`` over tokens; then the mean over sequences.
* **ig**: ``F(alpha) = target(model with the module's output replaced by alpha * a)`` (zero
  baseline), target = softmax probability (``prob``) or logit of the gold class. Per sequence
  ``attr_i = sum_tokens a_i(t) * sum_k w_k dF/da_i(t)|_{alpha_k a}`` with the integration points
  ``(alpha_k, w_k)`` of captum's rule of the same name (``integration_points``); then the mean over
  sequences. This equals ``captum.attr.IntegratedGradients`` on the network tail after the module
  (tests/test_ig_exact.py), and ``sum_i attr_i ~ F(1) - F(0)`` (completeness).
* **gradxact**: the same with one point, ``alpha = 1``, weight 1: ``a * dF/da``.
* **random**: seeded uniform scores in [0, 1), one set per seed.

Class-conditional scores (``label`` column) are the same per-sequence scores averaged over the
sequences of one class (their gold class is the target, so no extra model passes are needed).

Efficiency: the residual stream entering layer ``l`` is computed once per batch without grad and
shared by the layer's six modules; only layers ``>= l`` run with grad; ``q_proj`` and ``k_proj``
share their passes (``attribute_batch``); the alpha steps go in the
batch dimension (in chunks that keep ``batch x tokens x chunk`` within the token budget); batches
are length-sorted token-budget buckets; bf16 autocast on CUDA; neurons are tensor dimensions.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from kneurons.data.split import stratified_subset
from kneurons.errors import InputError, ModelError
from kneurons.model.batching import run_adaptive, token_budget_batches
from kneurons.model.classifier import MODULE_TYPES, EsmClassifier, get_alphabet, tokenize
from kneurons.model.hooks import module_output_hook, module_output_hooks
from kneurons.model.runtime import autocast, to_device
from kneurons.tables import SCORE_COLUMNS

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("activation", "ig", "gradxact", "random")
INTEGRATION_METHODS: tuple[str, ...] = (
    "riemann_right",
    "riemann_left",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)
ACTIVATION_REDUCTIONS: tuple[str, ...] = ("abs_mean", "mean", "max")
TARGETS: tuple[str, ...] = ("prob", "logit")
#: Attribution batches close before padding exceeds this fraction of their real tokens: the alpha
#: steps already fill each pass, so tighter batches cost less than fewer, padded ones.
IG_MAX_PADDING = 0.1


# -- integration rule ----------------------------------------------------------------------
def integration_points(steps: int, method: str = "riemann_right") -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, weights)`` of captum's ``approximation_parameters(method)`` for ``steps`` points, in float64.

    Matches captum, including its trapezoid rule (``alphas = linspace(0, 1, n)``, weights ``1/n``
    with halved end points, so they sum to ``1 - 1/n`` rather than 1). Riemann rules also accept
    ``steps = 1`` here (captum asserts ``n > 1``).
    """
    n = int(steps)
    if n < 1:
        raise ValueError(f"integration steps must be >= 1, got {steps}")
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1.0 + x), 0.5 * w
    weights = np.full(n, 1.0 / n)
    if method == "riemann_right":
        alphas = np.arange(1, n + 1) / n
    elif method == "riemann_left":
        alphas = np.arange(n) / n
    elif method == "riemann_middle":
        alphas = (np.arange(n) + 0.5) / n
    elif method == "riemann_trapezoid":
        if n < 2:
            raise ValueError("riemann_trapezoid needs at least 2 steps")
        alphas = np.linspace(0.0, 1.0, n)
        weights[0] /= 2
        weights[-1] /= 2
    else:
        raise ValueError(f"unknown integration method {method!r}; one of {', '.join(INTEGRATION_METHODS)}")
    return alphas.astype(np.float64), weights


# -- batches ------------------------------------------------------------------------------
@dataclass
class ScoringBatch:
    """Sequences of similar length: their row indices in the scoring set, tokens (B, T) and gold classes (B,)."""

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
    """Length-sorted token-budget batches; ``copies`` divides the budget for passes that repeat the batch.

    ``max_padding``: see ``token_budget_batches`` (``attribution_per_sequence`` uses ``IG_MAX_PADDING``).
    """
    alphabet = get_alphabet()
    lengths = [len(s) for s in sequences]
    gold_arr = np.zeros(len(sequences), dtype=np.int64) if gold is None else np.asarray(gold, dtype=np.int64)
    out = []
    for idx in token_budget_batches(lengths, max(1, token_budget // max(1, copies)), max_padding=max_padding):
        idx = np.asarray(idx, dtype=np.int64)
        out.append(
            ScoringBatch(
                index=idx,
                tokens=tokenize([sequences[i] for i in idx], alphabet),
                gold=torch.as_tensor(gold_arr[idx]),
            )
        )
    return out


class _Progress:
    """Log progress of a scoring job at most every ``every`` seconds (and at the end)."""

    def __init__(self, what: str, total: int, every: float = 10.0):
        self.what, self.total, self.every = what, total, every
        self.done = 0
        self.start = self.last = time.monotonic()

    def step(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            rate = self.done / max(now - self.start, 1e-9)
            log.info(
                "%s: %d/%d sequences (%.1f seq/s, %.0f s)",
                self.what,
                self.done,
                self.total,
                rate,
                now - self.start,
            )
            self.last = now


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast) -> float32 for reductions; float32 and float64 stay as they are."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _residue_mask(tokens: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """(T, B, 1) float mask of non-padding tokens (BOS and EOS included), time-first like module outputs."""
    return tokens.ne(padding_idx).T.unsqueeze(-1)


def _token_reducer(
    store: dict[str, torch.Tensor], name: str, reduce: str, mask: torch.Tensor, counts: torch.Tensor
) -> Callable[[torch.Tensor], None]:
    """Hook function storing the per-sequence reduction over non-padding tokens of a (T, B, n) output."""

    def fn(a: torch.Tensor) -> None:
        a = _at_least_fp32(a)
        if reduce == "abs_mean":
            store[name] = (a.abs() * mask).sum(0) / counts
        elif reduce == "mean":
            store[name] = (a * mask).sum(0) / counts
        else:
            store[name] = a.abs().masked_fill(~mask, float("-inf")).amax(0)

    return fn


# -- activation -----------------------------------------------------------------------------
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

    One forward pass per batch through layers ``0..layer`` only; the reduction over tokens runs
    inside the hook (before fair-esm's in-place scaling of ``q_proj`` outputs).
    """
    if reduce not in ACTIVATION_REDUCTIONS:
        raise ValueError(
            f"unknown activation reduction {reduce!r}; one of {', '.join(ACTIVATION_REDUCTIONS)}"
        )
    device = torch.device(device)
    model = model.to(device).eval()
    pad = model.esm.padding_idx
    n = len(sequences)
    out = {t: np.zeros((n, model.neuron_count(t)), dtype=np.float64) for t in module_types}
    what = f"activation layer {layer}"
    progress = _Progress(what, n)
    alphabet = get_alphabet()
    lengths = [len(s) for s in sequences]

    def step(idx: list[int]) -> dict[str, np.ndarray]:
        tokens = to_device(tokenize([sequences[i] for i in idx], alphabet), device)
        mask = _residue_mask(tokens, pad)
        counts = mask.sum(0).clamp_min(1).float()  # (B, 1)
        current: dict[str, torch.Tensor] = {}
        with (
            torch.no_grad(),
            autocast(device, bf16),
            module_output_hooks(
                [
                    (model.module(layer, t), _token_reducer(current, t, reduce, mask, counts))
                    for t in module_types
                ]
            ),
        ):
            x, pm = model.embed(tokens)
            model.run_layers(x, pm, 0, layer + 1)
        return {t: current[t].double().cpu().numpy() for t in module_types}

    # Per-sequence statistics do not depend on batch partners, so an out-of-memory batch is halved.
    for idx, res in run_adaptive(step, token_budget_batches(lengths, token_budget), lengths, what):
        for t in module_types:
            out[t][idx] = res[t]
        progress.step(len(idx))
    return out


# -- integrated gradients / grad x activation --------------------------------------------------
def _target(logits: torch.Tensor, gold: torch.Tensor, target: str) -> torch.Tensor:
    logits = _at_least_fp32(logits)
    if target == "prob":
        return torch.softmax(logits, dim=-1).gather(1, gold[:, None])[:, 0]
    if target == "logit":
        return logits.gather(1, gold[:, None])[:, 0]
    raise ValueError(f"unknown attribution target {target!r}; one of {', '.join(TARGETS)}")


def _scaled_leaf(
    scale: torch.Tensor | None, held: dict[str, torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Hook function replacing a module output ``a`` by ``scale * a`` through a leaf ``z`` that gradients target.

    ``scale=None`` keeps the output as it is (a rider: only its gradient is wanted).
    """

    def fn(a: torch.Tensor) -> torch.Tensor:
        a = a.detach()
        # A rider needs a leaf of its own: marking ``a`` itself would make ``held["a"]`` require grad.
        z = (a.detach() if scale is None else a * scale.to(a.dtype)).requires_grad_(True)
        held["a"], held["z"] = a, z
        # A fresh non-leaf: fair-esm scales q_proj's output in place after the module returns.
        return z * 1

    return fn


def _module_attribution(
    model: EsmClassifier,
    x: torch.Tensor,
    padding_mask: torch.Tensor | None,
    tokens: torch.Tensor,
    gold: torch.Tensor,
    layer: int,
    module_type: str,
    alphas: torch.Tensor,
    weights: torch.Tensor,
    target: str,
    alpha_chunk: int,
    bf16: bool,
    riders: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Attributions ``{module: (B, n_neurons)}`` for one batch whose residual stream ``x`` enters ``layer``.

    ``module_type``'s output is scaled by the alphas. Alpha steps are stacked in the batch
    dimension (block ``j`` of the repeated batch is step ``j``); the samples of a batch do not
    interact, so one backward of ``sum(F)`` gives every per-sample gradient.

    ``riders`` ``{module: weights}``: modules of the same layer whose outputs enter the same passes
    unscaled; their gradients are summed with their own weights per alpha step (see
    ``attribute_batch`` for the one pair this is exact for).
    """
    T, B, _ = x.shape
    device = x.device
    riders = riders or {}
    names = [module_type, *riders]
    all_weights = {module_type: weights, **riders}
    grad_sum: dict[str, torch.Tensor] = {}
    a_unscaled: dict[str, torch.Tensor] = {}
    for start in range(0, len(alphas), alpha_chunk):
        al = alphas[start : start + alpha_chunk]
        k = len(al)
        scale = al.repeat_interleave(B).view(1, k * B, 1)
        held = {t: {} for t in names}
        hooks = [
            (model.module(layer, t), _scaled_leaf(scale if t == module_type else None, held[t]))
            for t in names
        ]
        with torch.enable_grad(), autocast(device, bf16), module_output_hooks(hooks):
            y = model.run_layers(
                x.repeat(1, k, 1), None if padding_mask is None else padding_mask.repeat(k, 1), layer
            )
            logits = model.classify(y, tokens.repeat(k, 1))
            f = _target(logits, gold.repeat(k), target)
            grads = torch.autograd.grad(f.sum(), [held[t]["z"] for t in names])
        for t, g in zip(names, grads, strict=True):
            wt = all_weights[t][start : start + alpha_chunk]
            g = (_at_least_fp32(g).view(T, k, B, -1) * wt.view(1, k, 1, 1)).sum(1)
            grad_sum[t] = g if t not in grad_sum else grad_sum[t] + g
            if t not in a_unscaled:
                a_unscaled[t] = _at_least_fp32(held[t]["a"][:, :B])
    mask = _residue_mask(tokens, model.esm.padding_idx)
    return {t: (a_unscaled[t] * grad_sum[t] * mask).sum(0) for t in names}


def attribution_per_sequence(
    model: EsmClassifier,
    sequences: Sequence[str],
    gold: Sequence[int],
    layer: int,
    module_types: Sequence[str] = MODULE_TYPES,
    alphas: Sequence[float] = (1.0,),
    weights: Sequence[float] = (1.0,),
    target: str = "prob",
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    dtype: torch.dtype = torch.float32,
    what: str = "attribution",
) -> dict[str, np.ndarray]:
    """Per-sequence path attributions ``{module: (n_seq, n_neurons)}`` with integration points ``(alphas, weights)``.

    ``integration_points(m, rule)`` gives IG; ``alphas=(1,), weights=(1,)`` gives grad x activation.
    ``token_budget`` bounds the padded tokens of one pass, alpha copies included.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown attribution target {target!r}; one of {', '.join(TARGETS)}")
    device = torch.device(device)
    model = model.to(device).eval()
    # Gradients are needed w.r.t. module outputs only, never the weights.
    req = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    al = torch.as_tensor(np.asarray(alphas, dtype=np.float64), dtype=dtype, device=device)
    wt = torch.as_tensor(np.asarray(weights, dtype=np.float64), dtype=dtype, device=device)
    n = len(sequences)
    if len(gold) != n:
        raise InputError(f"{len(gold)} gold classes for {n} sequences")
    if n and (min(gold) < 0 or max(gold) >= model.num_classes):
        raise ModelError(
            f"gold class indices must lie in 0..{model.num_classes - 1}, got {min(gold)}..{max(gold)}"
        )
    out = {t: np.zeros((n, model.neuron_count(t)), dtype=np.float64) for t in module_types}
    progress = _Progress(f"{what} layer {layer}", n)
    alphabet = get_alphabet()
    lengths = [len(s) for s in sequences]
    gold_arr = np.asarray(gold, dtype=np.int64)

    def step(idx: list[int]) -> dict[str, np.ndarray]:
        attr = attribute_batch(
            model, to_device(tokenize([sequences[i] for i in idx], alphabet), device),
            to_device(torch.as_tensor(gold_arr[idx]), device), layer, module_types, al, wt, target, token_budget, bf16,
        )  # fmt: skip
        return {t: attr[t].double().cpu().numpy() for t in module_types}

    batches = token_budget_batches(
        lengths, max(1, token_budget // max(1, len(al))), max_padding=IG_MAX_PADDING
    )
    try:
        # Attributions are per sequence (test_attribution_independent_of_padding_partner), so an
        # out-of-memory batch is halved and retried.
        for idx, res in run_adaptive(step, batches, lengths, f"{what} layer {layer}"):
            for t in module_types:
                out[t][idx] = res[t]
            progress.step(len(idx))
    finally:
        for p, r in zip(model.parameters(), req, strict=True):
            p.requires_grad_(r)
    return out


def attribute_batch(
    model: EsmClassifier,
    tokens: torch.Tensor,
    gold: torch.Tensor,
    layer: int,
    module_types: Sequence[str],
    alphas: torch.Tensor,
    weights: torch.Tensor,
    target: str = "prob",
    token_budget: int = 8192,
    bf16: bool = True,
) -> dict[str, torch.Tensor]:
    """Attributions ``{module: (B, n_neurons)}`` for one batch of tokens (already on the model's device).

    The residual stream entering ``layer`` is computed once, without grad, and shared by the
    modules; alpha steps run in chunks of ``token_budget // tokens.numel()`` copies.

    ``q_proj`` and ``k_proj`` share their passes. Attention logits are bilinear in ``q`` and ``k``
    (the head scaling and the rotary embedding are linear), so scaling ``q`` by ``alpha`` gives the
    very same network as scaling ``k`` by ``alpha``, and the gradient w.r.t. the unscaled ``k`` in
    the ``q``-scaled network is ``alpha`` times the gradient w.r.t. the scaled ``k``. One pass per
    step thus serves both, with ``k``'s weights divided by ``alpha``; steps at ``alpha = 0`` (left
    and trapezoid rules) give ``k`` its own pass.
    """
    device = tokens.device
    with torch.no_grad(), autocast(device, bf16):
        x, pm = model.embed(tokens)
        x = model.run_layers(x, pm, 0, layer)
    chunk = max(1, min(len(alphas), token_budget // max(1, tokens.numel())))

    def run(t: str, al: torch.Tensor, wt: torch.Tensor, riders: dict[str, torch.Tensor] | None = None):
        return _module_attribution(model, x, pm, tokens, gold, layer, t, al, wt, target, chunk, bf16, riders)

    out: dict[str, torch.Tensor] = {}
    todo = list(module_types)
    if "q_proj" in todo and "k_proj" in todo:
        nonzero = alphas != 0
        k_weights = torch.where(nonzero, weights / torch.where(nonzero, alphas, torch.ones_like(alphas)), 0)
        out.update(run("q_proj", alphas, weights, {"k_proj": k_weights}))
        if not bool(nonzero.all()):
            extra = run("k_proj", alphas[~nonzero], weights[~nonzero])["k_proj"]
            out["k_proj"] = out["k_proj"] + extra
        todo = [t for t in todo if t not in out]
    for t in todo:
        out.update(run(t, alphas, weights))
    return {t: out[t] for t in module_types}


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
        return _target(model(tokens), gold, target)


# -- the naive reference (tests and benchmark) ---------------------------------------------------
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
    """Reference IG (B, n_neurons): captum ``IntegratedGradients`` on ``replaced_output_forward``, zero baseline.

    Token attributions are summed over non-padding tokens, as in ``attribution_per_sequence``.
    """
    from captum.attr import IntegratedGradients

    f = replaced_output_forward(model, tokens, layer, module_type)
    fwd = (lambda a: torch.softmax(f(a), dim=-1)) if target == "prob" else f
    a = module_output(model, tokens, layer, module_type)
    attr = IntegratedGradients(fwd, multiply_by_inputs=True).attribute(
        a, baselines=torch.zeros_like(a), target=gold, n_steps=steps, method=method
    )
    mask = tokens.ne(model.esm.padding_idx).unsqueeze(-1).to(attr.dtype)
    return (attr * mask).sum(1)


# -- random ------------------------------------------------------------------------------------
def random_scores(neuron_counts: dict[str, int], layer: int, seeds: Sequence[int]) -> pd.DataFrame:
    """Seeded uniform scores; module ``t`` of ``layer`` with ``seed`` draws from ``default_rng([seed, layer, t])``.

    Seeding by (seed, layer, module) keeps each job independent and reproducible on its own.
    """
    frames = []
    for seed in seeds:
        for t, count in neuron_counts.items():
            rng = np.random.default_rng([int(seed), int(layer), MODULE_TYPES.index(t)])
            frames.append(_frame("random", layer, t, rng.random(count), label=None, seed=int(seed)))
    return _concat(frames)


# -- tables ------------------------------------------------------------------------------------
def _frame(
    method: str, layer: int, module: str, scores: np.ndarray, label: str | None, seed: int | None
) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame(
        {
            "method": method,
            "layer": np.full(n, layer, dtype=np.int64),
            "module": module,
            "neuron": np.arange(n, dtype=np.int64),
            "label": pd.array([label] * n, dtype="string"),
            "seed": pd.array([seed] * n, dtype="Int64"),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]
    df["label"] = df["label"].astype("string")
    df["seed"] = df["seed"].astype("Int64")
    return df


def scores_table(
    per_sequence: dict[str, np.ndarray],
    method: str,
    layer: int,
    labels: Sequence[str] | None = None,
    class_conditional: bool = False,
) -> pd.DataFrame:
    """Score table rows from per-sequence scores: the mean over all sequences (``label`` NA) and,
    with ``class_conditional``, the mean over each class's sequences (``label`` = the class)."""
    frames = []
    for t, values in per_sequence.items():
        if values.shape[0] == 0:
            raise InputError("no sequences to score")
        frames.append(_frame(method, layer, t, values.mean(0), label=None, seed=None))
    if class_conditional:
        if labels is None:
            raise ValueError("class-conditional scores need the sequences' labels")
        labels = np.asarray(labels, dtype=object)
        for cls in sorted(set(labels)):
            sel = labels == cls
            for t, values in per_sequence.items():
                frames.append(_frame(method, layer, t, values[sel].mean(0), label=str(cls), seed=None))
    return _concat(frames)


def score_layer(
    model: EsmClassifier,
    scoring_set: pd.DataFrame,
    method: str,
    layer: int,
    score_cfg: dict[str, Any],
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """The score table of one (method, layer) job: all six modules of ``layer``.

    ``score_cfg`` is the validated ``score`` section of the config; ``scoring_set`` has columns
    ``sequence, label, label_index``.
    """
    if not 0 <= layer < model.num_layers:
        raise ModelError(f"layer {layer} does not exist; the model has {model.num_layers} layers")
    if method == "random":
        return random_scores(
            {t: model.neuron_count(t) for t in MODULE_TYPES}, layer, score_cfg["random"]["seeds"]
        )
    seqs = scoring_set["sequence"].astype(str).tolist()
    labels = scoring_set["label"].astype(str).tolist()
    gold = scoring_set["label_index"].astype(int).tolist()
    budget = int(score_cfg["token_budget"])
    bf16 = bool(score_cfg.get("bf16", True))
    if method == "activation":
        cond = bool(score_cfg["activation"].get("class_conditional", False))
        per = activation_per_sequence(
            model,
            seqs,
            layer,
            reduce=score_cfg["activation"]["reduce"],
            token_budget=budget,
            device=device,
            bf16=bf16,
        )
    elif method in ("ig", "gradxact"):
        ig = score_cfg["ig"]
        cond = bool(ig.get("class_conditional", True))
        if method == "ig":
            alphas, weights = integration_points(ig["steps"], ig["method"])
        else:
            alphas, weights = np.ones(1), np.ones(1)
        per = attribution_per_sequence(
            model,
            seqs,
            gold,
            layer,
            alphas=alphas,
            weights=weights,
            target=ig["target"],
            token_budget=budget,
            device=device,
            bf16=bf16,
            what=method,
        )
    else:
        raise ValueError(f"unknown scoring method {method!r}; one of {', '.join(METHODS)}")
    return scores_table(per, method, layer, labels, class_conditional=cond)


# -- the scoring subset ---------------------------------------------------------------------------
def select_scoring_set(
    split_df: pd.DataFrame,
    classes_df: pd.DataFrame,
    split: str = "train",
    max_sequences: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The scoring subset: rows of ``split`` (never ``test``), at most ``max_sequences``, stratified by label.

    Each class gets a share proportional to its size (largest remainders, at least one per
    class while the budget allows), drawn with ``seed``. Returns ``accession, sequence, label,
    label_index`` in the split file's order; ``label_index`` comes from ``classes_df``.
    """
    if split == "test":
        raise InputError("scoring must not use the test split (it is reserved for ablation evaluation)")
    for col in ("accession", "sequence", "label", "split"):
        if col not in split_df.columns:
            raise InputError(
                f"split table lacks column {col!r} (has: {', '.join(map(str, split_df.columns))})"
            )
    index_of = dict(zip(classes_df["label"].astype(str), classes_df["label_index"].astype(int), strict=True))
    df = split_df[split_df["split"] == split].copy()
    if df.empty:
        raise InputError(f"split table has no rows in split {split!r}")
    df["label"] = df["label"].astype(str)
    unknown = sorted(set(df["label"]) - set(index_of))
    if unknown:
        raise InputError(f"labels {unknown[:5]} of the split table are missing from classes.tsv")
    df["label_index"] = df["label"].map(index_of).astype(int)
    df = stratified_subset(df, max_sequences, seed)
    return df[["accession", "sequence", "label", "label_index"]].reset_index(drop=True)


def subset_hash(accessions: Sequence[str]) -> str:
    """sha256 of the accessions joined by newlines, in order (identifies the scoring subset)."""
    return hashlib.sha256("\n".join(map(str, accessions)).encode()).hexdigest()


def settings_for(method: str, score_cfg: dict[str, Any]) -> dict[str, Any]:
    """The settings that determine a method's scores (recorded in the table metadata)."""
    if method == "activation":
        return {"tokens": "non-padding incl. BOS/EOS", **score_cfg["activation"]}
    if method == "ig":
        ig = score_cfg["ig"]
        return {
            "steps": ig["steps"],
            "method": ig["method"],
            "target": ig["target"],
            "baseline": "zero",
            "class_conditional": ig["class_conditional"],
        }
    if method == "gradxact":
        ig = score_cfg["ig"]
        return {"target": ig["target"], "class_conditional": ig["class_conditional"]}
    if method == "random":
        return {"seeds": list(score_cfg["random"]["seeds"])}
    raise ValueError(f"unknown scoring method {method!r}; one of {', '.join(METHODS)}")
