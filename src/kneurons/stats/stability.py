"""Stability of knowledge neurons across replicates (torch-free: runs in the plots env).

A **replicate** is one fine-tuning run from the same backbone weights with its own seed, so neuron
``(layer, module, neuron)`` is the same unit in every replicate and top sets can be compared. For
each method and each pair of replicates:

* ``jaccard``: overlap ``|A & B| / |A | B|`` of the top ``k`` neurons (ranked as the ablation's
  global scope ranks them: scores normalised per module, ``kneurons.ranking``), at ``k``
  = each fraction of ``STABILITY_FRACTIONS`` of all neurons (``level`` ``global``), and of the top
  ``k`` within each module type (``level`` ``module_type``);
* ``random_jaccard``: the same overlap for random selections of the same size *and the same
  number of neurons in every (layer, module)* as the two top sets: its mean and 2.5/97.5
  percentiles over ``draws`` seeded draws (per module, a hypergeometric overlap);
* ``spearman``: rank correlation of the two replicates' scores over the neurons of the level,
  each score first ranked within its (layer, module); 0 is what unrelated units give.

Matching the module composition matters: attributions of some module types are larger than
others by construction, so two replicates whose units have nothing in common still pick their top
neurons from the same modules, and an overlap of uniformly random selections (or a correlation of
raw scores) would call them stable. Only the identity of units within a module is tested here.
Stable knowledge neurons have a Jaccard above the random interval.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from kneurons.errors import InputError
from kneurons.ranking import (
    NeuronLayout,
    normalise_per_module,
    resolve_normalisation,
    score_vector,
    top_k_count,
    top_mask,
)

#: Top fractions of neurons whose overlap is measured (0.1%, 1%, 5%).
STABILITY_FRACTIONS: tuple[float, ...] = (0.001, 0.01, 0.05)

STABILITY_COLUMNS: list[str] = [
    "method",
    "level",
    "module",
    "k_fraction",
    "k",
    "n_neurons",
    "replicate_a",
    "replicate_b",
    "jaccard",
    "random_jaccard",
    "random_lo",
    "random_hi",
    "spearman",
]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index of two boolean membership vectors (1 when both are empty)."""
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def random_jaccard(
    sizes: Sequence[int], k_a: Sequence[int], k_b: Sequence[int], draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Jaccard indices of ``draws`` pairs of random selections with ``k_a[i]`` and ``k_b[i]`` neurons
    in block ``i`` of ``sizes[i]`` neurons.

    In each block the overlap of two independent random subsets is hypergeometric; the Jaccard
    of the whole selections is ``o / (sum k_a + sum k_b - o)`` with ``o`` the summed overlap.
    """
    overlap = np.zeros(draws, dtype=np.int64)
    for n, a, b in zip(sizes, k_a, k_b, strict=True):
        if a and b:
            overlap += rng.hypergeometric(a, n - a, b, size=draws)
    union = int(sum(k_a)) + int(sum(k_b)) - overlap
    return np.where(union > 0, overlap / np.maximum(union, 1), 1.0)


def _ranked_within_blocks(values: np.ndarray, block_ids: np.ndarray) -> np.ndarray:
    """Each value's rank within its block, scaled to (0, 1]: removes the blocks' scales."""
    out = np.empty(len(values), dtype=np.float64)
    for b in np.unique(block_ids):
        idx = np.flatnonzero(block_ids == b)
        out[idx] = sps.rankdata(values[idx]) / len(idx)
    return out


def _levels(layout: NeuronLayout) -> list[tuple[str, str, np.ndarray]]:
    """``(level, module, flat member indices)``: all neurons, then each module type's."""
    modules = np.array([b[1] for b in layout.blocks])[layout.block_ids()]
    out = [("global", "", np.arange(layout.total))]
    for m in dict.fromkeys(b[1] for b in layout.blocks):
        out.append(("module_type", m, np.flatnonzero(modules == m)))
    return out


def stability(
    scores: Mapping[str, pd.DataFrame],
    method: str,
    normalise: str = "auto",
    fractions: Sequence[float] = STABILITY_FRACTIONS,
    draws: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Overlap of ``method``'s top neurons between every pair of replicates (``STABILITY_COLUMNS``).

    ``scores`` maps a replicate name to its score table (one table per replicate, same layout).
    Fewer than two replicates give an empty table with the columns.
    """
    names = list(scores)
    if len(names) < 2:
        return pd.DataFrame(columns=STABILITY_COLUMNS)
    layouts = {r: NeuronLayout.from_scores(scores[r], f"replicate {r}") for r in names}
    layout = layouts[names[0]]
    for r in names[1:]:
        if layouts[r].blocks != layout.blocks or layouts[r].sizes != layout.sizes:
            raise InputError(f"{method}: replicates {names[0]} and {r} score different neuron layouts")
    how = resolve_normalisation(normalise, method)
    vectors = {
        r: normalise_per_module(score_vector(scores[r], layout, source=f"replicate {r}"), layout, how)
        for r in names
    }
    rng = np.random.default_rng(seed)
    block_ids = layout.block_ids()
    within = {r: _ranked_within_blocks(v, block_ids) for r, v in vectors.items()}
    rows = []
    for level, module, members in _levels(layout):
        n = len(members)
        ids = block_ids[members]
        blocks = np.unique(ids)
        sizes = [int(np.count_nonzero(ids == b)) for b in blocks]
        for frac in fractions:
            k = max(1, top_k_count(frac, n))
            for a, b in itertools.combinations(names, 2):
                top_a, top_b = top_mask(vectors[a][members], k), top_mask(vectors[b][members], k)
                per_block = [
                    [int(np.count_nonzero(top & (ids == blk))) for blk in blocks] for top in (top_a, top_b)
                ]
                null = random_jaccard(sizes, per_block[0], per_block[1], draws, rng)
                lo, hi = np.quantile(null, [0.025, 0.975])
                wa, wb = within[a][members], within[b][members]
                rows.append(
                    {
                        "method": method,
                        "level": level,
                        "module": module,
                        "k_fraction": frac,
                        "k": k,
                        "n_neurons": n,
                        "replicate_a": a,
                        "replicate_b": b,
                        "jaccard": jaccard(top_a, top_b),
                        "random_jaccard": float(null.mean()),
                        "random_lo": float(lo),
                        "random_hi": float(hi),
                        "spearman": float(sps.spearmanr(wa, wb).statistic) if n > 1 else float("nan"),
                    }
                )
    return pd.DataFrame(rows, columns=STABILITY_COLUMNS)
