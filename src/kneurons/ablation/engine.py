"""Ablation engine: the predictions of the model under hundreds of masks, without hundreds of full passes.

A **mask** (``kneurons.ablation.masks``) says, per module ``(layer, module)``, which output units
get the fill value (``kneurons.ablation.fill``); it is applied by a forward hook on the module
output. ``evaluate_masks`` reuses what masks share:

1. identical masks are evaluated once (preserve f=1 and suppress f=0 are both the intact
   model; preserve f=0 and suppress f=1 both fill the whole scope);
2. the unmasked computation before the first masked module is done once per sequence batch
   and shared by every mask that starts there: the residual stream entering each layer
   (``EsmClassifier.embed``/``run_layers``) and, inside a layer, the states at its resume
   points (``EsmClassifier.RESUME_POINTS``: the inputs of ``out_proj``, of the FFN and of
   ``fc2``). A mask whose first masked module is layer ``l``'s ``fc2`` runs ``fc2`` and layers
   ``> l`` only;
3. up to ``masks_per_pass`` masks run in one pass: the batch is repeated along the batch
   dimension, copy ``j`` carrying mask ``j`` (the hook views the module output per copy and
   fills per copy). This pays on a GPU; on a CPU the larger tensors only add memory traffic
   (``default_masks_per_pass``: 1 on a CPU, 16 on CUDA). Larger matmuls may round differently,
   so such passes are certified like other batches (point 4);
4. every mask pays for every padded token, so sequence batches close before their padding
   exceeds ``MAX_PADDING`` of their real tokens (fp32 only). Other batches change the logits
   by float rounding (~2e-7 of their scale), which could flip an argmax only at a near-tie:
   every prediction within ``CERTIFY_MARGIN`` of a tie is recomputed on the naive loop's own
   batch (``_certify``), so the predictions stay those of the naive loop.

``kneurons.ablation.naive.evaluate_masks_naive`` is the reference (one full forward per mask);
tests and ``benchmarks/bench_ablation.py`` check that both give the same predictions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kneurons.ablation.fill import Fill, fill_hooks
from kneurons.ablation.masks import Mask, active, block_order, canonical, chunk_tensors, unit_sizes
from kneurons.ablation.naive import evaluate_masks_naive
from kneurons.errors import ModelError
from kneurons.model.classifier import EsmClassifier
from kneurons.model.inference import Batch, plan_batches, run_batches
from kneurons.ranking import Block

log = logging.getLogger(__name__)

#: Batches of the mask evaluation close before their padding exceeds this fraction of their real
#: tokens (``token_budget_batches(max_padding=...)``): every mask pays for every padded token.
MAX_PADDING = 0.05
#: A prediction whose relative top-2 logit margin is at most this is recomputed on the naive
#: loop's batch when the evaluation ran other batches (``_certify``). Measured: other batches
#: move fp32 logits by at most 2.1e-7 (4x64 and esm2_t6_8M shapes, random masks), 50x below.
CERTIFY_MARGIN = 1e-5
#: Masks per pass when ``ablate.masks_per_pass`` is null, by device type: larger passes amortise
#: kernel launches on a GPU; on a CPU they only add memory traffic (docs/performance.md).
DEFAULT_MASKS_PER_PASS = {"cuda": 16}


def default_masks_per_pass(device: torch.device | str) -> int:
    """Masks evaluated per pass when the setting is null: 16 on CUDA, 1 elsewhere."""
    return DEFAULT_MASKS_PER_PASS.get(torch.device(device).type, 1)


#: Where masks start: ``(layer, resume point)``; ``(num_layers, 0)`` is after the last layer.
Start = tuple[int, int]
#: The masks of one pass: their indices among the unique masks and their per-copy tensors.
Chunk = tuple[np.ndarray, dict[Block, torch.Tensor]]


def mask_start(mask: Mask, model: EsmClassifier) -> Start:
    """``(layer, resume point)`` where the passes of ``mask`` start: the earliest
    ``EsmClassifier.unit_start`` of its masked units (the resume point before their module;
    ``(num_layers, 0)`` if nothing is masked)."""
    return min(
        (model.unit_start(*b) for b, v in mask.items() if np.asarray(v).any()),
        default=(model.num_layers, 0),
    )


@dataclass
class _Plan:
    """The distinct masks, where each of the caller's masks went, and the passes grouped by start."""

    unique: list[Mask]
    inverse: np.ndarray
    chunks: dict[Start, list[Chunk]]

    @property
    def start_layers(self) -> set[int]:
        return {s[0] for s in self.chunks}


def _checked(model: EsmClassifier, masks: Sequence[Mask], fill: Fill) -> list[Mask]:
    """The active part of every mask, after checking it fits the model and ``fill`` covers it."""
    sizes = unit_sizes(model)
    out = [active(m) for m in masks]
    for m in out:
        for b, v in m.items():
            if b not in sizes or len(v) != sizes[b]:
                raise ModelError(
                    f"mask on {b} with {len(v)} units does not fit the model ({sizes.get(b)} units)"
                )
    fill.check(sorted({b for m in out for b in m}, key=block_order))
    return out


def _plan(
    model: EsmClassifier,
    masks: list[Mask],
    masks_per_pass: int,
    reuse_prefix: bool,
    dedup: bool,
    device: torch.device,
) -> _Plan:
    """Deduplicate the (active) masks and group them into passes by where they start."""
    if dedup:
        index: dict[tuple, int] = {}
        inverse = np.array([index.setdefault(canonical(m), len(index)) for m in masks], dtype=np.int64)
        unique: list[Mask] = [{} for _ in index]
        for m, u in zip(masks, inverse, strict=False):
            unique[u] = m
    else:
        unique, inverse = masks, np.arange(len(masks))
    sizes = unit_sizes(model)
    starts = [mask_start(m, model) if reuse_prefix else (0, 0) for m in unique]
    by_start: dict[Start, list[int]] = {}
    for i, s in enumerate(starts):
        by_start.setdefault(s, []).append(i)
    chunks: dict[Start, list[Chunk]] = {}
    for s in sorted(by_start):
        ids = by_start[s]
        for i in range(0, len(ids), masks_per_pass):
            part = np.asarray(ids[i : i + masks_per_pass])
            chunks.setdefault(s, []).append((part, chunk_tensors([unique[j] for j in part], sizes, device)))
    return _Plan(unique, inverse, chunks)


def _predict(
    model: EsmClassifier, x: torch.Tensor, tokens: torch.Tensor, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Argmax class and relative top-2 logit margin of each copy and sequence, both ``(k, B)``.

    The margin is ``(top1 - top2) / max(1, |top1|)``: how far the prediction is from a tie, on
    the scale of float rounding (``CERTIFY_MARGIN``).
    """
    logits = model.classify(x, tokens.repeat(k, 1) if k > 1 else tokens).float()
    top = logits.topk(min(2, logits.shape[-1]), dim=-1).values
    if top.shape[-1] > 1:
        margin = (top[:, 0] - top[:, 1]) / top[:, 0].abs().clamp_min(1.0)
    else:
        margin = torch.full_like(top[:, 0], float("inf"))
    pred = logits.argmax(-1).view(k, tokens.shape[0]).cpu().numpy()
    return pred, margin.view(k, tokens.shape[0]).cpu().numpy()


def _walk(
    model: EsmClassifier, plan: _Plan, fill: Fill, tokens: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and margins ``(len(plan.unique), B)`` of one sequence batch under every mask.

    The unmasked prefix is walked layer by layer; at each resume point the masks that start
    there run from the cached state, so only the current layer's states are held in memory.
    """
    n_layers, chunks, start_layers = model.num_layers, plan.chunks, plan.start_layers
    part = np.zeros((len(plan.unique), tokens.shape[0]), dtype=np.int64)
    gap = np.full((len(plan.unique), tokens.shape[0]), np.inf)
    x, pm = model.embed(tokens)
    # The unmasked prefix is only needed up to the last resume point.
    last = n_layers if (n_layers, 0) in chunks else max(start_layers, default=-1)
    for layer in range(min(last + 1, n_layers)):
        if layer not in start_layers:
            x = model.run_layers(x, pm, layer, layer + 1)
            continue
        out, state = model.run_layer_with_states(layer, x, pm)
        for pos in range(len(model.RESUME_POINTS)):
            for ids, filled in chunks.get((layer, pos), []):
                k = len(ids)
                # The prediction inside the hooks too: an SAE on the final stream (layer
                # num_layers) is encoded in classify, after the last layer.
                with fill_hooks(model, filled, fill):
                    h = model.resume_layer(layer, pos, state, k)
                    h = model.run_layers(h, model.repeat_padding(pm, k), layer + 1)
                    part[ids], gap[ids] = _predict(model, h, tokens, k)
        x = out
    # Masks that start after the last layer: none, or only the features of the final stream's SAE.
    for ids, filled in chunks.get((n_layers, 0), []):
        with fill_hooks(model, filled, fill):
            part[ids], gap[ids] = _predict(model, model.repeat_stream(x, len(ids)), tokens, len(ids))
    return part, gap


@torch.no_grad()
def evaluate_masks(
    model: EsmClassifier,
    sequences: Sequence[str],
    masks: Sequence[Mask],
    fill: Fill | None = None,
    token_budget: int = 8192,
    masks_per_pass: int = 1,
    reuse_prefix: bool = True,
    dedup: bool = True,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    progress: Callable[[int, int], None] | None = None,
    max_padding: float | None = MAX_PADDING,
) -> np.ndarray:
    """Predicted class index of every sequence under every mask: ``(len(masks), len(sequences))``.

    See the module docstring for the reuses (``dedup``, ``reuse_prefix``, ``masks_per_pass``,
    ``max_padding``); with all of them off (``max_padding=None``) this is the naive loop.
    ``progress(done, total)`` is called after each sequence batch.
    """
    device = torch.device(device)
    fill = (fill or Fill()).to(device)
    model = model.to(device).eval()
    if masks_per_pass < 1:
        raise ValueError("masks_per_pass must be >= 1")
    plan = _plan(model, _checked(model, masks, fill), masks_per_pass, reuse_prefix, dedup, device)
    preds = np.zeros((len(plan.unique), len(sequences)), dtype=np.int64)
    margins = np.full((len(plan.unique), len(sequences)), np.inf)
    reference = plan_batches(sequences, token_budget)
    # Tighter batches only where the logits are fp32: bf16 rounding is too coarse to certify.
    fp32 = not (bf16 and device.type == "cuda")
    tight = fp32 and max_padding is not None
    batches = plan_batches(sequences, token_budget, max_padding=max_padding) if tight else reference

    def step(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        return _walk(model, plan, fill, batch.tokens)

    # Predictions are per sequence, so a batch that runs out of memory is halved and retried.
    ends = np.cumsum([len(b) for b in batches])
    done = finished = 0
    ran: list[list[int]] = []
    for batch, (part, gap) in run_batches(
        model, sequences, step, token_budget, device, bf16, batches=batches, what="ablation"
    ):
        preds[:, batch.index] = part
        margins[:, batch.index] = gap
        ran.append(batch.index.tolist())
        done += len(batch.index)
        while finished < len(batches) and done >= ends[finished]:
            finished += 1
            if progress is not None:
                progress(finished, len(batches))
    # Other batches, or copies stacked in one pass (other matmul shapes), round differently.
    naive_shapes = masks_per_pass == 1 and sorted(map(sorted, ran)) == sorted(map(sorted, reference))
    if fp32 and not naive_shapes:
        _certify(model, sequences, plan.unique, preds, margins, reference, token_budget, fill, device, bf16)
    return preds[plan.inverse]


def _certify(
    model: EsmClassifier,
    sequences: Sequence[str],
    masks: Sequence[Mask],
    preds: np.ndarray,
    margins: np.ndarray,
    reference: Sequence[Sequence[int]],
    token_budget: int,
    fill: Fill,
    device: torch.device,
    bf16: bool,
) -> None:
    """Redo, on the naive loop's own batch, every prediction within ``CERTIFY_MARGIN`` of a tie.

    Batches of other sizes change the logits by float rounding only (~2e-7 of their scale), which
    can flip an argmax only where the top two logits (nearly) tie; those few predictions are
    recomputed by ``evaluate_masks_naive`` itself, so predictions stay identical.
    """
    unsure = margins <= CERTIFY_MARGIN
    if not unsure.any():
        return
    redone = 0
    for batch in reference:
        cols = np.asarray(batch)
        rows = np.flatnonzero(unsure[:, cols].any(axis=1))
        if not len(rows):
            continue
        # A reference batch fits the token budget and is length-sorted, so the naive loop run on
        # its sequences alone forms that very batch again.
        preds[np.ix_(rows, cols)] = evaluate_masks_naive(
            model, [sequences[i] for i in batch], [masks[u] for u in rows], fill, token_budget, device, bf16
        )
        redone += len(rows)
    log.info(
        "ablation: %d (mask, batch) passes redone on the reference batches for near-tied predictions", redone
    )
