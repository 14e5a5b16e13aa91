"""Path attributions: integrated gradients (Dai et al. 2022 style) and grad x activation.

``F(alpha) = target(model with the module's output replaced by alpha * a)`` (zero baseline), target =
softmax probability (``prob``) or logit of the gold class. Per sequence
``attr_i = sum_tokens a_i(t) * sum_k w_k dF/da_i(t)|_{alpha_k a}`` with the integration points
``(alpha_k, w_k)`` of captum's rule of the same name (``integration_points``); the table holds the
mean over sequences. This equals ``captum.attr.IntegratedGradients`` on the network tail after the
module (tests/test_ig_exact.py), and ``sum_i attr_i ~ F(1) - F(0)`` (completeness). grad x activation
is the same with one point, ``alpha = 1``, weight 1: ``a * dF/da``. Tokens: every non-padding token.

Class-conditional scores are the same per-sequence scores averaged over the sequences of one class
(their gold class is the target, so no extra model passes are needed).

Efficiency: the residual stream entering layer ``l`` is computed once per batch without grad and
shared by the layer's six modules; only layers ``>= l`` run with grad; ``q_proj`` and ``k_proj``
share their passes (``attribute_batch``); the alpha steps go in the batch dimension (in chunks that
keep ``batch x tokens x chunk`` within the token budget); batches are length-sorted token-budget
buckets with little padding (``IG_MAX_PADDING``); bf16 autocast on CUDA.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from kneurons.errors import InputError, ModelError
from kneurons.model.classifier import MODULE_TYPES, EsmClassifier
from kneurons.model.hooks import module_output_hooks
from kneurons.model.inference import Batch, run_batches
from kneurons.model.runtime import autocast
from kneurons.progress import Progress
from kneurons.scoring.base import PerSequenceMethod, at_least_fp32
from kneurons.scoring.integration import integration_points

TARGETS: tuple[str, ...] = ("prob", "logit")
#: Attribution batches close before padding exceeds this fraction of their real tokens: the alpha
#: steps already fill each pass, so tighter batches cost less than fewer, padded ones.
IG_MAX_PADDING = 0.1


def target_value(logits: torch.Tensor, gold: torch.Tensor, target: str) -> torch.Tensor:
    """``F`` per sequence (B,): the gold class's softmax probability (``prob``) or logit, in >= float32."""
    logits = at_least_fp32(logits)
    if target == "prob":
        return torch.softmax(logits, dim=-1).gather(1, gold[:, None])[:, 0]
    if target == "logit":
        return logits.gather(1, gold[:, None])[:, 0]
    raise ValueError(f"unknown attribution target {target!r}; one of {', '.join(TARGETS)}")


def _scaled_leaf(
    scale: torch.Tensor | None, held: dict[str, torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Hook function replacing a module output ``a`` by ``scale * a`` via a leaf ``z`` that gradients target.

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
    from_layer: int | None = None,
    per_token: bool = False,
) -> dict[str, torch.Tensor]:
    """Attributions ``{module: (B, n_neurons)}`` for one batch whose residual stream ``x`` enters
    layer ``from_layer`` (None: ``layer``; the block before for an SAE on that block's update)
    (``per_token``: ``(T, B, n_neurons)``, each token's term of that sum, zero at padding).

    ``module_type``'s output is scaled by the alphas. Alpha steps are stacked in the batch
    dimension (block ``j`` of the repeated batch is step ``j``); the samples of a batch do not
    interact, so one backward of ``sum(F)`` gives every per-sample gradient.

    ``riders`` ``{module: weights}``: modules of the same layer whose outputs enter the same passes
    unscaled; their gradients are summed with their own weights per alpha step (see
    ``attribute_batch`` for the one pair this is exact for).
    """
    B, T = tokens.shape
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
            first = layer if from_layer is None else from_layer
            y = model.run_layers(model.repeat_stream(x, k), model.repeat_padding(padding_mask, k), first)
            logits = model.classify(y, tokens.repeat(k, 1))
            f = target_value(logits, gold.repeat(k), target)
            grads = torch.autograd.grad(f.sum(), [held[t]["z"] for t in names])
        for t, g in zip(names, grads, strict=True):
            wt = all_weights[t][start : start + alpha_chunk]
            g = (at_least_fp32(g).reshape(T, k, B, -1) * wt.view(1, k, 1, 1)).sum(1)
            grad_sum[t] = g if t not in grad_sum else grad_sum[t] + g
            if t not in a_unscaled:
                a_unscaled[t] = at_least_fp32(held[t]["a"][:, :B])
    mask = model.token_mask(tokens)
    terms = {t: a_unscaled[t] * grad_sum[t] * mask for t in names}
    return terms if per_token else {t: v.sum(0) for t, v in terms.items()}


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
    effects: dict[str, torch.Tensor] | None = None,
    per_token: bool = False,
) -> dict[str, torch.Tensor]:
    """Attributions ``{module: (B, n_neurons)}`` for one batch of tokens (already on the model's device);
    ``per_token``: ``(T, B, n_neurons)``, every token's term of those sums (``kneurons.explain``
    reads where along a protein a unit contributes).

    The residual stream entering ``layer`` is computed once, without grad, and shared by the
    modules; alpha steps run in chunks of ``token_budget // tokens.numel()`` copies. ``effects``
    (a dict to fill): each module's ``F(1) - F(0)`` per sequence ``(B,)``, the intact target minus
    the target with the module's output zeroed, from the same stream (what completeness compares
    the attributions' sum with: ``kneurons.scoring.completeness``).

    ``q_proj`` and ``k_proj`` share their passes. Attention logits are bilinear in ``q`` and ``k``
    (the head scaling and the rotary embedding are linear), so scaling ``q`` by ``alpha`` gives the
    very same network as scaling ``k`` by ``alpha``, and the gradient w.r.t. the unscaled ``k`` in
    the ``q``-scaled network is ``alpha`` times the gradient w.r.t. the scaled ``k``. One pass per
    step thus serves both, with ``k``'s weights divided by ``alpha``; steps at ``alpha = 0`` (left
    and trapezoid rules) give ``k`` its own pass. A model whose ``q`` and ``k`` pass through a norm
    before the logits (``model.qk_bilinear`` False, e.g. ESM C's QK-LayerNorm) gets a pass each.
    """
    device = tokens.device
    # Where the passes start: the layer itself, or the block before for an SAE on that block's update.
    start = min(model.unit_start(layer, t)[0] for t in module_types)
    with torch.no_grad(), autocast(device, bf16):
        x, pm = model.embed(tokens)
        x = model.run_layers(x, pm, 0, start)
    chunk = max(1, min(len(alphas), token_budget // max(1, tokens.numel())))

    def run(t: str, al: torch.Tensor, wt: torch.Tensor, riders: dict[str, torch.Tensor] | None = None):
        return _module_attribution(
            model, x, pm, tokens, gold, layer, t, al, wt, target, chunk, bf16, riders, start, per_token
        )

    out: dict[str, torch.Tensor] = {}
    todo = list(module_types)
    if "q_proj" in todo and "k_proj" in todo and model.qk_bilinear:
        nonzero = alphas != 0
        k_weights = torch.where(nonzero, weights / torch.where(nonzero, alphas, torch.ones_like(alphas)), 0)
        out.update(run("q_proj", alphas, weights, {"k_proj": k_weights}))
        if not bool(nonzero.all()):
            extra = run("k_proj", alphas[~nonzero], weights[~nonzero])["k_proj"]
            out["k_proj"] = out["k_proj"] + extra
        todo = [t for t in todo if t not in out]
    for t in todo:
        out.update(run(t, alphas, weights))
    if effects is not None:
        with torch.no_grad(), autocast(device, bf16):
            intact = target_value(model.classify(model.run_layers(x, pm, start), tokens), gold, target)
            for t in module_types:
                with module_output_hooks([(model.module(layer, t), torch.zeros_like)]):
                    zeroed = target_value(
                        model.classify(model.run_layers(x, pm, start), tokens), gold, target
                    )
                effects[t] = intact - zeroed
    return {t: out[t] for t in module_types}


def input_attribution(
    model: EsmClassifier,
    tokens: torch.Tensor,
    baseline: torch.Tensor,
    gold: torch.Tensor,
    alphas: torch.Tensor,
    weights: torch.Tensor,
    target: str = "prob",
    token_budget: int = 8192,
) -> torch.Tensor:
    """Integrated gradients to the input embeddings, per token ``(T, B)`` (zero at padding), from
    the embeddings of ``baseline`` (token ids of the same shape) to those of ``tokens``.

    The stream entering layer 0 (the token embeddings as the first layer reads them) follows
    ``b + alpha (x - b)``, and each token's attribution ``(x(t) - b(t)) . sum_k w_k dF/dx(t)`` is
    summed over the stream's dimensions; a token the baseline shares (BOS, EOS) gets 0.
    Completeness: the sum over tokens is ``F(x) - F(b)`` up to the integration rule's error.

    Not a zero baseline: every layer of ESM-2 and ESM C opens with a LayerNorm, which is
    scale-invariant, so ``F(alpha x)`` jumps at ``alpha = 0`` and a zero baseline's attributions
    miss much of ``F(x) - F(0)`` (tests/test_explain.py shows it). Computed in float32 (no
    autocast): an explanation is read residue by residue.
    """
    if baseline.shape != tokens.shape:
        raise ValueError(f"baseline tokens {tuple(baseline.shape)} differ from tokens {tuple(tokens.shape)}")
    B, T = tokens.shape
    with torch.no_grad():
        x, pm = model.embed(tokens)
        xb, _ = model.embed(baseline)
    chunk = max(1, min(len(alphas), token_budget // max(1, tokens.numel())))
    bd = model.batch_dim  # the stream keeps its backend's layout; time-first below

    def time_first(t: torch.Tensor) -> torch.Tensor:
        return t.transpose(0, 1) if bd == 0 else t

    total: torch.Tensor | None = None
    for start in range(0, len(alphas), chunk):
        al = alphas[start : start + chunk]
        k = len(al)
        xs, xbs = model.repeat_stream(x, k), model.repeat_stream(xb, k)
        shape = [1, 1, 1]
        shape[bd] = k * B
        with torch.enable_grad():
            s = (xbs + al.repeat_interleave(B).view(shape).to(xs.dtype) * (xs - xbs)).requires_grad_(True)
            y = model.run_layers(s, model.repeat_padding(pm, k), 0)
            f = target_value(model.classify(y, tokens.repeat(k, 1)), gold.repeat(k), target)
            (g,) = torch.autograd.grad(f.sum(), [s])
        g = time_first(g.float()).reshape(T, k, B, -1) * weights[start : start + k].view(1, k, 1, 1)
        total = g.sum(1) if total is None else total + g.sum(1)
    assert total is not None  # at least one integration point
    diff = time_first((x - xb).float())
    return (diff * total).sum(-1) * model.token_mask(tokens)[..., 0]


def _check_gold(model: EsmClassifier, gold: Sequence[int], n: int) -> None:
    if len(gold) != n:
        raise InputError(f"{len(gold)} gold classes for {n} sequences")
    if n and (min(gold) < 0 or max(gold) >= model.num_classes):
        raise ModelError(
            f"gold class indices must lie in 0..{model.num_classes - 1}, got {min(gold)}..{max(gold)}"
        )


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
    effects: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per-sequence path attributions ``{module: (n_seq, n_neurons)}`` at points ``(alphas, weights)``.

    ``integration_points(m, rule)`` gives IG; ``alphas=(1,), weights=(1,)`` gives grad x activation.
    ``token_budget`` bounds the padded tokens of one pass, alpha copies included. ``effects`` (a
    dict to fill): each module's ``F(1) - F(0)`` per sequence ``(n_seq,)`` (``attribute_batch``).
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
    _check_gold(model, gold, n)
    out = {t: np.zeros((n, model.module(layer, t).out_features), dtype=np.float64) for t in module_types}
    progress = Progress(f"{what} layer {layer}", n)
    gold_arr = np.asarray(gold, dtype=np.int64)

    if effects is not None:
        effects.update({t: np.zeros(n, dtype=np.float64) for t in module_types})

    def step(batch: Batch) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        held: dict[str, torch.Tensor] | None = {} if effects is not None else None
        attr = attribute_batch(
            model,
            batch.tokens,
            batch.take(gold_arr),
            layer,
            module_types,
            al,
            wt,
            target,
            token_budget,
            bf16,
            held,
        )
        moved = {t: v.double().cpu().numpy() for t, v in (held or {}).items()}
        return {t: attr[t].double().cpu().numpy() for t in module_types}, moved

    # Attributions are per sequence (test_attribution_independent_of_padding_partner), so
    # run_batches may halve an out-of-memory batch; attribute_batch sets its own precision.
    batches = run_batches(
        model,
        sequences,
        step,
        token_budget,
        device,
        bf16,
        copies=len(al),
        max_padding=IG_MAX_PADDING,
        what=f"{what} layer {layer}",
        use_autocast=False,
    )
    try:
        for batch, (res, moved) in batches:
            for t in module_types:
                out[t][batch.index] = res[t]
            for t, values in moved.items():
                effects[t][batch.index] = values  # type: ignore[index]
            progress.step(len(batch.index))
    finally:
        for p, r in zip(model.parameters(), req, strict=True):
            p.requires_grad_(r)
    return out


@dataclass(frozen=True)
class IntegratedGradients(PerSequenceMethod):
    """Integrated gradients with ``steps`` points of integration rule ``rule`` (``INTEGRATION_METHODS``),
    raised per layer and module while the completeness gap exceeds ``tolerance``, up to
    ``max_steps`` (``kneurons.scoring.completeness``). ``tolerance`` None: the gap is recorded, the
    steps never raised (the workflow's configs always give one: ``score.ig.tolerance``)."""

    name: ClassVar[str] = "ig"
    #: Whether the steps rise until the completeness gap is within ``tolerance``.
    raises_steps: ClassVar[bool] = True
    steps: int = 20
    rule: str = "riemann_right"
    target: str = "prob"
    class_conditional: bool = True
    token_budget: int = 8192
    bf16: bool = True
    tolerance: float | None = None
    max_steps: int = 256

    @classmethod
    def from_config(cls, score_cfg: dict[str, Any]) -> IntegratedGradients:
        """Settings from ``score.ig``, ``score.token_budget`` and ``score.bf16``."""
        ig = score_cfg["ig"]
        return cls(
            steps=ig["steps"],
            rule=ig["method"],
            target=ig["target"],
            class_conditional=bool(ig.get("class_conditional", True)),
            tolerance=None if ig.get("tolerance") is None else float(ig["tolerance"]),
            max_steps=int(ig.get("max_steps", cls.max_steps)),
            **cls.batch_settings(score_cfg),
        )

    def layer_scores(
        self,
        model: EsmClassifier,
        sequences: Sequence[str],
        gold: Sequence[int],
        layer: int,
        module_types: Sequence[str] = MODULE_TYPES,
        device: torch.device | str = "cpu",
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The attributions, converged (IG) or checked (grad x activation), and their completeness
        records under ``COMPLETENESS_KEY``."""
        from kneurons.scoring.completeness import COMPLETENESS_KEY, converged_attributions

        per, records = converged_attributions(self, model, sequences, gold, layer, module_types, device)
        return per, {COMPLETENESS_KEY: records}

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The integration points ``(alphas, weights)``."""
        return integration_points(self.steps, self.rule)

    def attribute(
        self,
        model: EsmClassifier,
        sequences: Sequence[str],
        gold: Sequence[int] | None,
        layer: int,
        module_types: Sequence[str] = MODULE_TYPES,
        device: torch.device | str = "cpu",
        effects: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """``attribution_per_sequence`` with this method's points and settings; ``gold`` is required.
        ``effects`` (a dict to fill): each module's ``F(1) - F(0)`` per sequence (completeness)."""
        if gold is None:
            raise InputError(f"{self.name} attributions need the gold class of every sequence")
        alphas, weights = self.points()
        return attribution_per_sequence(
            model,
            sequences,
            gold,
            layer,
            module_types,
            alphas,
            weights,
            self.target,
            token_budget=self.token_budget,
            device=device,
            bf16=self.bf16,
            what=self.name,
            effects=effects,
        )


@dataclass(frozen=True)
class GradientXActivation(IntegratedGradients):
    """grad x activation: one point, ``alpha = 1`` with weight 1 (``steps`` and ``rule`` are unused)."""

    name: ClassVar[str] = "gradxact"
    raises_steps: ClassVar[bool] = False

    @classmethod
    def from_config(cls, score_cfg: dict[str, Any]) -> GradientXActivation:
        """Settings from ``score.ig.target``, ``score.ig.class_conditional``, ``score.token_budget``
        and ``score.bf16``: IG's integration rule plays no part (the job's params leave it out)."""
        ig = score_cfg["ig"]
        return cls(
            target=ig["target"],
            class_conditional=bool(ig.get("class_conditional", True)),
            **cls.batch_settings(score_cfg),
        )

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The single point ``alpha = 1``, weight 1."""
        return np.ones(1), np.ones(1)
