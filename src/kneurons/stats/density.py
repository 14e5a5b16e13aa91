"""Where the top neurons sit: enrichment of module types and layers (torch-free: runs in the plots env).

The global top ``N = ceil(top_fraction x total)`` neurons (ranked after the per-module
normalisation of ``kneurons.ranking``); for each group (module type, layer, layer x
module type) ``enrichment = (count / N) / (group size / total)``. Under random selection of N
neurons the count is hypergeometric; ``null_lo``/``null_hi`` are the 2.5% and 97.5% quantiles of
the enrichment under that null, ``p_enriched``/``p_depleted`` the one-sided tail probabilities
of the observed count, and ``q_enriched`` the Benjamini-Hochberg q-value of ``p_enriched`` over
every group of the method's table (module types, layers and layer x module-type cells; per seed
for random tables): the figure's stars, since a table of ~100 cells has ~5 below p = 0.05 by chance.

Pooled over replicates (``pool_density``) the same columns describe the pooled selections:
``n_top`` and ``count`` are summed over the replicates' top sets (``n_replicates`` of them, each
of ``n_top / n_replicates`` neurons) while ``n_neurons`` and ``n_total`` stay one model's sizes,
so ``enrichment = (count / n_top) / (n_neurons / n_total)`` holds for every row, pooled or not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from kneurons.ranking import NeuronLayout, global_top, resolve_normalisation, score_seeds, score_vector
from kneurons.stats.multiple import bh_qvalues
from kneurons.vocabulary import MODULE_TYPES

#: A group of neurons: level, layer (or None), module type (or None), flat membership mask.
Group = tuple[str, int | None, str | None, np.ndarray]


def neuron_groups(layout: NeuronLayout) -> list[Group]:
    """The groups whose enrichment is measured: module types, layers, and every (layer, module type)."""
    block_ids = layout.block_ids()
    layer_of = np.array([b[0] for b in layout.blocks])[block_ids]
    module_of = np.array([b[1] for b in layout.blocks])[block_ids]
    groups: list[Group] = []
    for m in MODULE_TYPES:
        sel = module_of == m
        if sel.any():
            groups.append(("module_type", None, m, sel))
    for layer in range(layout.num_layers):
        groups.append(("layer", layer, None, layer_of == layer))
    for layer, m in layout.blocks:
        groups.append(("layer_module", layer, m, (layer_of == layer) & (module_of == m)))
    return groups


def _enrichment(top: np.ndarray, n_top: int, sel: np.ndarray, total: int) -> dict[str, Any]:
    """Count of top neurons in a group, its enrichment and the hypergeometric null of random selection."""
    size = int(sel.sum())
    count = int((top & sel).sum())
    expected = n_top * size / total
    dist = sps.hypergeom(total, size, n_top)
    q_lo, q_hi = dist.ppf([0.025, 0.975])
    return {
        "count": count,
        "expected": expected,
        "enrichment": count / expected if expected > 0 else float("nan"),
        "null_lo": q_lo / expected if expected > 0 else float("nan"),
        "null_hi": q_hi / expected if expected > 0 else float("nan"),
        "p_enriched": float(dist.sf(count - 1)),
        "p_depleted": float(dist.cdf(count)),
    }


def density(
    scores: pd.DataFrame,
    method: str,
    top_fraction: float = 0.01,
    normalise: str = "auto",
    source: str = "score table",
) -> pd.DataFrame:
    """Enrichment of module types, layers and (layer, module type) among a score table's global top neurons.

    One set of rows per seed for random tables. ``level`` is ``module_type``, ``layer`` or
    ``layer_module``.
    """
    layout = NeuronLayout.from_scores(scores, source)
    groups = neuron_groups(layout)
    rows = []
    for seed in score_seeds(scores):
        vec = score_vector(scores, layout, seed=seed, source=source)
        top, n_top = global_top(vec, layout, top_fraction, resolve_normalisation(normalise, method))
        for level, layer, m, sel in groups:
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "level": level,
                    "layer": layer,
                    "module": m,
                    "n_neurons": int(sel.sum()),
                    "n_total": layout.total,
                    "n_top": n_top,
                    "top_fraction": top_fraction,
                    **_enrichment(top, n_top, sel, layout.total),
                    "n_replicates": 1,
                }
            )
    out = pd.DataFrame(rows)
    out["seed"] = out["seed"].astype("Int64")
    out["layer"] = out["layer"].astype("Int64")
    return out


def pool_density(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Density over replicates: each group's counts summed over the replicates' top sets.

    ``n_top`` becomes the number of selections pooled (the replicates' top-set sizes summed), so
    the pooled row reads like one selection of that size: ``enrichment`` = summed count / summed
    expectation = ``(count / n_top) / (n_neurons / n_total)``, and a share's interval takes
    ``count`` of ``n_top``. Under random selection the summed count is
    a sum of independent hypergeometric counts (one per replicate); ``null_lo``/``null_hi`` and
    the tail probabilities come from that sum's exact distribution (a convolution). One frame is
    returned as it is.
    """
    if len(frames) == 1:
        return frames[0]
    keys = ["method", "seed", "level", "layer", "module"]
    first = frames[0].reset_index(drop=True)
    for i, f in enumerate(frames[1:], start=1):
        if not f[keys].reset_index(drop=True).equals(first[keys]):
            raise ValueError(f"density of replicate {i} has other groups than replicate 0's")
    for col in ("n_total", "n_neurons"):
        if any(not f[col].reset_index(drop=True).equals(first[col]) for f in frames[1:]):
            raise ValueError(f"density of the replicates differs in {col}: not the same model's neurons")
    count = np.sum([f["count"].to_numpy() for f in frames], axis=0)
    n_tops = np.stack([f["n_top"].to_numpy() for f in frames], axis=1)
    rows = []
    for i, row in first.iterrows():
        total, size = int(row["n_total"]), int(row["n_neurons"])
        pmf = np.ones(1)
        for n_top in map(int, n_tops[i]):
            pmf = np.convolve(pmf, sps.hypergeom(total, size, n_top).pmf(np.arange(min(size, n_top) + 1)))
        cdf = np.cumsum(pmf)
        pooled_top = int(n_tops[i].sum())
        expected = pooled_top * size / total
        c = int(count[i])
        q_lo, q_hi = int(np.searchsorted(cdf, 0.025)), int(np.searchsorted(cdf, 0.975))
        rows.append(
            {
                **row.to_dict(),
                "n_top": pooled_top,
                "count": c,
                "expected": expected,
                "enrichment": c / expected if expected > 0 else float("nan"),
                "null_lo": q_lo / expected if expected > 0 else float("nan"),
                "null_hi": q_hi / expected if expected > 0 else float("nan"),
                "p_enriched": float(min(1.0, pmf[c:].sum())),
                "p_depleted": float(min(1.0, cdf[c])),
                "n_replicates": len(frames),
            }
        )
    out = pd.DataFrame(rows)
    out["seed"] = out["seed"].astype("Int64")
    out["layer"] = out["layer"].astype("Int64")
    return out


def with_q_values(dens: pd.DataFrame) -> pd.DataFrame:
    """``dens`` (one or more methods' density rows, pooled or not) with ``q_enriched``: the
    Benjamini-Hochberg q-values of ``p_enriched`` within each (method, seed), after ``p_enriched``."""
    out = dens.copy()
    q = pd.Series(np.nan, index=out.index)
    for _, rows in out.groupby(["method", "seed"], dropna=False, sort=False):
        q[rows.index] = bh_qvalues(rows["p_enriched"].to_numpy(dtype=float))
    out.insert(out.columns.get_loc("p_enriched") + 1, "q_enriched", q)
    return out
