"""The atlas's concepts (``results/concepts/``): each unit's aligned concepts and best concept, its
alignment rows for its panel, the concepts to filter units by, and the overview's concept section
(the summary's headline rows, claim 7's table and the concept figures).

Aligned units join the atlas's rows (``concept_units``: after the characterised ones, under the same
cap), so that filtering by a concept shows the units aligned with it. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kneurons.atlas.records import png_uri, records
from kneurons.ranking import NeuronLayout
from kneurons.tables import read_concept_table, read_concepts_info
from kneurons.vocabulary import NEURON_KEY, unit_id

#: The concept section's figures, in page order: file stem -> heading.
CONCEPT_FIGURES = {
    "concepts_units_aligned": "Units aligned with a concept, per layer and module type",
    "concepts_covered": "Each concept's best neuron and best SAE feature against its controls",
    "concepts_knowledge": "Claim 7: the knowledge units' catalytic-concept F1",
}
#: Columns of a unit's alignment rows shown in its panel.
PANEL_COLUMNS = [
    "concept",
    "threshold",
    "precision",
    "recall",
    "f1_val",
    "f1",
    "null_within_p99",
    "null_across_p99",
    "aligned",
]
#: Decimals of the F1s and shares the page shows (three, as the rest of the page).
DECIMALS = 3


def concept_units(paths: Mapping[str, Path], layout: NeuronLayout, kind: str) -> np.ndarray:
    """Flat indices (over ``layout``) of the units of ``kind`` aligned with at least one concept."""
    if "units" not in paths:
        return np.zeros(0, np.int64)
    units = read_concept_table(paths["units"], "units")
    aligned = units[(units["units"] == kind) & (units["n_aligned"] > 0)]
    return layout.flat_of(aligned[NEURON_KEY], str(paths["units"])) if len(aligned) else np.zeros(0, np.int64)


def _round(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else round(float(x), DECIMALS) + 0.0


def annotate_rows(rows: list[dict], paths: Mapping[str, Path]) -> None:
    """Give every atlas row its ``concepts`` (aligned, by name), ``best_concept`` and its test F1
    (empty for a unit the concept stage did not score); rows stay unchanged without the stage."""
    if "units" not in paths:  # no concept stage: the rows stay as they were
        return
    by_id: dict[str, dict] = {}
    units = read_concept_table(paths["units"], "units")
    for r in units.itertuples(index=False):
        by_id[unit_id(r.layer, r.module, r.neuron)] = {
            "concepts": [c for c in str(r.aligned_concepts).split(";") if c],
            "best_concept": r.best_concept or None,
            "best_concept_f1": _round(r.best_f1),
        }
    for row in rows:
        row.update(by_id.get(row["id"], {"concepts": [], "best_concept": None, "best_concept_f1": None}))


def concept_details(paths: Mapping[str, Path], ids: set[str]) -> dict[str, list[dict]]:
    """Per shown unit (by id), its rows of ``concepts/alignment.tsv`` (real concepts; controls are
    the stage's sanity check, shown in its figures), best first."""
    if "alignment" not in paths:
        return {}
    align = read_concept_table(paths["alignment"], "alignment")
    align = align[align["control"] == ""]
    align = align.assign(id=[unit_id(a, b, c) for a, b, c in align[NEURON_KEY].itertuples(index=False)])
    align = align[align["id"].isin(ids)].sort_values(["id", "f1"], ascending=[True, False])
    out: dict[str, list[dict]] = {}
    for uid, g in align.groupby("id", sort=False):
        rows = records(g[PANEL_COLUMNS])
        for r in rows:
            for k in PANEL_COLUMNS[1:-1]:
                r[k] = _round(r[k])
        out[str(uid)] = rows
    return out


def concept_overview(paths: Mapping[str, Path], figures: Mapping[str, Path]) -> dict[str, Any] | None:
    """The overview's concept section: the stage's status and criterion, the summary's ``all`` rows
    per kind of unit, claim 7's table and the figures; None without the concept stage's tables."""
    if "summary" not in paths:
        return None
    info = read_concepts_info(paths["info"]) if "info" in paths else {}
    summary = read_concept_table(paths["summary"], "summary")
    headline = summary[summary["group_by"] == "all"][
        [
            "units",
            "n_units",
            "units_aligned",
            "pairs_aligned",
            "concepts_scored",
            "concepts_covered",
            "mean_best_f1",
            "control_units_aligned",
        ]
    ]
    knowledge = None
    if "knowledge" in paths:
        k = read_concept_table(paths["knowledge"], "knowledge").dropna(subset=["f1_gap"])
        cols = ["units", "n_knowledge", "f1_knowledge", "f1_random", "f1_gap", "ci_lo", "ci_hi", "p_value"]
        knowledge = records(k[[*cols, "spearman_ig", "spearman_random"]]) or None
    return {
        "status": info.get("status", ""),
        "f1_floor": info.get("f1_floor"),
        "shuffles": info.get("shuffles"),
        "summary": records(headline),
        "knowledge": knowledge,
        "figures": [
            {"name": stem, "title": title, "src": png_uri(path) if (path := figures.get(stem)) else None}
            for stem, title in CONCEPT_FIGURES.items()
        ],
    }


def concept_names(rows: list[dict]) -> list[str]:
    """The concepts some shown unit is aligned with, sorted: the page's concept filter."""
    return sorted({c for r in rows for c in r.get("concepts", [])})
