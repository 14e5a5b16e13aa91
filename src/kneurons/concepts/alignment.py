"""Which unit-concept pairs are aligned: held-out F1 above a floor and above the pair's shuffled null.

A pair (unit, concept) counts as **aligned** when its test F1 (at the threshold chosen on the
validation proteins, ``kneurons.concepts.metric``) exceeds the floor (``concepts.f1_floor``, 0.5 as
InterPLM) and the 99th percentile of its null distributions: the same F1, same unit, same threshold,
on the test proteins with the concept's labels shuffled (``concepts.shuffles`` draws of each control
of ``kneurons.concepts.catalogue``: positions permuted within each protein; annotations moved to
random proteins). NeuronEval (ICML 2025) found F1 among the few alignment metrics that pass such
sanity checks; the null makes the check part of every call. Only pairs above the floor can be
aligned, so only theirs is drawn (the rest of ``concepts/alignment.tsv`` leaves the null empty).

Torch-free: the null reads the candidate units' scaled test activations, which the job streams in
chunks of units (``kneurons.concepts.activations``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.concepts.catalogue import CONTROLS, SHUFFLES, PartTracks
from kneurons.concepts.metric import concept_hits, f1_scores

#: The null's percentile a pair's F1 must exceed (the issue's "99th percentile").
NULL_QUANTILE = 0.99
#: Null columns of ``concepts/alignment.tsv``, per control.
NULL_COLUMNS = [f"null_{control}_{stat}" for control in CONTROLS for stat in ("p99", "mean")]


def null_f1(
    active: np.ndarray,
    pairs: np.ndarray,
    tracks: PartTracks,
    control: str,
    shuffles: int,
    seed: Sequence[int],
) -> np.ndarray:
    """F1 of units active at ``active`` (residues x units, boolean, the test part) for ``shuffles``
    redraws of one control of a concept (``pairs``): ``(shuffles, units)``.

    The draws come from ``numpy.random.default_rng(seed)``, so a pair's null does not depend on
    which other units are drawn with it.
    """
    rng = np.random.default_rng(list(seed))
    counts = active.sum(axis=0)
    out = np.empty((shuffles, active.shape[1]))
    for s in range(shuffles):
        tp, hits, n = concept_hits(active, SHUFFLES[control](pairs, tracks, rng))
        out[s] = f1_scores(tp, hits, counts, np.array(n))[2]
    return out


def pair_nulls(
    scaled: np.ndarray,
    columns: np.ndarray,
    candidates: pd.DataFrame,
    thresholds: Sequence[float],
    tracks: PartTracks,
    shuffles: int,
    seed: int,
) -> pd.DataFrame:
    """The null of each candidate pair (``candidates``: columns ``unit``, ``concept`` (indices) and
    ``threshold_index``), from the candidate units' scaled test activations ``scaled`` (residues x
    columns; ``columns`` names the unit of each column).

    Returns ``candidates`` with ``NULL_COLUMNS``: each control's 99th percentile and mean.
    """
    col_of = {int(u): i for i, u in enumerate(columns)}
    out = candidates.copy()
    for name in NULL_COLUMNS:
        out[name] = np.nan
    for c, rows in candidates.groupby("concept", sort=True):
        cols = [col_of[int(u)] for u in rows["unit"]]
        thr = np.asarray(thresholds, dtype=np.float32)[rows["threshold_index"].to_numpy()]
        active = scaled[:, cols] > thr
        for k, control in enumerate(CONTROLS):
            null = null_f1(active, tracks.pairs[int(c)], tracks, control, shuffles, (seed, int(c), k))
            out.loc[rows.index, f"null_{control}_p99"] = np.quantile(null, NULL_QUANTILE, axis=0)
            out.loc[rows.index, f"null_{control}_mean"] = null.mean(axis=0)
    return out


def is_aligned(f1_test: np.ndarray | pd.Series, nulls: pd.DataFrame, floor: float) -> np.ndarray:
    """Aligned: test F1 above the floor and above every control's 99th percentile (a pair without a
    null, below the floor, is not aligned)."""
    f1 = np.asarray(f1_test, dtype=np.float64)
    above = f1 > floor
    for control in CONTROLS:
        p99 = nulls[f"null_{control}_p99"].to_numpy(dtype=np.float64)
        above &= f1 > p99  # NaN (no null drawn) compares False
    return above
