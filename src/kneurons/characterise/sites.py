"""Do neurons fire on annotated sites? Per-residue AUROC with a circular-shift permutation test.

Where residue annotations exist (UniProt active/binding sites, synthetic ``motif_sites``), each
neuron's per-residue response, centred on each protein's median, is scored by AUROC for
"annotated residue (+- flank) vs not" within annotated proteins (unannotated proteins are left
out: a missing annotation is not a negative), with a permutation p-value (site tracks circularly
shifted within each protein, which keeps the number and runs of sites and the autocorrelation of
activations) and Benjamini-Hochberg q-values across neurons. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sstats

from kneurons.data.annotations import ParseStats, annotation_columns, site_positions

NO_ANNOTATION = "no residue annotations in the data"


def site_tracks(
    lengths: Sequence[int], sites: Sequence[Sequence[int] | None], flank: int = 0
) -> list[np.ndarray | None]:
    """Per protein a boolean track: residue within ``flank`` of an annotated site (None if unannotated)."""
    tracks: list[np.ndarray | None] = []
    for n, pos in zip(lengths, sites, strict=False):
        if pos is None:
            tracks.append(None)
            continue
        t = np.zeros(n, dtype=bool)
        for p in pos:
            t[max(0, p - 1 - flank) : min(n, p + flank)] = True
        tracks.append(t)
    return tracks


def _auroc_from_ranks(ranks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC (Mann-Whitney) of fixed ranks under one or many label vectors (last axis = residues)."""
    n1 = labels.sum(axis=-1)
    n0 = labels.shape[-1] - n1
    u = (ranks * labels).sum(axis=-1) - n1 * (n1 + 1) / 2.0
    return u / np.maximum(n1 * n0, 1)


def auroc(values: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``values`` for boolean ``labels`` (ties count half)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(_auroc_from_ranks(sstats.rankdata(values), labels.astype(np.float64)))


def site_enrichment(
    responses: Sequence[np.ndarray],
    tracks: Sequence[np.ndarray],
    permutations: int = 1000,
    seed: int = 0,
    chunk: int = 64,
) -> tuple[float, float]:
    """AUROC of one neuron's per-residue response for site residues, and its permutation p-value.

    Only annotated proteins are passed in. The null circularly shifts every protein's site track
    by a random offset: the number and runs of sites per protein stay, their positions move.
    One-sided: p = (1 + #null AUROC >= observed) / (1 + permutations).
    """
    values = np.concatenate(responses)
    labels = np.concatenate(tracks).astype(np.float64)
    if labels.sum() == 0 or labels.sum() == len(labels):
        return float("nan"), float("nan")
    ranks = sstats.rankdata(values)
    observed = float(_auroc_from_ranks(ranks, labels))
    if permutations <= 0:
        return observed, float("nan")
    lengths = np.array([len(t) for t in tracks])
    starts = np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    within = np.concatenate([np.arange(n) for n in lengths])
    rep_len = np.repeat(lengths, lengths)
    rng = np.random.default_rng(seed)
    exceed = 0
    done = 0
    while done < permutations:
        m = min(chunk, permutations - done)
        shifts = rng.integers(0, np.iinfo(np.int64).max, size=(m, len(lengths))) % lengths
        idx = starts + (within + np.repeat(shifts, lengths, axis=1)) % rep_len
        null = _auroc_from_ranks(ranks, labels[idx])
        exceed += int((null >= observed - 1e-12).sum())
        done += m
    return observed, (1 + exceed) / (1 + permutations)


def site_summary(neurons: pd.DataFrame, alpha: float = 0.05, status: str = "") -> pd.DataFrame:
    """Site AUROC per module type, per layer and overall: n, mean, median, share with q < alpha."""
    rows = []
    groups: list[tuple[str, str, pd.DataFrame]] = [("all", "all", neurons)]
    groups += [("module", str(m), g) for m, g in neurons.groupby("module", sort=False)]
    groups += [("layer", str(int(layer)), g) for layer, g in neurons.groupby("layer", sort=True)]
    for by, value, g in groups:
        a = g["site_auroc"].astype(float)
        rows.append(
            {
                "group_by": by,
                "group": value,
                "n_neurons": len(g),
                "n_tested": int(a.notna().sum()),
                "auroc_mean": float(a.mean()) if a.notna().any() else float("nan"),
                "auroc_median": float(a.median()) if a.notna().any() else float("nan"),
                "n_significant": int((g["site_q"] < alpha).sum()),
                "share_significant": float((g["site_q"] < alpha).sum() / a.notna().sum())
                if a.notna().any()
                else float("nan"),
                "auroc_top_class_mean": float(g["site_auroc_top_class"].mean())
                if g["site_auroc_top_class"].notna().any()
                else float("nan"),
                "annotation": status,
            }
        )
    return pd.DataFrame(rows)


@dataclass
class SiteAnnotation:
    """The held-out proteins' site tracks (None: unannotated), which proteins count, and a status line."""

    tracks: list[np.ndarray | None]
    annotated: np.ndarray
    present: list[str]
    stats: ParseStats
    status: str


def held_out_sites(
    proteins: pd.DataFrame, lengths: Sequence[int], site_columns: Sequence[str] | None, flank: int
) -> SiteAnnotation:
    """Site tracks of ``proteins`` from their annotation columns (``site_columns``, or every one present).

    A protein counts as annotated when its track has site and non-site residues; missing
    annotations give the ``NO_ANNOTATION`` status, not an error.
    """
    columns = [c for c in site_columns if c in proteins.columns] if site_columns else None
    present = annotation_columns(proteins[columns] if columns is not None else proteins)
    stats = ParseStats()
    if present:
        sites, stats = site_positions(proteins, present, source="held-out proteins")
        tracks = site_tracks(lengths, sites, flank)
    else:
        tracks = [None] * len(lengths)
    annotated = np.array([t is not None and t.any() and not t.all() for t in tracks])
    status = (
        f"{int(annotated.sum())} of {len(lengths)} held-out proteins annotated ({', '.join(present)})"
        if annotated.any()
        else NO_ANNOTATION + (f" (columns {', '.join(present)} hold no usable sites)" if present else "")
    )
    return SiteAnnotation(tracks, annotated, present, stats, status)
