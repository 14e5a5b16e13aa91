"""Claim 6's same-site bases, scored and ablated (``kneurons.features.bases`` defines them): every
basis of one SAE stream ranked by every method and preserved top-f on the fraction grid and on the
grid of directions kept, under every fill, in one evaluation per basis (the test proteins, the intact
pass and the fills shared by its methods and grids).

The rows are those of a global-scope ablation per basis, ``scope`` naming the grid (``global``: the
fractions; ``directions``: ``f = k / n`` for the counts ``k`` of ``units.directions``, and ``k = 0``,
the empty set), ``scope_name`` ``L{layer}.{basis}`` (each basis is its own scope, with its own random
baseline), a ``basis`` column and the stream's ``layer``. Preserve mode only: claim 6 reads the kept
sets (``BASES_MODE``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kneurons.ablation.fill import Fill
from kneurons.ablation.masks import Mask, build_masks, layout_of
from kneurons.ablation.run import evaluate_rows
from kneurons.errors import InputError
from kneurons.features.sae import SparseAutoencoder
from kneurons.model.classifier import EsmClassifier
from kneurons.ranking import NeuronLayout
from kneurons.scoring.base import score_layer
from kneurons.tables import AblationResult
from kneurons.vocabulary import BASES_MODE, FEATURE_MODULE

log = logging.getLogger(__name__)

#: The scope of the rows on the grid of directions kept (the fraction grid's is ``global``).
DIRECTIONS_SCOPE = "directions"


def grid_rows(
    scores: pd.DataFrame,
    layout: NeuronLayout,
    method: str,
    fractions: Sequence[float],
    counts: Sequence[int],
    normalise: str = "auto",
    seeds: Sequence[int] | None = None,
    source: str = "score table",
) -> tuple[pd.DataFrame, list[Mask]]:
    """The preserve masks of one method in one basis on both grids: the fractions (scope ``global``)
    and the counts of directions kept (scope ``directions``, ``f = k / n``; ``k = 0`` too, the empty
    set, and counts above the basis's ``n`` units dropped)."""
    n = int(layout.total)
    keys, masks = build_masks(
        scores, layout, method, "global", fractions, [BASES_MODE], normalise, seeds, source
    )
    by_count = [0.0, *(k / n for k in counts if k <= n)]
    keys_k, masks_k = build_masks(
        scores, layout, method, "global", by_count, [BASES_MODE], normalise, seeds, source
    )
    keys_k["scope"] = DIRECTIONS_SCOPE
    return pd.concat([keys, keys_k], ignore_index=True), [*masks, *masks_k]


def ablate_bases(
    model: EsmClassifier,
    layer: int,
    bases: Mapping[str, SparseAutoencoder],
    scoring_set: pd.DataFrame,
    sequences: Sequence[str],
    y_true: np.ndarray,
    labels: Sequence[str],
    fills_for: Callable[[], list[Fill]],
    methods: Sequence[str],
    score_cfg: Mapping[str, Any],
    fractions: Sequence[float],
    counts: Sequence[int],
    random_seeds: Sequence[int],
    feature_scores: Mapping[str, pd.DataFrame] | None = None,
    normalise: str = "auto",
    accessions: Sequence[str] | None = None,
    token_budget: int = 8192,
    masks_per_pass: int = 1,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> AblationResult:
    """Every basis of ``bases`` (name -> dictionary of the stream entering ``layer``) attached in turn
    at ``layer``, ranked by every method of ``methods`` (``score_layer`` on ``scoring_set``; the
    ``features`` basis takes ``feature_scores`` where given: the feature jobs' tables), and ablated on
    ``sequences`` (module docstring). ``fills_for()`` builds the fills for the attached basis (their
    values are the basis's own: a coordinate's mean, its value on a donor). The random method's
    selections are ``random_seeds``'. Returns one table (basis-major, fill-major within a basis) with
    its predictions; the intact model must predict the same with every basis attached."""
    results: list[AblationResult] = []
    for name, basis in bases.items():
        if basis.layer != layer:
            raise InputError(
                f"{basis.source}: reads layer {basis.layer}, not the stream entering layer {layer}"
            )
        model.attach_sae(basis)
        layout = layout_of(model, (FEATURE_MODULE,))
        if layout.blocks != ((layer, FEATURE_MODULE),):
            raise InputError(
                f"the bases of layer {layer}: detach the other SAEs first (attached at {layout.blocks})"
            )
        if name == "features" and feature_scores is not None:
            tables = {m: feature_scores[m] for m in methods}
        else:
            tables = {
                m: score_layer(model, scoring_set, m, layer, dict(score_cfg), device, (FEATURE_MODULE,))
                for m in methods
            }
        keys, masks = [], []
        for method, scores in tables.items():
            seeds = list(random_seeds) if method == "random" else None
            k, m = grid_rows(scores, layout, method, fractions, counts, normalise, seeds, f"{name} scores")
            keys.append(k)
            masks.extend(m)
        keyed = pd.concat(keys, ignore_index=True)
        keyed["scope_name"] = f"L{layer}.{name}"
        keyed["layer"] = pd.array([layer] * len(keyed), dtype="Int64")
        keyed.insert(keyed.columns.get_loc("scope_name") + 1, "basis", name)
        result = evaluate_rows(
            model,
            sequences,
            y_true,
            labels,
            keyed,
            masks,
            fills_for(),
            accessions,
            token_budget,
            masks_per_pass,
            device,
            bf16,
            what=f"layer {layer} {name}",
        )
        if results and not (result.full_pred == results[0].full_pred).all():
            raise InputError(
                f"layer {layer}: the intact model predicts otherwise with the {name} basis attached"
            )
        results.append(result)
    first = results[0]
    return AblationResult(
        table=pd.concat([r.table for r in results], ignore_index=True),
        preds=np.concatenate([r.preds for r in results]),
        full_pred=first.full_pred,
        y_true=first.y_true,
        accessions=first.accessions,
        seconds=sum(r.seconds for r in results),
        logp=np.concatenate([r.logp for r in results]),
        full_logp=first.full_logp,
    )
