"""Ablation engine: preserve or suppress the top-f neurons of a scope and measure test accuracy.

A **mask** says, per module ``(layer, module)``, which output units get the fill value; it is
applied by a forward hook on the module output (fair-esm's ``q_proj`` ... ``fc2``). Fills:

* ``zero`` (the paper's reading): the unit outputs 0.
* ``mean``: the unit outputs its dataset-mean activation, measured over the non-padding
  tokens of the scoring set (``mean_activations``).
* ``pretrained``: the unit outputs what its pre-fine-tuning weights give *on the input it
  receives*, ``W_pre[i] . x + b_pre[i]`` (a per-neuron rollback of fine-tuning). This needs no
  second forward pass, composes with the batched evaluation below, and is defined for every
  unit of every layer; it is refused for a model that was not initialised from pretrained
  weights (there is no pre-fine-tuning output to give).

Evaluating hundreds of masks does not cost hundreds of full passes (``evaluate_masks``):

1. identical masks are evaluated once (preserve f=1 and suppress f=0 are both the intact
   model; preserve f=0 and suppress f=1 both fill the whole scope);
2. the unmasked computation before the first masked module is done once per sequence batch
   and shared by every mask that starts there: the residual stream entering each layer
   (``EsmClassifier.embed``/``run_layers``) and, inside a layer, the inputs of ``out_proj``,
   of the FFN and of ``fc2`` (``POSITION``). A mask whose first masked module is layer
   ``l``'s ``fc2`` runs ``fc2`` and layers ``> l`` only;
3. up to ``masks_per_pass`` masks run in one pass: the batch is repeated along the batch
   dimension, copy ``j`` carrying mask ``j`` (the hook views the module output as
   ``(T, copies, B, n)`` and fills per copy). This pays on a GPU; on a CPU the larger
   tensors only add memory traffic (1 per pass is the CPU default);
4. every mask pays for every padded token, so sequence batches close before their padding
   exceeds ``MAX_PADDING`` of their real tokens (fp32 only). Other batches change the logits
   by float rounding (~2e-7 of their scale), which could flip an argmax only at a near-tie:
   every prediction within ``CERTIFY_MARGIN`` of a tie is recomputed on the naive loop's own
   batch (``_certify``), so the predictions stay those of the naive loop.

``evaluate_masks_naive`` is the reference (one full forward per mask); tests and
``benchmarks/bench_ablation.py`` check that both give the same predictions.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from esm.modules import gelu
from torch import nn

from kneurons.ablation.selection import (
    Block,
    NeuronLayout,
    filled_mask,
    normalise_per_module,
    resolve_normalisation,
    scope_members,
    score_seeds,
    score_vector,
)
from kneurons.data.split import stratified_subset
from kneurons.errors import ConfigError, InputError, ModelError
from kneurons.model.batching import run_adaptive, token_budget_batches
from kneurons.model.classifier import MODULE_TYPES, EsmClassifier, get_alphabet, tokenize
from kneurons.model.hooks import OutputRecorder
from kneurons.model.runtime import autocast, to_device
from kneurons.stats.metrics import classification_metrics
from kneurons.tables import read_split_rows

log = logging.getLogger(__name__)

FILLS: tuple[str, ...] = ("zero", "mean", "pretrained")
#: Key columns of an ablation table: one row per (method, scope, scope_name, mode, f, seed).
KEY_COLUMNS: tuple[str, ...] = ("method", "scope", "scope_name", "mode", "f", "seed")

#: A mask: per module, a boolean vector over its output units (True = gets the fill value).
Mask = dict[Block, np.ndarray]


def layout_of(model: EsmClassifier) -> NeuronLayout:
    """The neuron layout of a classifier (every module of every layer)."""
    return NeuronLayout.from_sizes(model.num_layers, {m: model.neuron_count(m) for m in MODULE_TYPES})


def backbone_module(backbone: nn.Module, layer: int, module_type: str) -> nn.Linear:
    """``module_type`` of layer ``layer`` of a fair-esm ESM-2 backbone (or an ``EsmClassifier``)."""
    if isinstance(backbone, EsmClassifier):
        return backbone.module(layer, module_type)
    blk = backbone.layers[layer]
    return getattr(blk, module_type) if module_type in ("fc1", "fc2") else getattr(blk.self_attn, module_type)


# -- fill values ---------------------------------------------------------------------------
@dataclass
class Fill:
    """What a masked unit outputs: ``zero``, ``mean`` (per-unit vectors) or ``pretrained`` (reference weights)."""

    kind: str = "zero"
    means: dict[Block, torch.Tensor] = field(default_factory=dict)
    reference: dict[Block, tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FILLS:
            raise ValueError(f"unknown fill {self.kind!r}; one of {', '.join(FILLS)}")

    @classmethod
    def from_reference(cls, reference: nn.Module, layout: NeuronLayout) -> Fill:
        """``pretrained`` fill from a reference backbone (the pre-fine-tuning weights) of the same architecture."""
        weights: dict[Block, tuple[torch.Tensor, torch.Tensor | None]] = {}
        for (layer, m), size in zip(layout.blocks, layout.sizes, strict=False):
            try:
                mod = backbone_module(reference, layer, m)
            except (IndexError, AttributeError) as exc:
                raise ModelError(f"reference model has no {m} in layer {layer}: {exc}") from exc
            if mod.out_features != size:
                raise ModelError(
                    f"reference model's layer {layer} {m} has {mod.out_features} units, the fine-tuned model {size}"
                )
            b = mod.bias.detach().clone() if mod.bias is not None else None
            weights[(layer, m)] = (mod.weight.detach().clone(), b)
        return cls(kind="pretrained", reference=weights)

    def to(self, device: torch.device) -> Fill:
        """A copy with every tensor on ``device``."""
        return Fill(
            kind=self.kind,
            means={b: v.to(device) for b, v in self.means.items()},
            reference={
                b: (w.to(device), None if bias is None else bias.to(device))
                for b, (w, bias) in self.reference.items()
            },
        )

    def check(self, blocks: Sequence[Block]) -> None:
        """Raise when a fill value is missing for one of ``blocks``."""
        store = self.means if self.kind == "mean" else self.reference if self.kind == "pretrained" else None
        if store is not None:
            missing = [b for b in blocks if b not in store]
            if missing:
                raise ModelError(f"fill {self.kind!r}: no values for module(s) {missing[:3]}")


@torch.no_grad()
def mean_activations(
    model: EsmClassifier,
    sequences: Sequence[str],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
) -> dict[Block, torch.Tensor]:
    """Mean output of every neuron over the non-padding tokens (BOS/EOS included) of ``sequences``.

    The ``mean`` fill value. Computed in fp32 so that it does not depend on the device's autocast.
    """
    if len(sequences) == 0:
        raise InputError("mean fill: the scoring set is empty")
    device = torch.device(device)
    model = model.to(device).eval()
    layout = layout_of(model)
    alphabet = get_alphabet()
    sums = {
        b: torch.zeros(n, dtype=torch.float64, device=device)
        for b, n in zip(layout.blocks, layout.sizes, strict=False)
    }
    count = 0
    valid: torch.Tensor | None = None

    def reduce(out: torch.Tensor) -> torch.Tensor:
        return (out.double() * valid).sum((0, 1))

    names = {f"{layer}:{m}": model.module(layer, m) for layer, m in layout.blocks}
    for batch in token_budget_batches([len(s) for s in sequences], token_budget):
        tokens = to_device(tokenize([sequences[i] for i in batch], alphabet), device)
        valid = tokens.ne(alphabet.padding_idx).T.unsqueeze(-1).double()  # (T, B, 1)
        with OutputRecorder(names, reduce=reduce) as rec:
            model(tokens)
        for name, outs in rec.outputs.items():
            layer, m = name.split(":")
            sums[(int(layer), m)] += outs[0]
        count += int(valid.sum().item())
    return {b: (s / count).float() for b, s in sums.items()}


def make_fill(
    kind: str,
    model: EsmClassifier,
    pretrained: bool,
    scoring_sequences: Sequence[str] | None = None,
    reference: nn.Module | Callable[[], nn.Module] | None = None,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    source: str = "checkpoint",
) -> Fill:
    """The fill of ``ablate.fill`` for ``model``.

    ``mean`` measures the mean activations on ``scoring_sequences``. ``pretrained`` needs a
    model fine-tuned from pretrained weights (``pretrained``, from the checkpoint's metadata)
    and ``reference``: the pretrained backbone, or a function that loads it (called only here,
    so a random-init model never triggers a download).
    """
    if kind == "zero":
        return Fill()
    if kind == "mean":
        if not scoring_sequences:
            raise InputError("ablate.fill 'mean': no scoring sequences to measure the mean activations on")
        log.info("measuring mean activations on %d scoring sequences", len(scoring_sequences))
        return Fill(kind="mean", means=mean_activations(model, scoring_sequences, token_budget, device))
    if kind == "pretrained":
        if not pretrained:
            raise ConfigError(
                f"ablate.fill: 'pretrained' fills a neuron with the output of its pre-fine-tuning weights, "
                f"but {source} was fine-tuned from random initialisation (model.pretrained: false); "
                f"use fill 'zero' or 'mean'"
            )
        if reference is None:
            raise ModelError("ablate.fill 'pretrained': no pretrained reference model given")
        ref = reference() if not isinstance(reference, nn.Module) else reference
        return Fill.from_reference(ref, layout_of(model))
    raise ValueError(f"unknown fill {kind!r}; one of {', '.join(FILLS)}")


# -- hooks ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _mask_hooks(
    model: EsmClassifier,
    filled: dict[Block, torch.Tensor],
    fill: Fill,
) -> Iterator[None]:
    """Fill the masked units of each module; ``filled[b]`` is ``(copies, n)`` bool, copy-major batch.

    The hook needs the module *input* for the ``pretrained`` fill, hence a plain forward hook
    rather than ``kneurons.model.hooks.module_output_hooks`` (which passes the output only).
    """
    handles = []

    def make(block: Block, m: torch.Tensor) -> Callable:
        copies = m.shape[0]
        sel = m[None, :, None, :]  # (1, copies, 1, n)
        if fill.kind == "mean":
            value = fill.means[block]
        elif fill.kind == "pretrained":
            weight, bias = fill.reference[block]

        def hook(_mod: nn.Module, inputs: tuple, out: torch.Tensor) -> torch.Tensor:
            t, kb, n = out.shape
            y = out.view(t, copies, kb // copies, n)
            if fill.kind == "zero":
                new = y.masked_fill(sel, 0.0)
            elif fill.kind == "mean":
                new = torch.where(sel, value.to(y.dtype), y)
            else:
                ref = F.linear(
                    inputs[0], weight.to(inputs[0].dtype), None if bias is None else bias.to(inputs[0].dtype)
                )
                new = torch.where(sel, ref.view_as(y).to(y.dtype), y)
            return new.view(t, kb, n)

        return hook

    try:
        for block, m in filled.items():
            handles.append(model.module(*block).register_forward_hook(make(block, m)))
        yield
    finally:
        for h in handles:
            h.remove()


def _canonical(mask: Mask) -> tuple:
    """Hashable identity of a mask (blocks with no filled unit dropped)."""
    return tuple(
        (b, np.packbits(v).tobytes(), len(v))
        for b, v in sorted(mask.items(), key=lambda kv: (kv[0][0], MODULE_TYPES.index(kv[0][1])))
        if v.any()
    )


def _active(mask: Mask) -> Mask:
    return {b: np.asarray(v, dtype=bool) for b, v in mask.items() if np.asarray(v).any()}


def _chunk_tensors(
    chunk: Sequence[Mask], sizes: dict[Block, int], device: torch.device
) -> dict[Block, torch.Tensor]:
    blocks = sorted({b for m in chunk for b in m}, key=lambda b: (b[0], MODULE_TYPES.index(b[1])))
    out = {}
    for b in blocks:
        mat = np.zeros((len(chunk), sizes[b]), dtype=bool)
        for j, m in enumerate(chunk):
            if b in m:
                mat[j] = m[b]
        out[b] = torch.from_numpy(mat).to(device)
    return out


#: Batches of the mask evaluation close before their padding exceeds this fraction of their real
#: tokens (``token_budget_batches(max_padding=...)``): every mask pays for every padded token.
MAX_PADDING = 0.05
#: A prediction whose relative top-2 logit margin is at most this is recomputed on the naive
#: loop's batch when the evaluation ran other batches (``_certify``). Measured: other batches
#: move fp32 logits by at most 2.1e-7 (4x64 and esm2_t6_8M shapes, random masks), 50x below.
CERTIFY_MARGIN = 1e-5

#: Where inside a transformer layer a module's output is produced: the masks on a module can
#: start from a cached state just before it. 0: layer input (q/k/v need the whole attention);
#: 1: attention context entering ``out_proj``; 2: residual after attention (``fc1``'s block);
#: 3: ``fc2``'s input.
POSITION: dict[str, int] = {"q_proj": 0, "k_proj": 0, "v_proj": 0, "out_proj": 1, "fc1": 2, "fc2": 3}


def _ffn(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """Second half of fair-esm's ``TransformerLayer.forward`` from the post-attention residual ``h``."""
    return h + layer.fc2(gelu(layer.fc1(layer.final_layer_norm(h))))


def _resume(layer: nn.Module, pos: int, state: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """Layer output, computed from the cached state at ``pos`` with the batch repeated ``k`` times.

    Replays the tail of ``TransformerLayer.forward`` op for op (tests check it is bit-identical).
    """
    rep = {name: t.repeat(1, k, 1) if k > 1 else t for name, t in state.items()}
    if pos == 1:
        return _ffn(layer, rep["x"] + layer.self_attn.out_proj(rep["ctx"]))
    if pos == 2:
        return _ffn(layer, rep["h"])
    if pos == 3:
        return rep["h"] + layer.fc2(rep["g"])
    raise ValueError(f"no resume point {pos}")


def _layer_with_states(
    model: EsmClassifier, layer_idx: int, x: torch.Tensor, pm: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run one layer unmasked and keep the tensors its resume points need (inputs of out_proj, final LN, fc2)."""
    layer = model.esm.layers[layer_idx]
    state: dict[str, torch.Tensor] = {"x": x}

    def keep(name: str) -> Callable:
        def pre_hook(_mod: nn.Module, inputs: tuple) -> None:
            state[name] = inputs[0]

        return pre_hook

    handles = [
        layer.self_attn.out_proj.register_forward_pre_hook(keep("ctx")),
        layer.final_layer_norm.register_forward_pre_hook(keep("h")),
        layer.fc2.register_forward_pre_hook(keep("g")),
    ]
    try:
        out = model.run_layers(x, pm, layer_idx, layer_idx + 1)
    finally:
        for h in handles:
            h.remove()
    return out, state


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


def mask_start(mask: Mask, n_layers: int) -> tuple[int, int]:
    """``(layer, position)`` of the first masked module of ``mask``; ``(n_layers, 0)`` when nothing is masked."""
    return min(
        ((b[0], POSITION[b[1]]) for b, v in mask.items() if np.asarray(v).any()), default=(n_layers, 0)
    )


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
    ``max_padding``); with all of them off (``max_padding=None``) this is the naive loop. The
    prefix is walked layer by layer once per sequence batch; at each resume point the masks that start there are run from the
    cached state, so only the current layer's states are held in memory.
    ``progress(done, total)`` is called after each sequence batch.
    """
    device = torch.device(device)
    fill = (fill or Fill()).to(device)
    model = model.to(device).eval()
    layout = layout_of(model)
    sizes = dict(zip(layout.blocks, layout.sizes, strict=False))
    n_layers = model.num_layers
    if masks_per_pass < 1:
        raise ValueError("masks_per_pass must be >= 1")
    active = [_active(m) for m in masks]
    for m in active:
        for b, v in m.items():
            if b not in sizes or len(v) != sizes[b]:
                raise ModelError(
                    f"mask on {b} with {len(v)} units does not fit the model ({sizes.get(b)} units)"
                )
    fill.check(sorted({b for m in active for b in m}, key=lambda b: (b[0], MODULE_TYPES.index(b[1]))))

    if dedup:
        index: dict[tuple, int] = {}
        inverse = np.array([index.setdefault(_canonical(m), len(index)) for m in active], dtype=np.int64)
        unique: list[Mask] = [{} for _ in index]
        for m, u in zip(active, inverse, strict=False):
            unique[u] = m
    else:
        unique, inverse = active, np.arange(len(active))

    starts = [mask_start(m, n_layers) if reuse_prefix else (0, 0) for m in unique]
    by_start: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(starts):
        by_start.setdefault(s, []).append(i)
    chunks: dict[tuple[int, int], list[tuple[np.ndarray, dict[Block, torch.Tensor]]]] = {}
    for s in sorted(by_start):
        ids = by_start[s]
        for i in range(0, len(ids), masks_per_pass):
            part = np.asarray(ids[i : i + masks_per_pass])
            chunks.setdefault(s, []).append((part, _chunk_tensors([unique[j] for j in part], sizes, device)))
    start_layers = {s[0] for s in chunks}

    preds = np.zeros((len(unique), len(sequences)), dtype=np.int64)
    margins = np.full((len(unique), len(sequences)), np.inf)
    alphabet = get_alphabet()
    lengths = [len(s) for s in sequences]
    reference = token_budget_batches(lengths, token_budget)
    # Tighter batches only where the logits are fp32: bf16 rounding is too coarse to certify.
    fp32 = not (bf16 and device.type == "cuda")
    batches = (
        token_budget_batches(lengths, token_budget, max_padding=max_padding)
        if fp32 and max_padding is not None
        else reference
    )

    def step(batch: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and margins ``(len(unique), len(batch))`` of one sequence batch under every mask."""
        part = np.zeros((len(unique), len(batch)), dtype=np.int64)
        gap = np.full((len(unique), len(batch)), np.inf)
        tokens = to_device(tokenize([sequences[i] for i in batch], alphabet), device)
        with autocast(device, bf16):
            x, pm = model.embed(tokens)
            # The unmasked prefix is only needed up to the last resume point.
            last = n_layers if (n_layers, 0) in chunks else max(start_layers, default=-1)
            for layer_idx in range(min(last + 1, n_layers)):
                if layer_idx not in start_layers:
                    x = model.run_layers(x, pm, layer_idx, layer_idx + 1)
                    continue
                out, state = _layer_with_states(model, layer_idx, x, pm)
                layer = model.esm.layers[layer_idx]
                for pos in range(4):
                    for ids, filled in chunks.get((layer_idx, pos), []):
                        k = len(ids)
                        with _mask_hooks(model, filled, fill):
                            if pos == 0:
                                h, first = (x.repeat(1, k, 1) if k > 1 else x), layer_idx
                            else:
                                h, first = _resume(layer, pos, state, k), layer_idx + 1
                            h = model.run_layers(h, pm if pm is None or k == 1 else pm.repeat(k, 1), first)
                        part[ids], gap[ids] = _predict(model, h, tokens, k)
                x = out
            for ids, _filled in chunks.get((n_layers, 0), []):
                part[ids], gap[ids] = _predict(model, x.repeat(1, len(ids), 1), tokens, len(ids))
        return part, gap

    # Predictions are per sequence, so a batch that runs out of memory is halved and retried.
    ends = np.cumsum([len(b) for b in batches])
    done = finished = 0
    ran: list[list[int]] = []
    for batch, (part, gap) in run_adaptive(step, batches, lengths, "ablation"):
        preds[:, batch] = part
        margins[:, batch] = gap
        ran.append(list(batch))
        done += len(batch)
        while finished < len(batches) and done >= ends[finished]:
            finished += 1
            if progress is not None:
                progress(finished, len(batches))
    if fp32 and sorted(map(sorted, ran)) != sorted(map(sorted, reference)):
        _certify(model, sequences, unique, preds, margins, reference, token_budget, fill, device, bf16)
    return preds[inverse]


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


@torch.no_grad()
def evaluate_masks_naive(
    model: EsmClassifier,
    sequences: Sequence[str],
    masks: Sequence[Mask],
    fill: Fill | None = None,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> np.ndarray:
    """Reference implementation: one full forward pass (``model(tokens)``) per mask and batch."""
    device = torch.device(device)
    fill = (fill or Fill()).to(device)
    model = model.to(device).eval()
    sizes = dict(zip(layout_of(model).blocks, layout_of(model).sizes, strict=False))
    alphabet = get_alphabet()
    batches = token_budget_batches([len(s) for s in sequences], token_budget)
    tokens_per_batch = [to_device(tokenize([sequences[i] for i in b], alphabet), device) for b in batches]
    preds = np.zeros((len(masks), len(sequences)), dtype=np.int64)
    for mi, mask in enumerate(masks):
        filled = _chunk_tensors([_active(mask)], sizes, device)
        with _mask_hooks(model, filled, fill):
            for batch, tokens in zip(batches, tokens_per_batch, strict=False):
                with autocast(device, bf16):
                    logits = model(tokens)
                preds[mi, batch] = logits.float().argmax(-1).cpu().numpy()
    return preds


# -- masks from score tables ----------------------------------------------------------------
def build_masks(
    scores: pd.DataFrame,
    layout: NeuronLayout,
    method: str,
    scope: str,
    fractions: Sequence[float],
    modes: Sequence[str],
    normalise: str = "auto",
    seeds: Sequence[int] | None = None,
    source: str = "score table",
) -> tuple[pd.DataFrame, list[Mask]]:
    """Every (scope_name, mode, f[, seed]) mask of ``method`` in ``scope``; returns ``(key rows, masks)``.

    ``seeds`` selects the random tables' seeds (each must be in the table); None uses the
    table as it is (one set of global rows).
    """
    if seeds is not None:
        present = score_seeds(scores)
        missing = [s for s in seeds if s not in present]
        if missing:
            raise InputError(
                f"{source}: random seed(s) {missing} asked for by ablate.random_seeds are not in the table (has {present})"
            )
    rows: list[dict[str, Any]] = []
    masks: list[Mask] = []
    members = scope_members(layout, scope)
    how = resolve_normalisation(normalise, method)
    for seed in seeds if seeds is not None else [None]:
        vec = normalise_per_module(score_vector(scores, layout, seed=seed, source=source), layout, how)
        for scope_name, blocks in members.items():
            idx = layout.flat_index(blocks)
            values = vec[idx]
            bounds = np.cumsum([0] + [layout.sizes[layout.index(b)] for b in blocks])
            for mode in modes:
                for f in fractions:
                    filled, k = filled_mask(values, float(f), mode)
                    masks.append({b: filled[bounds[i] : bounds[i + 1]] for i, b in enumerate(blocks)})
                    rows.append(
                        {
                            "method": method,
                            "scope": scope,
                            "scope_name": scope_name,
                            "layer": blocks[0][0] if scope == "layer_module" else None,
                            "module": None if scope == "global" else blocks[0][1],
                            "mode": mode,
                            "f": float(f),
                            "seed": seed,
                            "n_scope": len(values),
                            "n_selected": int(k),
                            "n_filled": int(filled.sum()),
                        }
                    )
    keys = pd.DataFrame(rows)
    keys["layer"] = keys["layer"].astype("Int64")
    keys["seed"] = keys["seed"].astype("Int64")
    return keys, masks


def metrics_table(
    keys: pd.DataFrame, preds: np.ndarray, y_true: np.ndarray, labels: Sequence[str]
) -> pd.DataFrame:
    """``keys`` plus accuracy, macro-F1 and per-class recall (``recall_<label>``) of each row's predictions."""
    out = keys.copy()
    acc, f1 = [], []
    recall = {lab: [] for lab in labels}
    for p in preds:
        m = classification_metrics(y_true, p, list(labels))
        acc.append(m["accuracy"])
        f1.append(m["macro_f1"])
        for lab in labels:
            recall[lab].append(m["per_class"][lab]["recall"])
    out["n_test"] = len(y_true)
    out["accuracy"] = acc
    out["macro_f1"] = f1
    for lab in labels:
        out[f"recall_{lab}"] = recall[lab]
    return out


# -- one job: a method in a scope -------------------------------------------------------------
@dataclass
class AblationResult:
    """The rows (metrics per mask), the predictions behind them and the intact model's predictions."""

    table: pd.DataFrame
    preds: np.ndarray
    full_pred: np.ndarray
    y_true: np.ndarray
    accessions: np.ndarray
    seconds: float


def run_ablation(
    model: EsmClassifier,
    sequences: Sequence[str],
    y_true: np.ndarray,
    labels: Sequence[str],
    scores: pd.DataFrame,
    method: str,
    scope: str,
    fractions: Sequence[float],
    modes: Sequence[str] = ("preserve", "suppress"),
    fill: Fill | None = None,
    normalise: str = "auto",
    random_seeds: Sequence[int] | None = None,
    accessions: Sequence[str] | None = None,
    token_budget: int = 8192,
    masks_per_pass: int = 1,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    source: str = "score table",
) -> AblationResult:
    """Evaluate every mask of one (method, scope) job on the test sequences.

    ``method == "random"`` evaluates one selection per seed of ``random_seeds``.
    """
    t0 = time.perf_counter()
    fill = fill or Fill()
    layout = layout_of(model)
    seeds = list(random_seeds) if method == "random" else None
    if method == "random" and not seeds:
        raise InputError("ablate.random_seeds: at least one seed is needed for the random baseline")
    keys, masks = build_masks(scores, layout, method, scope, fractions, modes, normalise, seeds, source)
    keys.insert(keys.columns.get_loc("seed") + 1, "fill", fill.kind)
    log.info("%s / %s: %d masks on %d test sequences", method, scope, len(masks), len(sequences))

    def progress(done: int, total: int) -> None:
        log.info("  batch %d/%d (%.1f s)", done, total, time.perf_counter() - t0)

    preds = evaluate_masks(
        model,
        sequences,
        [*masks, {}],
        fill,
        token_budget,
        masks_per_pass,
        device=device,
        bf16=bf16,
        progress=progress,
    )
    table = metrics_table(keys, preds[:-1], np.asarray(y_true), labels)
    return AblationResult(
        table=table,
        preds=preds[:-1],
        full_pred=preds[-1],
        y_true=np.asarray(y_true, dtype=np.int64),
        accessions=np.asarray(
            accessions if accessions is not None else [str(i) for i in range(len(sequences))], dtype=str
        ),
        seconds=time.perf_counter() - t0,
    )


def load_test_set(
    split_path: str | Path, labels: Sequence[str], max_sequences: int | None = None, seed: int = 0
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(accessions, sequences, label indices)`` of the test split of ``split.tsv``, in the checkpoint's label order.

    ``max_sequences`` keeps a label-stratified subset drawn with ``seed`` (``ablate.max_sequences``:
    every mask costs a pass over the evaluated proteins). Raises InputError naming the file and
    line of a label the model does not know, and when the split has no test proteins.
    """
    test = read_split_rows(split_path, "test", labels, "the ablation evaluates on the test split")
    test = stratified_subset(test, max_sequences, seed)
    return (
        test["accession"].to_numpy(dtype=str),
        test["sequence"].tolist(),
        test["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy(dtype=np.int64),
    )
