"""Class-specific knowledge neurons: each class's neuron set from the class-conditional IG rows.

From the class-conditional IG rows (column ``label``) each class gets its own neuron set: the
top fraction ``f`` of all neurons, or (Dai et al. 2022) those above ``threshold`` x the class's
largest score. Neurons are ranked exactly as the ``global`` ablation scope ranks them
(``kneurons.ranking``, ``ablate.normalise``; its ``auto`` default leaves IG
unnormalised, since attributions share one unit across modules). Overlaps between classes are
Jaccard indices. Torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kneurons.errors import InputError
from kneurons.ranking import NeuronLayout, normalise_per_module, rank_order, score_vector, top_k_count
from kneurons.vocabulary import NEURON_KEY

if TYPE_CHECKING:
    from kneurons.ablation.masks import Mask


def split_ig_scores(scores: pd.DataFrame, source: str = "ig scores") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an IG score table into its gold-class rows and its class-conditional rows (``label``)."""
    missing = [c for c in (*NEURON_KEY, "score") if c not in scores.columns]
    if missing:
        raise InputError(f"{source}: score table lacks column(s) {missing}")
    if "label" not in scores.columns:
        return scores.copy(), scores.iloc[0:0].assign(label=pd.Series(dtype=str))
    is_class = scores["label"].notna()
    overall = scores[~is_class].drop(columns=["label"])
    per_class = scores[is_class].copy()
    per_class["label"] = per_class["label"].astype(str)
    return overall.reset_index(drop=True), per_class.reset_index(drop=True)


def _frame(layout: NeuronLayout, values: np.ndarray, order: np.ndarray) -> pd.DataFrame:
    """Neuron key columns for flat indices ``order`` of ``layout`` with their ``values``."""
    return layout.keys(order).assign(norm_score=values[order])


def ranked_neurons(
    scores: pd.DataFrame, layout: NeuronLayout, normalise: str = "auto", source: str = "ig scores"
) -> pd.DataFrame:
    """Every neuron ranked by its IG score, normalised as ``kneurons.ranking`` does; best first.

    ``scores`` holds one row per neuron (no ``label``). Returns ``rank`` (1-based), the key
    columns, ``score`` and ``norm_score``.
    """
    raw = score_vector(scores, layout, source=source)
    norm = normalise_per_module(raw, layout, normalise, method="ig")
    order = rank_order(norm)
    df = _frame(layout, norm, order)
    df.insert(3, "score", raw[order])
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df


def select_class_neurons(
    class_scores: pd.DataFrame,
    layout: NeuronLayout,
    method: str = "top_fraction",
    fraction: float = 0.01,
    threshold: float = 0.2,
    normalise: str = "auto",
) -> pd.DataFrame:
    """Each class's knowledge neurons from class-conditional scores.

    Within a class, neurons are ranked exactly as the global ablation scope ranks them
    (``ranked_neurons``). ``top_fraction``: the top
    ``fraction`` of all neurons (round half up, at least one). ``relative_threshold``: neurons
    whose normalised score exceeds ``threshold`` x the class's largest (Dai et al. 2022).
    Returns ``label, rank, layer, module, neuron, score, norm_score``.
    """
    if class_scores.empty:
        raise InputError("no class-conditional IG rows (column `label`); enable score.ig.class_conditional")
    parts = []
    for label, g in class_scores.groupby("label", sort=True):
        ranked = ranked_neurons(
            g.drop(columns=["label"]), layout, normalise, source=f"ig scores of class {label}"
        )
        if method == "top_fraction":
            keep = ranked.head(max(1, top_k_count(fraction, layout.total)))
        elif method == "relative_threshold":
            best = ranked["norm_score"].iloc[0]
            keep = ranked[ranked["norm_score"] > threshold * best] if best > 0 else ranked.head(1)
        else:
            raise InputError(
                f"unknown class selection method {method!r}; use top_fraction or relative_threshold"
            )
        parts.append(keep.assign(label=str(label)))
    out = pd.concat(parts, ignore_index=True)
    return out[["label", "rank", *NEURON_KEY, "score", "norm_score"]]


def _keys(df: pd.DataFrame) -> set[tuple[int, str, int]]:
    return set(zip(df["layer"].astype(int), df["module"].astype(str), df["neuron"].astype(int), strict=False))


def class_overlap(class_sets: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Pairwise overlap of the class neuron sets and the number of neurons shared by all classes.

    Returns ``(table, shared_by_all)``; the table has ``class_a, class_b, n_a, n_b, n_shared, jaccard``
    for every ordered pair (diagonal included, Jaccard 1) so it pivots straight into a matrix.
    """
    sets = {label: _keys(g) for label, g in class_sets.groupby("label", sort=True)}
    rows = []
    for a, sa in sets.items():
        for b, sb in sets.items():
            union = len(sa | sb)
            rows.append(
                {
                    "class_a": a,
                    "class_b": b,
                    "n_a": len(sa),
                    "n_b": len(sb),
                    "n_shared": len(sa & sb),
                    "jaccard": len(sa & sb) / union if union else float("nan"),
                }
            )
    shared = set.intersection(*sets.values()) if sets else set()
    return pd.DataFrame(rows), len(shared)


def neuron_class_profile(class_scores: pd.DataFrame) -> pd.DataFrame:
    """Per neuron, the class with the largest class-conditional score and that class's share.

    ``class_share`` = positive part of the top class's score / sum of positive parts over
    classes: 1 for a neuron that supports one class only, ``1/K`` for one that supports all alike.
    """
    if class_scores.empty:
        return pd.DataFrame(columns=[*NEURON_KEY, "top_class", "class_share"])
    wide = class_scores.pivot_table(index=NEURON_KEY, columns="label", values="score", aggfunc="mean")
    pos = wide.clip(lower=0).fillna(0.0)
    total = pos.sum(axis=1)
    out = pd.DataFrame(
        {
            "top_class": wide.idxmax(axis=1).astype(str),
            "class_share": (pos.max(axis=1) / total.where(total > 0)).astype(float),
        }
    )
    return out.reset_index()


def _blocks(neurons: pd.DataFrame) -> dict[tuple[int, str], np.ndarray]:
    """The listed neurons' indices per ``(layer, module)``, blocks in sorted order (as a sorted
    ``groupby`` gives them), without pandas' per-group cost: masks are built per protein."""
    out: dict[tuple[int, str], list[int]] = {}
    layers = np.asarray(neurons["layer"], dtype=np.int64)
    indices = np.asarray(neurons["neuron"], dtype=np.int64)
    for layer, module, n in zip(layers, map(str, neurons["module"]), indices, strict=True):
        out.setdefault((int(layer), module), []).append(int(n))
    return {b: np.asarray(out[b], dtype=np.int64) for b in sorted(out)}


def as_mask(neurons: pd.DataFrame, layout: NeuronLayout) -> Mask:
    """An ablation mask that fills the listed neurons (only the modules they touch)."""
    mask: Mask = {}
    sizes = dict(zip(layout.blocks, layout.sizes, strict=False))
    for block, idx in _blocks(neurons).items():
        v = np.zeros(sizes[block], dtype=bool)
        v[idx] = True
        mask[block] = v
    return mask


def random_matched_mask(neurons: pd.DataFrame, layout: NeuronLayout, rng: np.random.Generator) -> Mask:
    """A random mask with as many filled neurons in every (layer, module) as ``neurons`` has."""
    mask: Mask = {}
    sizes = dict(zip(layout.blocks, layout.sizes, strict=False))
    for block, idx in _blocks(neurons).items():
        v = np.zeros(sizes[block], dtype=bool)
        v[rng.choice(sizes[block], size=len(idx), replace=False)] = True
        mask[block] = v
    return mask
