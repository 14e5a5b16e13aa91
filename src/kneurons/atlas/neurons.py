"""The atlas's neuron table: which neurons go in, and their scores, ranks and top-fraction flags.

Neurons are ranked exactly as the ablation's ``global`` scope and the density statistics rank
them (``kneurons.ranking``: per-module normalisation ``ablate.normalise``, ties by
layout order), so a neuron's rank here is its rank in those results. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kneurons.ranking import (
    NeuronLayout,
    global_top,
    normalise_per_module,
    rank_order,
    resolve_normalisation,
    score_seeds,
    score_vector,
)
from kneurons.vocabulary import NEURON_KEY, unit_id


@dataclass(frozen=True)
class MethodRanking:
    """One method's global ranking over every neuron of the model (flat layout order)."""

    method: str
    score: np.ndarray  # raw score
    rank: np.ndarray  # 1-based rank of every neuron
    top: np.ndarray  # in the global top fraction (the density statistics' knowledge neurons)
    seed: int | None  # the random table's seed that was used (None otherwise)


def neuron_id(layer: int, module: str, neuron: int) -> str:
    """The atlas's name of a neuron, e.g. ``L3.k_proj.17`` (the search box takes it; ``unit_id``)."""
    return unit_id(layer, module, neuron)


def rank_method(
    scores: pd.DataFrame, method: str, layout: NeuronLayout, top_fraction: float, normalise: str
) -> MethodRanking:
    """Rank every neuron of ``layout`` by ``method``'s global score rows (random: its first seed)."""
    seed = score_seeds(scores)[0]
    raw = score_vector(scores, layout, seed=seed, source=f"{method} scores")
    how = resolve_normalisation(normalise, method)
    order = rank_order(normalise_per_module(raw, layout, how))
    rank = np.empty(layout.total, dtype=np.int64)
    rank[order] = np.arange(1, layout.total + 1)
    top, _ = global_top(raw, layout, top_fraction, how)
    return MethodRanking(method, raw, rank, top, seed)


def select_neurons(
    rankings: Sequence[MethodRanking], characterised: Sequence[int], per_method: int, cap: int
) -> np.ndarray:
    """Flat indices of the neurons shown: the characterised ones (in their order), then the top
    ``per_method`` of every non-random method by their best rank over those methods; at most ``cap``."""
    chosen = list(dict.fromkeys(int(i) for i in characterised))
    ranked = [r for r in rankings if r.method != "random"] or list(rankings)
    if ranked:
        best = np.min(np.stack([r.rank for r in ranked]), axis=0)
        candidates = np.flatnonzero(best <= per_method)
        seen = set(chosen)
        chosen += [int(i) for i in candidates[np.argsort(best[candidates], kind="stable")] if i not in seen]
    return np.asarray(chosen[:cap], dtype=np.int64)


def class_profiles(ig: pd.DataFrame | None, keys: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per shown neuron (by id), its class-conditional IG score for every class (empty without them)."""
    if ig is None or "label" not in ig.columns or ig["label"].isna().all():
        return {}
    per_class = ig[ig["label"].notna()]
    per_class = per_class.merge(keys[NEURON_KEY], on=NEURON_KEY, how="inner")
    wide = per_class.pivot_table(index=NEURON_KEY, columns="label", values="score", aggfunc="mean")
    return {
        neuron_id(*key): {str(c): float(v) for c, v in row.items() if pd.notna(v)}
        for key, row in wide.iterrows()
    }


def neuron_rows(
    layout: NeuronLayout,
    rankings: Sequence[MethodRanking],
    flat: np.ndarray,
    characterised: pd.DataFrame | None,
    profiles: Mapping[str, Mapping[str, float]],
    class_sets: Mapping[str, list[str]],
) -> list[dict]:
    """One JSON-ready record per shown neuron: key, per-method score/rank/top, class, sites."""
    keys = layout.keys(flat)
    char = {}
    if characterised is not None:
        char = {
            neuron_id(*k): r
            for k, r in zip(
                characterised[NEURON_KEY].itertuples(index=False),
                characterised.to_dict("records"),
                strict=True,
            )
        }
    rows = []
    for i, (lay, m, n) in zip(flat, keys.itertuples(index=False), strict=True):
        nid = neuron_id(lay, m, n)
        profile = dict(profiles.get(nid, {}))
        c = char.get(nid, {})
        top_class = c.get("top_class") if c else (max(profile, key=profile.get) if profile else None)
        row = {
            "id": nid,
            "layer": int(lay),
            "module": str(m),
            "neuron": int(n),
            "characterised": bool(c),
            "top_class": _text(top_class),
            "profile": profile,
            "class_share": _num(c.get("class_share")),
            "class_sets": class_sets.get(nid, []),
            "consensus": _text(c.get("window_consensus")),
            "site_auroc": _num(c.get("site_auroc")),
            "site_q": _num(c.get("site_q")),
        }
        for r in rankings:
            row[f"score_{r.method}"] = float(r.score[i])
            row[f"rank_{r.method}"] = int(r.rank[i])
            row[f"top_{r.method}"] = bool(r.top[i])
        rows.append(row)
    return rows


def _num(value: object) -> float | None:
    """A finite float, or None (JSON null) for missing and NaN values."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _text(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
