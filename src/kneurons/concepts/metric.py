"""The concept alignment metric (InterPLM's F1 per unit and concept), from counts. Torch-free.

Definition (Simon & Zou, Nature Methods 2025, "InterPLM"; their code:
``interplm/concept/compare_activations_to_concepts.py`` and ``report_final_metrics.py``; this is our
own implementation of it):

* a unit's activation at a residue is scaled by the unit's maximum over the training proteins
  (a unit whose maximum is not positive never counts as active);
* at each threshold ``t`` (0, 0.15, 0.5, 0.6, 0.8), the unit is *active* at residues whose scaled
  activation exceeds ``t``;
* **precision**: the share of active residues that lie inside the concept (all residues of the part
  count, annotated or not, as in InterPLM);
* **recall**: the share of the concept's annotation instances with at least one active residue
  (InterPLM's ``recall_per_domain``; for one-residue features, such as active sites, this is the
  share of the concept's residues);
* **F1** = 2 P R / (P + R) (0 when both are 0);
* the threshold is chosen per unit and concept on the validation proteins (largest F1; ties go to
  the higher threshold, the sparser reading), and the F1 is reported on the test proteins at it.
  InterPLM's report script matches validation and test on the (feature, concept) pair and keeps the
  best test row over thresholds; fixing the threshold on validation, as here, gives the same or a
  lower test F1 for the same pair.

``Counts`` holds what the metric needs of a unit's activations on one part, so the model's
activations can be streamed (``kneurons.concepts.activations``) and never held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kneurons.concepts.catalogue import PartTracks


@dataclass
class Counts:
    """Per unit and threshold, its active residues on one part; per unit, threshold and concept, its
    active residues inside the concept (``tp``) and the concept's instances it hits (``hits``)."""

    active: np.ndarray  # (units, thresholds) int64
    tp: np.ndarray  # (units, thresholds, concepts) int64
    hits: np.ndarray  # (units, thresholds, concepts) int64

    @classmethod
    def zeros(cls, units: int, thresholds: int, concepts: int) -> Counts:
        """Counts of nothing seen yet."""
        return cls(
            np.zeros((units, thresholds), np.int64),
            np.zeros((units, thresholds, concepts), np.int64),
            np.zeros((units, thresholds, concepts), np.int64),
        )

    def add(self, other: Counts, units: slice | np.ndarray = slice(None)) -> None:
        """Add ``other`` (counts of some proteins) into the rows ``units`` of these counts."""
        self.active[units] += other.active
        self.tp[units] += other.tp
        self.hits[units] += other.hits


def scaled_activations(acts: np.ndarray, maxima: np.ndarray) -> np.ndarray:
    """``acts`` (residues x units) divided by each unit's training maximum, in float32; a unit whose
    maximum is not positive gets 0 everywhere (never above a threshold >= 0)."""
    scale = np.where(maxima > 0, maxima, np.inf).astype(np.float32)
    return np.asarray(acts, dtype=np.float32) / scale


def concept_hits(active: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``(tp, hits, instances)`` of one concept for boolean ``active`` (residues x units): active
    residues inside it per unit, its instances with an active residue per unit, and its instances."""
    units = active.shape[1]
    if not len(pairs):
        return np.zeros(units, np.int64), np.zeros(units, np.int64), 0
    tp = active[np.unique(pairs[:, 0])].sum(axis=0)
    order = np.argsort(pairs[:, 1], kind="stable")
    instance = pairs[order, 1]
    starts = np.flatnonzero(np.r_[True, instance[1:] != instance[:-1]])
    hit = np.logical_or.reduceat(active[pairs[order, 0]], starts, axis=0)
    return tp.astype(np.int64), hit.sum(axis=0).astype(np.int64), len(starts)


def count_part(
    acts: np.ndarray, maxima: np.ndarray, thresholds: Sequence[float], tracks: PartTracks
) -> Counts:
    """The ``Counts`` of units whose activations on every residue of a part are ``acts``
    (residues x units, the part's proteins end to end): the reference the streamed counts equal."""
    scaled = scaled_activations(acts, maxima)
    out = Counts.zeros(scaled.shape[1], len(thresholds), len(tracks.pairs))
    for t, thr in enumerate(thresholds):
        active = scaled > np.float32(thr)
        out.active[:, t] = active.sum(axis=0)
        for c, pairs in enumerate(tracks.pairs):
            out.tp[:, t, c], out.hits[:, t, c], _ = concept_hits(active, pairs)
    return out


def f1_scores(
    tp: np.ndarray, hits: np.ndarray, active: np.ndarray, instances: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from counts: ``tp`` and ``hits`` (any shape ending in concepts),
    ``active`` (broadcast against them), ``instances`` (per concept). Undefined shares are 0."""
    tp, hits = tp.astype(np.float64), hits.astype(np.float64)
    active = np.broadcast_to(np.asarray(active, dtype=np.float64), tp.shape)
    instances = np.broadcast_to(np.asarray(instances, dtype=np.float64), tp.shape)
    precision = np.divide(tp, active, out=np.zeros_like(tp), where=active > 0)
    recall = np.divide(hits, instances, out=np.zeros_like(hits), where=instances > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return precision, recall, f1


def part_scores(counts: Counts, instances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 (units x thresholds x concepts) of one part's counts."""
    return f1_scores(counts.tp, counts.hits, counts.active[:, :, None], instances)


def choose_thresholds(f1_val: np.ndarray) -> np.ndarray:
    """Per unit and concept, the index of the threshold with the largest validation F1
    (``f1_val``: units x thresholds x concepts); ties go to the higher threshold."""
    reversed_best = np.argmax(f1_val[:, ::-1, :], axis=1)
    return f1_val.shape[1] - 1 - reversed_best


def at_thresholds(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """``values`` (units x thresholds x concepts) at each unit's and concept's ``chosen`` threshold."""
    return np.take_along_axis(values, chosen[:, None, :], axis=1)[:, 0, :]
