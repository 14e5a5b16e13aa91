"""Explaining one protein with one replicate of a finished run: prediction, knowledge units, where they
fire, a per-residue track and a causal check.

* **Knowledge units** (``kneurons.explain.units``): the run's knowledge neurons, the global top
  ``top_fraction`` of its IG ranking, and with SAE features the top fraction of the features.
* **Contribution to the predicted class**: integrated gradients on this protein with the predicted
  class as the target and the run's own IG settings (steps, rule, target: the score table's
  provenance). It is the per-protein term of the run's ranking (the run's IG score of a unit is its
  mean over the scoring set, with the gold class as target), it is exact where activation x the
  run's attribution is not (a unit active on this protein may work against its class here), and it
  sums, per module, to what scaling the module from nothing to its output changes in the target
  (completeness). Units with a positive contribution are named, largest first.
* **Where a unit fires**: its contribution at each residue (the per-token terms of the same IG);
  the windows are centred on its largest positive residues.
* **Per-residue track**: integrated gradients to the input embeddings against a baseline of unknown
  residues (``X``), summed over the embedding: how much each residue drives the predicted class.
* **Causal check**: the predicted class's probability with the named units filled (the run's fill;
  SAE features are zeroed, as their ablation zeroes them) against as many random units in the same
  modules (the same count per module; features among those active on this protein), one draw per
  seed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kneurons.ablation.fill import Fill, fill_hooks
from kneurons.ablation.masks import Mask, chunk_tensors, layout_of
from kneurons.characterise.classes import as_mask, random_matched_mask
from kneurons.characterise.windows import best_windows
from kneurons.explain.units import ExplainSettings, IgSettings, ReplicateModel, unit_id
from kneurons.model.classifier import MODULE_TYPES, EsmClassifier
from kneurons.ranking import NeuronLayout
from kneurons.scoring.completeness import PRECISION
from kneurons.scoring.ig import attribute_batch, input_attribution, target_value
from kneurons.vocabulary import FEATURE_MODULE

log = logging.getLogger(__name__)

#: The residue of the per-residue track's baseline: unknown, in every backend's alphabet.
BASELINE_RESIDUE = "X"
#: The per-residue track's integration rule (``explain.track_steps`` points).
TRACK_RULE = "gausslegendre"


def unit_contributions(
    model: EsmClassifier,
    tokens: torch.Tensor,
    gold: torch.Tensor,
    columns: Mapping[tuple[int, str], tuple[np.ndarray, np.ndarray]],
    n_units: int,
    ig: IgSettings,
    token_budget: int,
) -> np.ndarray:
    """Every candidate unit's IG term at every token ``(T, n_units)`` for the target class ``gold``
    (one protein); ``columns`` from ``candidate_columns``. Summed over the tokens, a unit's column is
    its per-sequence IG attribution, the quantity whose mean over the scoring set is the run's score.

    The run's completeness rule applied to this protein (``kneurons.scoring.completeness``): a
    module whose attributions, summed over its units and tokens, miss its effect ``F(1) - F(0)`` by
    more than the protein's share of the tolerance (``ig.shares``: the run's, ``tolerance`` x the
    mean effect over its scoring set; else ``tolerance`` x this protein's effect) and more than
    float32 rounding is integrated again with twice the steps, up to ``ig.max_steps`` (there its
    terms are kept as they are: an explanation names units, it does not fail)."""
    out = np.zeros((tokens.shape[1], n_units), dtype=np.float64)
    for layer in sorted({b[0] for b in columns}):
        todo = [m for (lay, m) in columns if lay == layer]
        steps = ig.steps
        while todo:
            alphas, weights = dataclasses.replace(ig, steps=steps).points(tokens.device)
            effects: dict[str, torch.Tensor] = {}
            attr = attribute_batch(
                model,
                tokens,
                gold,
                layer,
                todo,
                alphas,
                weights,
                ig.target,
                token_budget,
                bf16=False,
                per_token=True,
                effects=effects,
            )
            for m in todo:
                idx, rows = columns[(layer, m)]
                out[:, rows] = (
                    attr[m][:, 0, torch.as_tensor(idx.copy(), device=tokens.device)].double().cpu().numpy()
                )
            if ig.tolerance is None or steps >= (ig.max_steps or steps):
                break
            todo = [m for m in todo if _error(attr[m], effects[m]) > _allowed(ig, layer, m, effects[m])]
            steps = min(2 * steps, ig.max_steps or steps)
    return out


def _error(attributions: torch.Tensor, effect: torch.Tensor) -> float:
    """How far a module's attributions on one protein, summed, miss its effect ``F(1) - F(0)``."""
    return abs(float(attributions.double().sum()) - float(effect[0]))


def _allowed(ig: IgSettings, layer: int, module: str, effect: torch.Tensor) -> float:
    """The error a protein's module may keep: its share of the run's tolerance, or float32 rounding."""
    share = ig.shares.get((layer, module), (ig.tolerance or 0.0) * abs(float(effect[0])))
    return max(share, PRECISION["float32"])


def unit_windows(tracks: np.ndarray, sequence: str, settings: ExplainSettings) -> list[list[dict[str, Any]]]:
    """Per unit (``tracks``: its contribution at each residue, ``(n_units, L)``), its windows: around
    its ``peaks`` largest positive residues, non-overlapping (``best_windows``, first of ties);
    positions 1-based, ``values`` the contribution at each residue of the window (None off the ends)."""
    k = len(tracks)
    out: list[list[dict[str, Any]]] = [[] for _ in range(k)]
    if not k:
        return out
    w, n, left = settings.window, len(sequence), (settings.window - 1) // 2
    # one call for all units: each unit's track is one "protein" of best_windows
    wins = best_windows(list(tracks), [sequence] * k, w, k * settings.peaks, settings.peaks, seed=None)
    for unit, center, value, window in zip(
        wins["protein"].to_numpy(),
        wins["center"].to_numpy(),
        wins["value"].to_numpy(),
        wins["window"],
        strict=True,
    ):
        if value <= 0:
            continue
        start = int(center) - left
        out[int(unit)].append(
            {
                "center": int(center),
                "start": max(1, start),
                "end": min(n, start + w - 1),
                "window": str(window),
                "value": float(value),
                "values": [
                    float(tracks[unit][p - 1]) if 1 <= p <= n else None for p in range(start, start + w)
                ],
            }
        )
    for peaks in out:  # best first, as best_windows sorts them; ties by position
        peaks.sort(key=lambda pk: (-pk["value"], pk["center"]))
    return out


def on_sites(values: np.ndarray, sites: Sequence[int] | None) -> dict[str, float | None] | None:
    """Whether a per-residue track (a unit's contribution, the protein's track) lies on the annotated
    sites: the share of its positive part on site residues, beside the share of residues that are
    sites (what a track blind to the sites gets on average). None without annotated sites."""
    if not sites:
        return None
    positive = np.clip(np.asarray(values, dtype=np.float64), 0, None)
    idx = np.asarray(sites, dtype=np.int64) - 1
    total = positive.sum()
    return {
        "share": float(positive[idx].sum() / total) if total > 0 else None,
        "expected": float(len(idx) / len(positive)),
    }


def _random_feature_mask(
    named: pd.DataFrame, layout: NeuronLayout, active: Mapping[tuple[int, str], np.ndarray], seed: int
) -> Mask:
    """As many random features per SAE as ``named`` has there, among those active on the protein
    (all of the SAE's when too few are): a dead feature would make a free no-op draw."""
    rng = np.random.default_rng(seed)
    mask: Mask = {}
    for block, filled in as_mask(named, layout).items():
        pool = np.flatnonzero(active.get(block, np.zeros(0, dtype=bool)))
        k = int(filled.sum())
        if len(pool) < k:
            pool = np.arange(len(filled))
        v = np.zeros(len(filled), dtype=bool)
        v[rng.choice(pool, size=k, replace=False)] = True
        mask[block] = v
    return mask


@torch.no_grad()
def _probabilities_under_masks(
    model: EsmClassifier, tokens: torch.Tensor, masks: Sequence[Mask], layout: NeuronLayout, fill: Fill
) -> np.ndarray:
    """Class probabilities ``(len(masks), C)`` of one protein, each mask's units filled (one pass)."""
    copies = len(masks)
    sizes = dict(zip(layout.blocks, layout.sizes, strict=True))
    filled = chunk_tensors(list(masks), sizes, tokens.device)
    with fill_hooks(model, filled, fill.to(tokens.device)):
        logits = model(tokens.repeat(copies, 1))
    return torch.softmax(logits.double(), dim=-1).cpu().numpy()


def _causal(
    rm: ReplicateModel,
    tokens: torch.Tensor,
    named: pd.DataFrame,
    pred: int,
    settings: ExplainSettings,
    kind: str,
    active: Mapping[tuple[int, str], np.ndarray],
) -> dict[str, Any] | None:
    """The causal check of one kind of unit: the named units filled against random ones, one pass."""
    if named.empty:
        return None
    if kind == "features":
        layout, fill = rm.feature_layout, Fill()  # features are zeroed, as their ablation zeroes them
        randoms = [_random_feature_mask(named, layout, active, s) for s in settings.random_seeds]
    else:
        layout, fill = rm.neuron_layout, rm.fill
        randoms = [
            random_matched_mask(named, layout, np.random.default_rng(s)) for s in settings.random_seeds
        ]
    assert layout is not None
    masks = [{}, as_mask(named, layout), *randoms]
    probs = _probabilities_under_masks(rm.model, tokens, masks, layout, fill)
    p = probs[:, pred]
    random_drops = p[0] - p[2:]
    return {
        "kind": kind,
        "fill": fill.kind,
        "n_units": len(named),
        "p_intact": float(p[0]),
        "p_suppressed": float(p[1]),
        "drop": float(p[0] - p[1]),
        "flipped": bool(probs[1].argmax() != pred),
        "p_random": [float(x) for x in p[2:]],
        "drop_random": [float(x) for x in random_drops],
        "drop_random_mean": float(random_drops.mean()) if len(random_drops) else None,
        "flipped_random": int(sum(probs[2:].argmax(axis=1) != pred)),
        "seeds": list(settings.random_seeds),
    }


def _feature_activity(model: EsmClassifier, tokens: torch.Tensor) -> dict[tuple[int, str], np.ndarray]:
    """Per attached SAE, which features fire anywhere on the protein (one forward pass)."""
    if not model.saes:
        return {}
    seen: dict[tuple[int, str], np.ndarray] = {}
    handles = []
    for layer in sorted(model.saes):

        def hook(_mod, _inp, out, layer=layer):
            seen[(layer, FEATURE_MODULE)] = (out.abs().amax(dim=(0, 1)) > 0).cpu().numpy()

        handles.append(model.module(layer, FEATURE_MODULE).register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        for h in handles:
            h.remove()
    return seen


def explain_protein(
    rm: ReplicateModel, sequence: str, settings: ExplainSettings, sites: Sequence[int] | None = None
) -> dict[str, Any]:
    """One protein with one replicate: prediction, named units (contribution, windows, how much of
    it lies on the annotated ``sites``, 1-based), per-residue track and causal check. Residue ``i``
    (1-based) is token ``i`` (BOS is token 0)."""
    began = time.monotonic()
    model = rm.model
    device = next(model.parameters()).device
    tokens = model.tokenize([sequence]).to(device)
    n = len(sequence)
    with torch.no_grad():
        probs = torch.softmax(model(tokens).double(), dim=-1)[0].cpu().numpy()
    pred = int(probs.argmax())
    gold = torch.tensor([pred], device=device)
    kinds = [("neurons", rm.neurons)] + ([("features", rm.features)] if rm.features is not None else [])
    units_out: list[dict[str, Any]] = []
    causal = []
    active = _feature_activity(model, tokens) if rm.features is not None else {}
    for kind, candidates in kinds:
        per_token = unit_contributions(
            model, tokens, gold, rm.columns[kind], len(candidates), rm.ig, settings.token_budget
        )
        total = per_token.sum(axis=0)  # every token, BOS and EOS included, as the run's scores sum
        order = [i for i in np.argsort(-total, kind="stable") if total[i] > 0][: settings.top_units]
        named = candidates.iloc[order].reset_index(drop=True)
        residues = per_token[1 : n + 1, order].T  # (named units, residues)
        windows = unit_windows(residues, sequence, settings)
        for rank, (i, row) in enumerate(zip(order, named.to_dict("records"), strict=True), start=1):
            units_out.append(
                {
                    "unit": unit_id(row["layer"], row["module"], row["neuron"]),
                    "kind": "feature" if kind == "features" else "neuron",
                    "rank": rank,
                    "layer": int(row["layer"]),
                    "module": str(row["module"]),
                    "index": int(row["neuron"]),
                    "contribution": float(total[i]),
                    "residue_share": float(residues[rank - 1].sum() / total[i]),
                    "run_rank": int(row["run_rank"]),
                    "run_score": float(row["run_score"]),
                    "top_class": None if pd.isna(row.get("top_class")) else str(row["top_class"]),
                    "class_share": None if pd.isna(row.get("class_share")) else float(row["class_share"]),
                    "peaks": windows[rank - 1],
                    "on_sites": on_sites(residues[rank - 1], sites),
                }
            )
        result = _causal(rm, tokens, named, pred, settings, kind, active)
        if result is not None:
            causal.append(result)
    # the track's own points: its path is far sharper than a module's scaling (ExplainSettings)
    alphas, weights = IgSettings(settings.track_steps, TRACK_RULE, rm.ig.target).points(device)
    baseline = model.tokenize([BASELINE_RESIDUE * n]).to(device)
    track = input_attribution(
        model, tokens, baseline, gold, alphas, weights, rm.ig.target, settings.token_budget
    )
    residue_track = track[1 : n + 1, 0].cpu().numpy()
    with torch.no_grad():
        f_base = float(target_value(model(baseline), gold, rm.ig.target)[0])
        f_self = float(target_value(model(tokens), gold, rm.ig.target)[0])
    return {
        "replicate": rm.replicate,
        "predicted": rm.labels[pred],
        "probabilities": {lab: float(p) for lab, p in zip(rm.labels, probs, strict=True)},
        "units": units_out,
        "causal": causal,
        "track": [float(x) for x in residue_track],
        "track_on_sites": on_sites(residue_track, sites),
        "track_target": {
            "target": rm.ig.target,
            "protein": f_self,
            "baseline": f_base,
            # completeness: what the integration rule missed of the change from baseline to protein
            "gap": float(residue_track.sum()) - (f_self - f_base),
            "steps": settings.track_steps,
        },
        "seconds": round(time.monotonic() - began, 3),
    }


def neuron_layout(model: EsmClassifier) -> NeuronLayout:
    """Every neuron of the model (the layout its IG score table covers)."""
    return layout_of(model, MODULE_TYPES)
