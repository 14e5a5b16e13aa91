"""The concept stage's tables from its arrays: alignment rows, one row per unit, the concepts' results
and the summary per layer and kind of unit (InterPLM's headline table for this model). Torch-free.

Reading the summary next to InterPLM (Simon & Zou 2025: "SAE features align with up to 143
concepts, neurons with 15", ESM-2 8M, Swiss-Prot concepts): ``concepts_covered`` of the row
``group_by = all`` of each kind is their count of concepts with at least one aligned unit, and
``mean_best_f1`` their "average best F1 per concept" (the unit chosen per concept on validation,
its F1 on test). Here every call also passes the shuffled null, and the thresholds are fixed on
validation, so the counts are, if anything, lower than InterPLM's for the same units; concepts
differ with the data's annotation columns and ``concepts.min_proteins``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kneurons.concepts.alignment import NULL_COLUMNS
from kneurons.concepts.catalogue import Catalogue
from kneurons.vocabulary import FEATURE_MODULE, NEURON_KEY, unit_id

#: The kinds of unit, by the module that holds them.
NEURONS, FEATURES = "neurons", "features"
#: Columns of ``concepts/alignment.tsv``.
ALIGNMENT_COLUMNS: list[str] = [
    *NEURON_KEY,
    "units",
    "concept",
    "control",
    "threshold",
    "precision_val",
    "recall_val",
    "f1_val",
    "precision",
    "recall",
    "f1",
    *NULL_COLUMNS,
    "aligned",
]
#: Columns of ``concepts/units.tsv``.
UNIT_COLUMNS: list[str] = [
    *NEURON_KEY,
    "units",
    "max_train",
    "best_concept",
    "best_f1",
    "catalytic_concept",
    "catalytic_f1",
    "catalytic_aligned",
    "n_aligned",
    "aligned_concepts",
    "n_aligned_controls",
    "ig_score",
    "random_score",
    "knowledge",
]
#: Columns of ``concepts/summary.tsv``.
SUMMARY_COLUMNS: list[str] = [
    "units",
    "group_by",
    "group",
    "n_units",
    "units_aligned",
    "share_aligned",
    "pairs_aligned",
    "concepts_scored",
    "concepts_covered",
    "mean_best_f1",
    "control_units_aligned",
    "control_concepts_covered",
]


def unit_kind(module: str) -> str:
    """``features`` for SAE features (module ``sae``), ``neurons`` otherwise."""
    return FEATURES if module == FEATURE_MODULE else NEURONS


@dataclass
class Scores:
    """Every scored unit's and concept's values: validation precision, recall, F1 at the chosen
    threshold, the chosen threshold's index, test precision, recall, F1 there (units x concepts)."""

    precision_val: np.ndarray
    recall_val: np.ndarray
    f1_val: np.ndarray
    chosen: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray


def _best(values: np.ndarray, choose: np.ndarray, cols: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column of ``cols`` with the largest ``choose`` (first on ties) and ``values`` there
    (-1 and NaN without columns)."""
    if not len(cols):
        n = values.shape[0]
        return np.full(n, -1), np.full(n, np.nan)
    cols = np.asarray(cols)
    at = cols[np.argmax(choose[:, cols], axis=1)]
    return at, values[np.arange(values.shape[0]), at]


def alignment_rows(
    units: pd.DataFrame,
    catalogue: Catalogue,
    scores: Scores,
    thresholds: Sequence[float],
    nulls: pd.DataFrame,
    aligned: np.ndarray,
    top_per_unit: int,
) -> pd.DataFrame:
    """``concepts/alignment.tsv``: per unit its ``top_per_unit`` real concepts by validation F1 (those
    above 0) and every pair above the floor (controls included, with their nulls)."""
    real = np.asarray(catalogue.real())
    order = np.argsort(-scores.f1_val[:, real], axis=1, kind="stable")[:, :top_per_unit]
    top_u = np.repeat(np.arange(len(units)), order.shape[1])
    top_c = real[order.ravel()]
    keep = scores.f1_val[top_u, top_c] > 0
    pairs = pd.DataFrame({"unit": top_u[keep], "concept": top_c[keep]})
    pairs = pd.concat([pairs, nulls[["unit", "concept"]]]).drop_duplicates().sort_values(["unit", "concept"])
    u, c = pairs["unit"].to_numpy(dtype=np.int64), pairs["concept"].to_numpy(dtype=np.int64)
    out = units.iloc[u][[*NEURON_KEY, "units"]].reset_index(drop=True)
    out["concept"] = [catalogue.concepts[i].name for i in c]
    out["control"] = [catalogue.concepts[i].control for i in c]
    out["threshold"] = np.asarray(thresholds, dtype=np.float64)[scores.chosen[u, c]]
    for name in ("precision_val", "recall_val", "f1_val", "precision", "recall", "f1"):
        out[name] = getattr(scores, name)[u, c]
    keys = pd.DataFrame({"unit": u, "concept": c})
    null = keys.merge(
        nulls[["unit", "concept", *NULL_COLUMNS]].astype({"unit": np.int64, "concept": np.int64}), how="left"
    )
    out[NULL_COLUMNS] = null[NULL_COLUMNS].to_numpy(dtype=np.float64)
    out["aligned"] = aligned[u, c]
    return out[ALIGNMENT_COLUMNS]


def unit_table(
    units: pd.DataFrame, catalogue: Catalogue, scores: Scores, aligned: np.ndarray
) -> pd.DataFrame:
    """``concepts/units.tsv``: per scored unit its best concept (chosen on validation, its test F1),
    its best catalytic concept (the same among catalytic ones; F1 0 where it hits none), its aligned
    concepts and how many control concepts it "aligns" with (0 when the controls work)."""
    real = catalogue.real()
    catalytic = [i for i in real if catalogue.concepts[i].catalytic]
    controls = [i for i, c in enumerate(catalogue.concepts) if c.control]
    names = np.array([c.name for c in catalogue.concepts], dtype=object)
    out = units.reset_index(drop=True).copy()
    best, best_f1 = _best(scores.f1, scores.f1_val, real)
    cat, cat_f1 = _best(scores.f1, scores.f1_val, catalytic)
    out["best_concept"] = np.where(best >= 0, names[np.maximum(best, 0)], "")
    out["best_f1"] = best_f1
    out["catalytic_concept"] = np.where(cat >= 0, names[np.maximum(cat, 0)], "")
    out["catalytic_f1"] = cat_f1
    out["catalytic_aligned"] = aligned[:, catalytic].any(axis=1) if catalytic else False
    out["n_aligned"] = aligned[:, real].sum(axis=1)
    out["aligned_concepts"] = [";".join(names[real][row]) for row in aligned[:, real]]
    out["n_aligned_controls"] = aligned[:, controls].sum(axis=1) if controls else 0
    for col in ("ig_score", "random_score", "knowledge"):
        if col not in out.columns:
            out[col] = np.nan
    return out[UNIT_COLUMNS]


def concept_results(
    units: pd.DataFrame, catalogue: Catalogue, scores: Scores, aligned: np.ndarray
) -> pd.DataFrame:
    """``concepts/concepts.tsv``: the catalogue (``Catalogue.table``) and per kind of unit its best
    unit for each concept (chosen on validation), that unit's test F1, and the aligned units."""
    out = catalogue.table()
    kinds = units["units"].to_numpy()
    for kind in (NEURONS, FEATURES):
        rows = np.flatnonzero(kinds == kind)
        if not len(rows):
            continue
        at = rows[np.argmax(scores.f1_val[rows], axis=0)]
        cols = np.arange(len(catalogue.concepts))
        key = units.iloc[at]
        out[f"best_{kind}"] = [unit_id(r.layer, r.module, r.neuron) for r in key.itertuples()]
        out[f"best_{kind}_f1"] = scores.f1[at, cols]
        out[f"aligned_{kind}"] = aligned[rows].sum(axis=0)
    return out


def _group_row(
    kind: str,
    by: str,
    group: str,
    rows: np.ndarray,
    catalogue: Catalogue,
    scores: Scores,
    aligned: np.ndarray,
) -> dict:
    real = catalogue.real()
    controls = [i for i, c in enumerate(catalogue.concepts) if c.control]
    a_real, a_ctrl = aligned[np.ix_(rows, real)], aligned[np.ix_(rows, controls)]
    best = rows[np.argmax(scores.f1_val[np.ix_(rows, real)], axis=0)] if real else np.array([], int)
    mean_best = float(scores.f1[best, real].mean()) if real else float("nan")
    return {
        "units": kind,
        "group_by": by,
        "group": group,
        "n_units": len(rows),
        "units_aligned": int(a_real.any(axis=1).sum()),
        "share_aligned": float(a_real.any(axis=1).mean()) if len(rows) else float("nan"),
        "pairs_aligned": int(a_real.sum()),
        "concepts_scored": len(real),
        "concepts_covered": int(a_real.any(axis=0).sum()),
        "mean_best_f1": mean_best,
        "control_units_aligned": int(a_ctrl.any(axis=1).sum()) if controls else 0,
        "control_concepts_covered": int(a_ctrl.any(axis=0).sum()) if controls else 0,
    }


def summary_table(
    units: pd.DataFrame, catalogue: Catalogue, scores: Scores, aligned: np.ndarray
) -> pd.DataFrame:
    """``concepts/summary.tsv``: per kind of unit, over all its scored units, per layer and per module
    type: units aligned with at least one concept, aligned pairs, concepts covered (with an aligned
    unit), the mean over concepts of the best unit's test F1, and the same counts for the control
    concepts (which should stay at 0)."""
    out = []
    units = units.reset_index(drop=True)
    for kind in (NEURONS, FEATURES):
        of_kind = units[units["units"] == kind]
        if of_kind.empty:
            continue
        groups = [("all", "all", of_kind.index.to_numpy())]
        groups += [("layer", str(int(k)), g.index.to_numpy()) for k, g in of_kind.groupby("layer", sort=True)]
        if kind == NEURONS:
            groups += [
                ("module", str(k), g.index.to_numpy()) for k, g in of_kind.groupby("module", sort=False)
            ]
        out += [_group_row(kind, by, name, rows, catalogue, scores, aligned) for by, name, rows in groups]
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)
