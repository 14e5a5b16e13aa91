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
   batch (``_certify``), so the predictions stay those of the naive loop;
5. several fills (``evaluate_fills``, ``ablate.fills``) share the batches, the unmasked prefix and
   the masks' tensors: each mask runs once per fill from the cached state, and a mask that fills
   nothing (the intact model) runs once for all of them. The ``resample`` fill's donor
   activations are computed once per batch (``kneurons.ablation.resample``).

Beside the predictions, ``evaluate_fills`` returns (with ``targets``) each prediction's
log-probability of its target class, the normalised faithfulness's second metric
(``kneurons.stats.faithfulness``). The certification concerns the argmax only: the log-probabilities
are those of the batch that ran, within float rounding of the naive loop's (measured: at most
2.4e-7, docs/evidence.md; tests bound it by 1e-5).

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
from kneurons.ablation.resample import donor_activations
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
class MaskEvaluation:
    """The predictions of every (fill, mask, sequence), and the log-probability of each sequence's
    target class (None without targets): both ``(n_fills, n_masks, n_sequences)``."""

    pred: np.ndarray
    logp: np.ndarray | None


@dataclass
class _Plan:
    """The distinct masks, where each of the caller's masks went, and the passes grouped by start."""

    unique: list[Mask]
    inverse: np.ndarray
    chunks: dict[Start, list[Chunk]]

    @property
    def start_layers(self) -> set[int]:
        return {s[0] for s in self.chunks}

    @property
    def blocks(self) -> list[Block]:
        """Every block some mask fills (what a per-batch fill needs values for)."""
        return sorted({b for m in self.unique for b in m}, key=block_order)


def _checked(model: EsmClassifier, masks: Sequence[Mask], fills: Sequence[Fill]) -> list[Mask]:
    """The active part of every mask, after checking it fits the model and every fill covers it."""
    sizes = unit_sizes(model)
    out = [active(m) for m in masks]
    for m in out:
        for b, v in m.items():
            if b not in sizes or len(v) != sizes[b]:
                raise ModelError(
                    f"mask on {b} with {len(v)} units does not fit the model ({sizes.get(b)} units)"
                )
    for fill in fills:
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
    model: EsmClassifier, x: torch.Tensor, tokens: torch.Tensor, k: int, target: torch.Tensor | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Argmax class, relative top-2 logit margin and log-probability of ``target`` (NaN without)
    of each copy and sequence, all ``(k, B)``.

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
    if target is None:
        logp = np.full(pred.shape, np.nan, dtype=np.float32)
    else:
        lp = torch.log_softmax(logits, dim=-1).gather(-1, target.repeat(k).unsqueeze(-1))
        logp = lp.view(k, tokens.shape[0]).cpu().numpy()
    return pred, margin.view(k, tokens.shape[0]).cpu().numpy(), logp


@dataclass
class _Part:
    """One batch's predictions, margins and target log-probabilities per (fill, unique mask) ``(F, U, B)``."""

    pred: np.ndarray
    margin: np.ndarray
    logp: np.ndarray

    @classmethod
    def empty(cls, n_fills: int, n_masks: int, batch: int) -> _Part:
        shape = (n_fills, n_masks, batch)
        return cls(
            np.zeros(shape, dtype=np.int64), np.full(shape, np.inf), np.full(shape, np.nan, dtype=np.float32)
        )

    def put(self, fills: Sequence[int], ids: np.ndarray, got: tuple[np.ndarray, ...]) -> None:
        for fi in fills:
            self.pred[fi, ids], self.margin[fi, ids], self.logp[fi, ids] = got


def _walk(
    model: EsmClassifier,
    plan: _Plan,
    fills: Sequence[Fill],
    tokens: torch.Tensor,
    sequences: Sequence[str],
    target: torch.Tensor | None,
) -> _Part:
    """Predictions, margins and target log-probabilities ``(len(fills), len(plan.unique), B)`` of
    one sequence batch under every fill and mask.

    The unmasked prefix is walked layer by layer; at each resume point the masks that start
    there run from the cached state, so only the current layer's states are held in memory.
    Each chunk of masks runs once per fill; a chunk that fills nothing (the intact model) runs
    once for all fills.
    """
    n_layers, chunks, start_layers = model.num_layers, plan.chunks, plan.start_layers
    out = _Part.empty(len(fills), len(plan.unique), tokens.shape[0])
    # per-batch fill values (resample: the donors' activations of the blocks the masks touch)
    values = [
        donor_activations(model, f.donors, f.seed, sequences, tokens.shape[1], plan.blocks)
        if f.per_batch
        else None
        for f in fills
    ]
    everyone = list(range(len(fills)))

    def run(ids: np.ndarray, filled: dict[Block, torch.Tensor], compute: Callable[[int], tuple]) -> None:
        if not filled:  # nothing filled: one run serves every fill
            out.put(everyone, ids, compute(-1))
            return
        for fi, fill in enumerate(fills):
            with fill_hooks(model, filled, fill, values[fi]):
                out.put([fi], ids, compute(fi))

    x, pm = model.embed(tokens)
    # The unmasked prefix is only needed up to the last resume point.
    last = n_layers if (n_layers, 0) in chunks else max(start_layers, default=-1)
    for layer in range(min(last + 1, n_layers)):
        if layer not in start_layers:
            x = model.run_layers(x, pm, layer, layer + 1)
            continue
        layer_out, state = model.run_layer_with_states(layer, x, pm)
        for pos in range(len(model.RESUME_POINTS)):
            for ids, filled in chunks.get((layer, pos), []):
                k = len(ids)

                # The prediction inside the hooks too: an SAE on the final stream (layer
                # num_layers) is encoded in classify, after the last layer.
                def resumed(_fi: int, layer: int = layer, pos: int = pos, k: int = k, state=state) -> tuple:
                    h = model.resume_layer(layer, pos, state, k)
                    h = model.run_layers(h, model.repeat_padding(pm, k), layer + 1)
                    return _predict(model, h, tokens, k, target)

                run(ids, filled, resumed)
        x = layer_out
    # Masks that start after the last layer: none, or only the features of the final stream's SAE.
    for ids, filled in chunks.get((n_layers, 0), []):

        def after(_fi: int, k: int = len(ids)) -> tuple:
            return _predict(model, model.repeat_stream(x, k), tokens, k, target)

        run(ids, filled, after)
    return out


@torch.no_grad()
def evaluate_fills(
    model: EsmClassifier,
    sequences: Sequence[str],
    masks: Sequence[Mask],
    fills: Sequence[Fill],
    targets: Sequence[int] | np.ndarray | None = None,
    token_budget: int = 8192,
    masks_per_pass: int = 1,
    reuse_prefix: bool = True,
    dedup: bool = True,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    progress: Callable[[int, int], None] | None = None,
    max_padding: float | None = MAX_PADDING,
) -> MaskEvaluation:
    """Every mask under every fill: predictions ``(len(fills), len(masks), len(sequences))`` and, with
    ``targets`` (a class index per sequence), the log-probability of each sequence's target class.

    See the module docstring for the reuses (``dedup``, ``reuse_prefix``, ``masks_per_pass``,
    ``max_padding``, the fills sharing everything but the masked passes); with all of them off
    (``max_padding=None``) this is the naive loop. ``progress(done, total)`` is called after each
    sequence batch.
    """
    device = torch.device(device)
    if not fills:
        raise ValueError("evaluate_fills: give at least one fill")
    fills = [f.to(device) for f in fills]
    model = model.to(device).eval()
    if masks_per_pass < 1:
        raise ValueError("masks_per_pass must be >= 1")
    plan = _plan(model, _checked(model, masks, fills), masks_per_pass, reuse_prefix, dedup, device)
    shape = (len(fills), len(plan.unique), len(sequences))
    preds = np.zeros(shape, dtype=np.int64)
    margins = np.full(shape, np.inf)
    logps = np.full(shape, np.nan, dtype=np.float32)
    target = None if targets is None else np.asarray(targets, dtype=np.int64)
    if target is not None and len(target) != len(sequences):
        raise ValueError(f"{len(target)} targets for {len(sequences)} sequences")
    reference = plan_batches(sequences, token_budget)
    # Tighter batches only where the logits are fp32: bf16 rounding is too coarse to certify.
    fp32 = not (bf16 and device.type == "cuda")
    tight = fp32 and max_padding is not None
    batches = plan_batches(sequences, token_budget, max_padding=max_padding) if tight else reference

    def step(batch: Batch) -> _Part:
        seqs = [sequences[i] for i in batch.index]
        return _walk(model, plan, fills, batch.tokens, seqs, None if target is None else batch.take(target))

    # Predictions are per sequence, so a batch that runs out of memory is halved and retried.
    ends = np.cumsum([len(b) for b in batches])
    done = finished = 0
    ran: list[list[int]] = []
    for batch, part in run_batches(
        model, sequences, step, token_budget, device, bf16, batches=batches, what="ablation"
    ):
        preds[:, :, batch.index] = part.pred
        margins[:, :, batch.index] = part.margin
        logps[:, :, batch.index] = part.logp
        ran.append(batch.index.tolist())
        done += len(batch.index)
        while finished < len(batches) and done >= ends[finished]:
            finished += 1
            if progress is not None:
                progress(finished, len(batches))
    # Other batches, or copies stacked in one pass (other matmul shapes), round differently.
    naive_shapes = masks_per_pass == 1 and sorted(map(sorted, ran)) == sorted(map(sorted, reference))
    if fp32 and not naive_shapes:
        for fi, fill in enumerate(fills):
            _certify(
                model,
                sequences,
                plan.unique,
                preds[fi],
                margins[fi],
                reference,
                token_budget,
                fill,
                device,
                bf16,
            )
    return MaskEvaluation(preds[:, plan.inverse], None if target is None else logps[:, plan.inverse])


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
    """Predicted class index of every sequence under every mask with one fill:
    ``(len(masks), len(sequences))`` (``evaluate_fills`` with ``[fill]``, zero by default)."""
    return evaluate_fills(
        model,
        sequences,
        masks,
        [fill or Fill()],
        None,
        token_budget,
        masks_per_pass,
        reuse_prefix,
        dedup,
        device,
        bf16,
        progress,
        max_padding,
    ).pred[0]


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
