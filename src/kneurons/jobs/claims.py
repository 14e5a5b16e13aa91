"""The claims job: a verdict per claim from the statistics (and characterisation) tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kneurons.errors import InputError
from kneurons.stats.claims import IntactModel, evaluate_claims
from kneurons.tables import (
    read_characterise_table,
    read_concept_table,
    read_intact_metrics,
    read_stats_table,
    write_claims,
    write_verdicts,
)

log = logging.getLogger(__name__)


def _paths(value: Any) -> list[str | Path]:
    """One path or a list of them, as a list."""
    return [value] if isinstance(value, str | Path) else list(value or [])


def intact_model(paths: Sequence[str | Path], part: str | None) -> IntactModel:
    """The intact model on one set from its metrics files (one per replicate for the test split's
    ``model/metrics.json``, ``part`` ``test``; the one pooled ``external/<name>/metrics.json``):
    accuracy averaged over the files, which must agree on the set's size and majority share."""
    if not paths:
        raise InputError("claims: no metrics of the intact model (model/metrics.json) were given")
    metrics = [read_intact_metrics(p, part) for p in paths]
    for key in ("n", "majority_baseline"):
        if len({m[key] for m in metrics}) > 1:
            raise InputError(
                f"claims: the replicates' metrics differ in {key} ({', '.join(map(str, paths))}): "
                "not evaluated on the same proteins"
            )
    return IntactModel(
        accuracy=float(np.mean([m["accuracy"] for m in metrics])),
        n=int(metrics[0]["n"]),
        majority=metrics[0]["majority_baseline"],
    )


def run_claims(
    inputs: Mapping[str, Any],
    settings: Mapping[str, Any],
    out: str | Path,
    verdicts: str | Path | None = None,
) -> pd.DataFrame:
    """Write ``out`` (``stats/claims.tsv``) and, where given, ``verdicts`` (``stats/verdicts.html``,
    the same table rendered for the report's first screen) from ``inputs``: ``random_gap``,
    ``density`` (both pooled over replicates), ``metrics`` (every replicate's ``model/metrics.json``:
    the intact model's test accuracy and majority baseline, for the baseline rule) and, when the
    characterisation ran, ``class_specificity`` (one table per replicate; each class's recall drops
    are averaged over the replicates) and, when SAE features were ablated, ``compactness``
    (``stats/compactness.tsv``, pooled over the replicates: claim 6, test split only) and, when the
    concept stage ran, ``concept_knowledge`` (``concepts/knowledge.tsv``: claim 7, the main run's
    test split). Per external
    set (``settings["external"]``, sorted names): ``external`` (its ``random_gap.tsv``) and
    ``external_metrics`` (its ``metrics.json``), in the order of the names. Returns the claims with
    their numbers at full precision.

    ``settings`` are the rule's params (``kneurons.settings.job_settings('claims', config)``).
    """
    paths = _paths(inputs.get("class_specificity"))
    pooled = None
    if paths:
        frames = [read_characterise_table(p, "class_specificity") for p in paths]
        pooled = (
            pd.concat(frames).groupby("class", sort=True)[["drop_own", "drop_other"]].mean().reset_index()
        )
    compactness = None
    if inputs.get("compactness"):
        compactness = read_stats_table(inputs["compactness"], "compactness")
    concepts = None
    if inputs.get("concept_knowledge"):
        concepts = read_concept_table(inputs["concept_knowledge"], "knowledge")
    n_rep = int(settings.get("replicates", 1))
    parts = [
        evaluate_claims(
            read_stats_table(inputs["random_gap"], "random_gap"),
            read_stats_table(inputs["density"], "density"),
            pooled,
            settings["stats"],
            n_replicates=n_rep,
            intact=intact_model(_paths(inputs.get("metrics")), "test"),
            compactness=compactness,
            concepts=concepts,
        )
    ]
    # External sets: the curve claims (1, 2, 4) on proteins the model never saw (no SAE features: no 6).
    names = list(settings.get("external", []))
    ext_paths = _paths(inputs.get("external"))
    ext_metrics = _paths(inputs.get("external_metrics"))
    if not len(names) == len(ext_paths) == len(ext_metrics):
        raise ValueError(
            f"{len(ext_paths)} external statistics tables and {len(ext_metrics)} metrics files "
            f"for {len(names)} sets {names}"
        )
    for name, path, metrics in zip(names, ext_paths, ext_metrics, strict=True):
        gap = read_stats_table(path, "random_gap")
        rows = evaluate_claims(
            gap,
            None,
            None,
            settings["stats"],
            n_replicates=n_rep,
            set_name=name,
            intact=intact_model([metrics], None),
            random_gap_source=f"external/{name}/random_gap.tsv",
        )
        rows["figure"] = f"external/{name}/curves.tsv"
        parts.append(rows)
    claims = pd.concat(parts, ignore_index=True)
    write_claims(claims, out)
    if verdicts is not None:
        write_verdicts(claims, verdicts)
    for row in claims.itertuples():
        note = f" ({row.note})" if row.note else ""
        log.info(
            "claim %s (%s, %s): %s [%s]%s", row.claim, row.method, row.set, row.verdict, row.statistic, note
        )
    return claims
