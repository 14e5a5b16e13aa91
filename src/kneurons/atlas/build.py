"""The atlas's data: everything the page shows, gathered from the result tables into one JSON object.

Only tables are read (through ``kneurons.tables``), so the atlas is rebuilt without the model.
Each optional input that is missing leaves its part of the page with a note saying so. SAE
features (``units.features``) are units beside the neurons: ranked among the features and picked
by the same caps, applied to them separately; without feature inputs the data is the neurons'
alone. Torch-free.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kneurons.atlas.concepts import (
    annotate_rows,
    concept_details,
    concept_names,
    concept_overview,
    concept_units,
)
from kneurons.atlas.features import feature_overview
from kneurons.atlas.neurons import (
    MethodRanking,
    class_profiles,
    neuron_id,
    neuron_rows,
    rank_method,
    select_neurons,
)
from kneurons.atlas.records import png_uri, records
from kneurons.ranking import NeuronLayout
from kneurons.scoring.registry import get as method_spec
from kneurons.stats.keys import first_fill, with_fill
from kneurons.tables import (
    read_characterise_table,
    read_claims,
    read_metrics,
    read_score_table,
    read_stats_table,
)
from kneurons.tables.claims import claimed_text, claims_text, robust_text
from kneurons.vocabulary import MODULE_TYPES, NEURON_KEY

log = logging.getLogger(__name__)

#: Overview figures, in page order: file stem -> heading.
OVERVIEW_FIGURES = {
    "accuracy_preserve": "Accuracy when only the top f neurons are preserved",
    "accuracy_suppress": "Accuracy when the top f neurons are suppressed",
    "density": "Density of knowledge neurons (layer x module type)",
    "training_curve": "Fine-tuning curve",
    "confusion_matrix": "Test confusion matrix",
}


@dataclass
class AtlasInputs:
    """Paths of the tables the atlas reads; ``None`` (or absent from a dict) = not available."""

    scores: dict[str, Path]  # method -> gathered score table
    density: Path
    random_gap: Path | None = None
    metrics: Path | None = None
    figures: dict[str, Path] = field(default_factory=dict)  # OVERVIEW_FIGURES stem -> png
    characterise: dict[str, Path] = field(default_factory=dict)  # characterise/<name>.tsv by name
    claims: Path | None = None
    curves: Path | None = None  # stats/curves.tsv: the curves' intact accuracy (mean of replicates)
    # SAE features (units.features); all empty / None without them, and the page is the neurons' alone
    feature_scores: dict[str, Path] = field(default_factory=dict)  # method -> features/scores table
    feature_characterise: dict[str, Path] = field(default_factory=dict)  # features/characterise/<name>.tsv
    sae_report: Path | None = None  # features/saes.json
    sae_quality: Path | None = None  # features/stats/sae_quality.tsv (every replicate)
    feature_random_gap: Path | None = None  # features/stats/random_gap.tsv
    compactness: Path | None = None  # stats/compactness.tsv (claim 6)
    # concepts/<name>.tsv and info.json (the concept stage); empty without it
    concepts: dict[str, Path] = field(default_factory=dict)


def density_grid(density: pd.DataFrame) -> dict[str, Any]:
    """Per method, the layer x module-type enrichment (first seed of random); for the neuron panel."""
    grid: dict[str, Any] = {}
    rows = density[density["level"] == "layer_module"]
    for method, g in rows.groupby("method", sort=False):
        if g["seed"].notna().any():
            g = g[g["seed"] == g["seed"].min()]
        layers = sorted(int(x) for x in g["layer"].dropna().unique())
        cells = {(int(r.layer), str(r.module)): float(r.enrichment) for r in g.itertuples(index=False)}
        grid[str(method)] = {
            "layers": layers,
            "modules": [m for m in MODULE_TYPES if any(k[1] == m for k in cells)],
            "enrichment": {f"L{k[0]}.{k[1]}": (v if np.isfinite(v) else None) for k, v in cells.items()},
        }
    return grid


def _details(char: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """Per characterised neuron (by id): its position frequency matrix and its best windows with
    the response at every residue."""
    out: dict[str, Any] = {}
    pfm, windows, acts = char.get("pfm"), char.get("windows"), char.get("window_activations")
    if pfm is not None:
        for key, g in pfm.groupby(NEURON_KEY, sort=False):
            wide = g.pivot_table(index="position", columns="residue", values="count", aggfunc="sum")
            out.setdefault(neuron_id(*key), {})["pfm"] = {
                "residues": [str(c) for c in wide.columns],
                "counts": wide.fillna(0).astype(int).to_numpy().tolist(),
            }
    by_window: dict[tuple, list[float | None]] = {}
    if acts is not None:
        for key, g in acts.groupby([*NEURON_KEY, "accession", "center"], sort=False):
            g = g.sort_values("position")
            by_window[tuple(key)] = [None if pd.isna(v) else float(v) for v in g["response"]]
    if windows is not None:
        for key, g in windows.groupby(NEURON_KEY, sort=False):
            wins = []
            for w in g.itertuples(index=False):
                k = (*key, w.accession, w.center)
                wins.append(
                    {
                        "accession": str(w.accession),
                        "label": str(w.label),
                        "center": int(w.center),
                        "value": float(w.value),
                        "window": str(w.window),
                        "responses": by_window.get(k),
                    }
                )
            out.setdefault(neuron_id(*key), {})["windows"] = wins
    return out


#: Decimals of recalls and their changes in the neuron panel: a thousandth of a class's proteins
#: is finer than any test split resolves, and sums of float rates carry noise (``1.76e-17`` for 0).
RATE_DECIMALS = 3
#: Class-specificity columns that are recalls, their changes or ratios (rounded); counts and the
#: p-value are shown as they are.
_SPECIFICITY_RATES = frozenset(
    f"{prefix}_{stat}" for prefix in ("random_diff", "random_ratio") for stat in ("mean", "lo", "hi")
) | {"recall_base", "drop_own", "drop_other", "specificity_diff", "specificity_ratio"}


def _rate(x: float) -> float:
    return round(float(x), RATE_DECIMALS) + 0.0  # + 0.0: no -0.0


def _suppression(char: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """Per class set: the recall change of every class when that class's neurons are suppressed,
    and the set's specificity against random sets (the first fill's), rates rounded to ``RATE_DECIMALS``."""
    out: dict[str, Any] = {}
    matrix, spec = char.get("class_suppression"), char.get("class_specificity")
    # the first fill's (ablate.fills), as the class-specificity figure shows
    matrix = first_fill(matrix)[0] if matrix is not None else None
    spec = first_fill(spec)[0] if spec is not None else None
    if matrix is not None:
        for label, g in matrix.groupby("suppressed", sort=True):
            out[str(label)] = {
                "recall_change": {str(r.evaluated): _rate(r.recall_change) for r in g.itertuples(index=False)}
            }
    if spec is not None:
        for r in records(spec):
            rounded = {k: _rate(v) if k in _SPECIFICITY_RATES and v is not None else v for k, v in r.items()}
            out.setdefault(str(r["class"]), {})["specificity"] = rounded
    return out


def _class_sets(class_neurons: pd.DataFrame | None) -> dict[str, list[str]]:
    if class_neurons is None:
        return {}
    sets = class_neurons.groupby(NEURON_KEY)["label"].apply(lambda s: sorted(map(str, s)))
    return {neuron_id(*k): v for k, v in sets.items()}


def _read_characterise(paths: Mapping[str, Path]) -> dict[str, pd.DataFrame]:
    return {name: read_characterise_table(p, name) for name, p in paths.items()}


def _claims_view(claims: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader needs, numbers as the claims table writes them (``claims_text``, which
    also rounds an older full-precision table): estimate with its interval, p-value (``< 0.001`` at
    the bootstrap's floor), claimed direction and margin, replicates, verdict, and where the table
    has them the fill, whether the verdict holds under every fill (``robust_text``) and the ``note``.

    A table without the statistics columns (an older or hand-made one) is shown as it is.
    """
    if not {"estimate", "ci_lo", "ci_hi", "p_value", "statement"} <= set(claims.columns):
        return claims
    text = claims_text(claims).fillna("").astype(str)
    for col in ("direction", "margin"):
        if col not in text.columns:
            text[col] = ""
    view = pd.DataFrame(
        {
            "claim": text["claim"],
            "statement": text["statement"],
            "method": text["method"],
            "set": text["set"],
            "statistic": text["statistic"],
            "estimate [interval]": text["estimate"] + " [" + text["ci_lo"] + ", " + text["ci_hi"] + "]",
            "p": text["p_value"],
            "claimed": [claimed_text(d, m) for d, m in zip(text["direction"], text["margin"], strict=True)],
            "replicates": text["n_replicates"],
            "verdict": text["verdict"],
        }
    )
    if "fill" in text.columns and text["fill"].str.strip().ne("").any():
        view.insert(view.columns.get_loc("set") + 1, "fill", text["fill"])
    if "robust" in text.columns and text["robust"].str.strip().ne("").any():
        others = text["other_fills"] if "other_fills" in text.columns else [""] * len(text)
        view["same verdict under every fill"] = [
            robust_text(r, o) for r, o in zip(text["robust"], others, strict=True)
        ]
    if "note" in text.columns and text["note"].str.strip().ne("").any():
        view["note"] = text["note"]
    return view


def _intact(curves: Path | None) -> dict[str, Any] | None:
    """The curves' intact accuracy: the mean over the replicates on the ablation's evaluated test
    proteins (``stats/curves.tsv``'s ``full_accuracy``), which the curves' dashed line shows."""
    if curves is None:
        return None
    c = read_stats_table(curves, "curves")
    if c.empty or "full_accuracy" not in c.columns:
        return None
    first = c.iloc[0]
    reps = (
        int(first["n_replicates"]) if "n_replicates" in c.columns and pd.notna(first["n_replicates"]) else 1
    )
    n_test = int(first["n_test"]) if "n_test" in c.columns and pd.notna(first["n_test"]) else None
    return {"accuracy": float(first["full_accuracy"]), "n_replicates": reps, "n_test": n_test}


def _overview(inputs: AtlasInputs) -> dict[str, Any]:
    """Claims (when the table exists), the gap to random of the global scope, test metrics, figures,
    and the SAE section (None without feature inputs)."""
    claims = None
    if inputs.claims is not None and Path(inputs.claims).exists():
        claims = records(_claims_view(read_claims(inputs.claims)))
    gap = None
    if inputs.random_gap is not None:
        g = with_fill(read_stats_table(inputs.random_gap, "random_gap"))
        g = g[g["scope"] == "global"]
        gap = records(g[["method", "mode", "fill", "auc_gap", "ci_lo", "ci_hi"]])
    metrics = None
    if inputs.metrics is not None:
        m = read_metrics(inputs.metrics)
        metrics = {
            split: {k: v for k, v in (m.get(split) or {}).items() if isinstance(v, int | float)}
            for split in ("val", "test")
            if isinstance(m.get(split), dict)
        }
    figures = [
        {"name": stem, "title": title, "src": png_uri(path) if (path := inputs.figures.get(stem)) else None}
        for stem, title in OVERVIEW_FIGURES.items()
    ]
    floors = sorted({str(r["p"]) for r in claims or [] if str(r.get("p", "")).startswith("<")})
    return {
        "claims": claims,
        "p_floors": floors,
        "random_gap": gap,
        "metrics": metrics,
        "intact": _intact(inputs.curves),
        "figures": figures,
        "features": feature_overview(
            inputs.sae_report,
            inputs.feature_random_gap,
            inputs.compactness,
            inputs.figures,
            inputs.sae_quality,
        ),
    }


@dataclass(frozen=True)
class _Units:
    """One kind of unit (neurons, or SAE features) as the page shows it."""

    total: int
    rankings: list[MethodRanking]
    rows: list[dict]
    char: dict[str, pd.DataFrame]


def _units(
    tables: Mapping[str, pd.DataFrame],
    char_paths: Mapping[str, Path],
    settings: Mapping[str, Any],
    what: str,
    concepts: Mapping[str, Path] | None = None,
    kind: str = "neurons",
) -> _Units:
    """Rank every unit of ``tables`` (one score table per method, one kind of unit) as the ablation
    does and pick the shown ones: the characterised, the units of ``kind`` aligned with a concept
    (``concepts``: the concept stage's tables), then each method's top ``atlas.top_per_method``, at
    most ``atlas.max_neurons``."""
    a = settings["atlas"]
    methods = list(tables)
    layout = NeuronLayout.from_scores(tables[methods[0]], f"{methods[0]} {what} scores")
    top_fraction, normalise = settings["stats"]["top_fraction"], settings["ablate"]["normalise"]
    rankings = [rank_method(tables[m], m, layout, top_fraction, normalise) for m in methods]
    char = _read_characterise(char_paths)
    characterised = char.get("neurons")
    first = (
        layout.flat_of(characterised, str(char_paths["neurons"]))
        if characterised is not None
        else np.zeros(0, np.int64)
    )
    first = np.concatenate([first, concept_units(concepts or {}, layout, kind)])
    flat = select_neurons(rankings, first, a["top_per_method"], a["max_neurons"])
    profiles = class_profiles(tables.get("ig"), layout.keys(flat))
    sets = _class_sets(char.get("class_neurons"))
    rows = neuron_rows(layout, rankings, flat, characterised, profiles, sets)
    log.info("atlas: %d of %d %s (cap %d)", len(rows), layout.total, what, a["max_neurons"])
    return _Units(layout.total, rankings, rows, char)


def build_atlas(inputs: AtlasInputs, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The atlas's data from its input tables; ``settings``: the ``atlas`` rule's params.

    With SAE feature score tables, ``features`` holds the features' rows (ranked among the
    features, the same caps applied to them separately), and their panels join ``details``.
    """
    a = settings["atlas"]
    methods = [m for m in settings["methods"] if m in inputs.scores]
    neurons = _units(
        {m: read_score_table(inputs.scores[m])[0] for m in methods},
        inputs.characterise,
        settings,
        "neurons",
        inputs.concepts,
    )
    rankings, rows = neurons.rankings, neurons.rows
    data = {
        "methods": [
            {"name": m, "label": method_spec(m).label, "colour": method_spec(m).colour, "random_seed": r.seed}
            for m, r in zip(methods, rankings, strict=True)
        ],
        "n_neurons_total": neurons.total,
        "n_shown": len(rows),
        "cap": {
            "max_neurons": a["max_neurons"],
            "top_per_method": a["top_per_method"],
            "capped": len(rows) == a["max_neurons"],
        },
        "top_fraction": settings["stats"]["top_fraction"],
        "normalise": settings["ablate"]["normalise"],
        "alpha": settings["characterise"]["alpha"],
        "neurons": rows,
        "details": _details(neurons.char),
        "suppression": _suppression(neurons.char),
        "density": density_grid(read_stats_table(inputs.density, "density")),
        "overview": _overview(inputs),
    }
    feature_methods = [m for m in settings["methods"] if m in inputs.feature_scores]
    if feature_methods:
        tables = {m: read_score_table(inputs.feature_scores[m])[0] for m in feature_methods}
        features = _units(
            tables, inputs.feature_characterise, settings, "SAE features", inputs.concepts, "features"
        )
        data["features"] = {
            "methods": feature_methods,
            "n_total": features.total,
            "n_shown": len(features.rows),
            "capped": len(features.rows) == a["max_neurons"],
            "rows": features.rows,
            "saes": data["overview"]["features"]["saes"] if data["overview"]["features"] else [],
        }
        data["details"].update(_details(features.char))
    _add_concepts(data, inputs)
    return data


def _add_concepts(data: dict[str, Any], inputs: AtlasInputs) -> None:
    """Each shown unit's concepts (row and panel), the concept filter and the overview's concept
    section (``kneurons.atlas.concepts``); nothing without the concept stage's tables."""
    rows = data["neurons"] + (data["features"]["rows"] if "features" in data else [])
    annotate_rows(rows, inputs.concepts)
    for uid, found in concept_details(inputs.concepts, {r["id"] for r in rows}).items():
        data["details"].setdefault(uid, {})["concepts"] = found
    data["concept_names"] = concept_names(rows)
    data["overview"]["concepts"] = concept_overview(inputs.concepts, inputs.figures)
