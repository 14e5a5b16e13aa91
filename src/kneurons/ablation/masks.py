"""Masks: per module, which output units get the fill value; built from score tables, scored as metrics.

A mask is ``{(layer, module): bool vector over the module's output units}`` (True = gets the
fill). ``build_masks`` makes every (scope_name, mode, f[, seed]) mask of one method in one scope
from its score table; ``metrics_table`` turns the predictions under each mask into accuracy,
macro-F1 and per-class recall rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kneurons.errors import InputError
from kneurons.model.classifier import MODULE_TYPES, EsmClassifier
from kneurons.ranking import (
    Block,
    NeuronLayout,
    block_key,
    normalise_per_module,
    resolve_normalisation,
    scope_members,
    score_seeds,
    score_vector,
    top_k_count,
    top_mask,
)
from kneurons.stats.metrics import classification_metrics
from kneurons.vocabulary import MODES, UNIT_MODULES

#: Key columns of an ablation table: one row per (method, scope, scope_name, mode, f, seed, fill).
KEY_COLUMNS: tuple[str, ...] = ("method", "scope", "scope_name", "mode", "f", "seed", "fill")

#: A mask: per module, a boolean vector over its output units (True = gets the fill value).
Mask = dict[Block, np.ndarray]


def filled_mask(normalised_in_scope: np.ndarray, f: float, mode: str) -> tuple[np.ndarray, int]:
    """Which neurons of a scope get the fill value, and ``k`` (the size of the top-f selection).

    ``preserve``: all but the top ``k`` are filled. ``suppress``: the top ``k`` are filled.
    """
    n = len(normalised_in_scope)
    k = top_k_count(f, n)
    top = top_mask(normalised_in_scope, k)
    if mode == "preserve":
        return ~top, k
    if mode == "suppress":
        return top, k
    raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")


def layout_of(model: EsmClassifier, modules: Sequence[str] = MODULE_TYPES) -> NeuronLayout:
    """The unit layout of a classifier over ``modules``: every neuron module of every layer (the
    default), or ``("sae",)``: the features of each attached SAE (``EsmClassifier.attach_sae``)."""
    blocks = sorted(((layer, m) for m in modules for layer in model.unit_layers(m)), key=block_key)
    return NeuronLayout(tuple(blocks), tuple(model.module(*b).out_features for b in blocks))


def unit_sizes(model: EsmClassifier) -> dict[Block, int]:
    """Units per block of every block the model has: neuron modules of every layer and attached SAEs."""
    layout = layout_of(model, UNIT_MODULES)
    return dict(zip(layout.blocks, layout.sizes, strict=True))


#: Sort key of a block (layer, then ``UNIT_MODULES`` order), as the ranking orders blocks.
block_order = block_key


def active(mask: Mask) -> Mask:
    """The modules of ``mask`` with at least one filled unit, as bool vectors."""
    return {b: np.asarray(v, dtype=bool) for b, v in mask.items() if np.asarray(v).any()}


def canonical(mask: Mask) -> tuple:
    """Hashable identity of a mask (blocks with no filled unit dropped)."""
    return tuple(
        (b, np.packbits(v).tobytes(), len(v))
        for b, v in sorted(mask.items(), key=lambda kv: block_order(kv[0]))
        if v.any()
    )


def chunk_tensors(
    chunk: Sequence[Mask], sizes: dict[Block, int], device: torch.device
) -> dict[Block, torch.Tensor]:
    """The masks of one pass as ``(len(chunk), n)`` bool tensors per module, copy ``j`` = mask ``j``."""
    blocks = sorted({b for m in chunk for b in m}, key=block_order)
    out = {}
    for b in blocks:
        mat = np.zeros((len(chunk), sizes[b]), dtype=bool)
        for j, m in enumerate(chunk):
            if b in m:
                mat[j] = m[b]
        out[b] = torch.from_numpy(mat).to(device)
    return out


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
                f"{source}: random seed(s) {missing} asked for by ablate.random_seeds are not in the table "
                f"(has {present})"
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
    keys: pd.DataFrame,
    preds: np.ndarray,
    y_true: np.ndarray,
    labels: Sequence[str],
    logp: np.ndarray | None = None,
) -> pd.DataFrame:
    """``keys`` plus accuracy, macro-F1 and per-class recall (``recall_<label>``) of each row, and
    with ``logp`` (``(rows, proteins)``: each protein's log-probability of its true class) their
    mean, ``mean_logp`` (the normalised faithfulness's second metric)."""
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
    if logp is not None:
        out["mean_logp"] = np.asarray(logp, dtype=np.float64).mean(axis=1) if len(y_true) else np.nan
    for lab in labels:
        out[f"recall_{lab}"] = recall[lab]
    return out
