"""Where a neuron fires along sequences: responses, best windows, position frequency matrices.

A neuron's *response* is its activation oriented so that "firing" is large. All modes but
``signed`` centre on the neuron's median over held-out residues (q/k/v/fc1 outputs have no
preferred sign). ``top_class`` (default) takes the sign under which the neuron is more active in
proteins of its top class than in the others (IG credits it to that class, so that direction is
what it does for the class); ``tail`` flips the sign when the heavier tail is negative (also
the fallback of ``top_class`` for a neuron without a top class or held-out labels); ``signed``
takes the raw value; ``abs`` the distance from the median. Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from kneurons.errors import InputError

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
ORIENTATIONS = ("top_class", "tail", "signed", "abs")
WINDOW_SOURCES = ("top_class", "all")


def orient_responses(
    acts: list[np.ndarray],
    mode: str = "tail",
    protein_labels: Sequence[str] | None = None,
    neuron_classes: Sequence[Any] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Turn raw activations into responses where "firing" is large; returns ``(responses, sign)``.

    ``tail``: ``sign x (a - median)`` with the sign of the heavier tail (99.5th vs 0.5th
    percentile distance from the median); ``top_class``: the same centring, with the sign under
    which the neuron responds more in proteins of its top class (``neuron_classes``, one per
    neuron) than in the other proteins (``protein_labels``, one per protein), compared as the
    mean over proteins of each protein's mean activation; a neuron without a top class, or whose
    class holds none or all of the proteins, keeps the ``tail`` sign; ``signed``: ``a``;
    ``abs``: ``|a - median|``.
    """
    if mode not in ORIENTATIONS:
        raise InputError(f"unknown response mode {mode!r}; use {', '.join(ORIENTATIONS)}")
    flat = np.concatenate(acts, axis=0) if acts else np.zeros((0, 0))
    n = flat.shape[1] if flat.ndim == 2 else 0
    sign = np.ones(n)
    if mode == "signed":
        return [a.astype(np.float64) for a in acts], sign
    med = np.median(flat, axis=0)
    if mode == "abs":
        return [np.abs(a - med) for a in acts], sign
    hi = np.percentile(flat, 99.5, axis=0) - med
    lo = med - np.percentile(flat, 0.5, axis=0)
    sign = np.where(lo > hi, -1.0, 1.0)
    if mode == "top_class" and protein_labels is not None and neuron_classes is not None and acts:
        labels = np.asarray([str(x) for x in protein_labels])
        means = np.stack([a.mean(axis=0) for a in acts])  # (proteins, neurons)
        for j, cls in enumerate(neuron_classes):
            own = labels == str(cls) if isinstance(cls, str) else np.zeros(len(labels), dtype=bool)
            if own.any() and not own.all():
                diff = means[own, j].mean() - means[~own, j].mean()
                if diff != 0:
                    sign[j] = np.sign(diff)
    return [(a - med) * sign for a in acts], sign


def window_proteins(
    protein_labels: np.ndarray, top_class: Any, mode: str = "top_class"
) -> tuple[np.ndarray, str]:
    """Indices of the proteins a neuron's best windows come from, and which set that is.

    ``top_class``: the proteins of the neuron's top class (``all`` where it has none or the
    class has no proteins here); ``all``: every protein.
    """
    if mode not in WINDOW_SOURCES:
        raise InputError(f"unknown windows_from {mode!r}; use {', '.join(WINDOW_SOURCES)}")
    if mode == "top_class" and isinstance(top_class, str):
        own = np.flatnonzero(np.asarray(protein_labels) == top_class)
        if len(own):
            return own, "top_class"
    return np.arange(len(protein_labels)), "all"


def best_windows(
    responses: Sequence[np.ndarray],
    sequences: Sequence[str],
    width: int = 9,
    n_windows: int = 20,
    per_protein: int = 1,
    seed: int | None = 0,
) -> pd.DataFrame:
    """The ``n_windows`` highest-responding windows of one neuron (``responses``: one 1-D array per protein).

    Each window is centred on a peak residue (``center``, 1-based) and padded with ``-`` at
    sequence ends; at most ``per_protein`` non-overlapping peaks are taken from each protein.
    Returns ``protein, center, value, window`` sorted by value, best first.

    Ties are common (in layer 0, ``v_proj`` depends on the residue alone, so every occurrence of
    a residue responds the same): they are broken at random with ``seed``, between residues of a
    protein and between proteins, so neither the N-terminus nor the order of the proteins (a
    split sorted by class) decides which windows are read. ``seed=None`` takes the first.
    """
    left = (width - 1) // 2
    right = width - 1 - left
    rng = np.random.default_rng(seed) if seed is not None else None
    rows = []
    for p, (r, seq) in enumerate(zip(responses, sequences, strict=False)):
        r = np.asarray(r, dtype=np.float64).copy()
        for _ in range(min(per_protein, len(r))):
            best = r.max() if len(r) else -np.inf
            if not np.isfinite(best):
                break
            tied = np.flatnonzero(r == best)
            i = int(tied[0] if rng is None or len(tied) == 1 else rng.choice(tied))
            padded = "-" * left + seq + "-" * right
            rows.append(
                {"protein": p, "center": i + 1, "value": float(r[i]), "window": padded[i : i + width]}
            )
            r[max(0, i - width + 1) : i + width] = -np.inf
    df = pd.DataFrame(rows, columns=["protein", "center", "value", "window"])
    if rng is not None and len(df):
        df = df.iloc[rng.permutation(len(df))]
    return df.sort_values("value", ascending=False, kind="stable").head(n_windows).reset_index(drop=True)


def window_responses(responses: Sequence[np.ndarray], windows: pd.DataFrame, width: int) -> pd.DataFrame:
    """The response at every residue of each window of ``best_windows`` (NaN on end padding).

    ``responses``: the neuron's 1-D responses per protein, indexed as ``windows["protein"]``.
    Returns one row per window residue: ``protein, center, position`` (0-based within the
    window) and ``response``, in window order; what the atlas colours each residue by.
    """
    left = (width - 1) // 2
    rows = []
    for p, center in zip(windows["protein"].to_numpy(), windows["center"].to_numpy(), strict=True):
        r = np.asarray(responses[int(p)], dtype=np.float64)
        at = int(center) - 1 - left + np.arange(width)
        inside = (at >= 0) & (at < len(r))
        values = np.full(width, np.nan)
        values[inside] = r[at[inside]]
        rows.append(
            pd.DataFrame(
                {"protein": int(p), "center": int(center), "position": np.arange(width), "response": values}
            )
        )
    if not rows:
        return pd.DataFrame(columns=["protein", "center", "position", "response"])
    return pd.concat(rows, ignore_index=True)


def position_frequency_matrix(windows: Iterable[str], width: int) -> pd.DataFrame:
    """Counts of the 20 standard residues at each window position (rows 0..width-1; gaps ignored)."""
    counts = np.zeros((width, len(AMINO_ACIDS)), dtype=np.int64)
    index = {a: j for j, a in enumerate(AMINO_ACIDS)}
    for w in windows:
        for i, a in enumerate(w[:width]):
            j = index.get(a)
            if j is not None:
                counts[i, j] += 1
    return pd.DataFrame(counts, columns=list(AMINO_ACIDS), index=pd.RangeIndex(width, name="position"))


def consensus(pfm: pd.DataFrame, min_frequency: float = 0.3) -> str:
    """Most frequent residue per position, ``-`` where it makes up less than ``min_frequency``."""
    total = pfm.sum(axis=1).to_numpy()
    best = pfm.to_numpy().argmax(axis=1)
    freq = np.divide(pfm.to_numpy().max(axis=1), total, out=np.zeros(len(pfm)), where=total > 0)
    return "".join(pfm.columns[b] if f >= min_frequency else "-" for b, f in zip(best, freq, strict=False))


def motif_match(cons: str, motif: str) -> int:
    """Best number of motif residues matched by the consensus over all (partial) alignments.

    The motif may hang over either end of the consensus by up to half its length; unmatched or
    overhanging motif residues count as misses.
    """
    best = 0
    for offset in range(-(len(motif) // 2), len(cons) - len(motif) + len(motif) // 2 + 1):
        hits = sum(1 for j, a in enumerate(motif) if 0 <= offset + j < len(cons) and cons[offset + j] == a)
        best = max(best, hits)
    return best
