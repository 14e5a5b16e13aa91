"""The planted-knowledge benchmark's torch-free jobs: its task's proteins, and its statistics.

The model jobs (base, plantings, ablations, ground truth) are ``kneurons.jobs.planted``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.data.split import stratified_split
from kneurons.data.synthetic import PARITY_LABELS, generate_parity_task
from kneurons.errors import InputError
from kneurons.jobs.stats import curve_statistics
from kneurons.planted.design import membership, variant_module
from kneurons.planted.recovery import Planting, rankings, recovery, verdicts
from kneurons.ranking import NeuronLayout
from kneurons.scoring.subset import select_scoring_set
from kneurons.tables import (
    load_ablation,
    read_intact_metrics,
    read_score_table,
    write_claims,
    write_classes,
    write_result_table,
    write_scoring_set,
    write_split,
    write_stats_tables,
    write_verdicts,
)
from kneurons.tables.planted import read_ground_truth, read_planted_units, read_selections

log = logging.getLogger(__name__)


def run_planted_data(settings: Mapping[str, Any], out: Mapping[str, str | Path]) -> pd.DataFrame:
    """The parity task's proteins (``kneurons.data.synthetic.generate_parity_task``), split like the
    run's data (``split.fractions``, stratified, ``seed``), its class table and its scoring set
    (``score.split``, ``score.max_sequences``). ``out``: ``split``, ``classes``, ``motifs``,
    ``scoring_set``. ``settings``: ``planted.task``, ``split.fractions``, ``score``, ``seed``."""
    task = settings["planted"]["task"]
    proteins, motifs = generate_parity_task(**task, seed=int(settings["seed"]))
    split = stratified_split(proteins, settings["split"]["fractions"], int(settings["seed"]))
    classes = pd.DataFrame(
        {
            "label_index": range(len(PARITY_LABELS)),
            "label": PARITY_LABELS,
            "name": [f"{label} number of the {task['motifs']} motifs" for label in PARITY_LABELS],
            "n": [int((split["label"] == label).sum()) for label in PARITY_LABELS],
        }
    )
    score = settings["score"]
    subset = select_scoring_set(split, classes, score["split"], score["max_sequences"], int(settings["seed"]))
    write_split(split, out["split"])
    write_classes(classes, out["classes"])
    write_result_table(motifs, out["motifs"])
    write_scoring_set(subset, out["scoring_set"])
    log.info(
        "parity task: %d proteins (%s), %d motifs; scoring set %d",
        len(split),
        split["split"].value_counts().to_dict(),
        len(motifs),
        len(subset),
    )
    return split


def run_planted_curves(
    tables: Sequence[Sequence[str | Path]],
    predictions: Sequence[Sequence[str | Path]],
    settings: Mapping[str, Any],
    out: Mapping[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """The run's curve statistics (``curves``, ``summary``, ``random_gap``, ``paired_tests``; as
    ``kneurons.jobs.stats.curve_statistics``) over one variant's plantings: ``tables[r]`` /
    ``predictions[r]`` are replicate ``r``'s ablation tables (every method and scope) under the
    pretrained fill. Each replicate plants its own S, so "replicates" here are plantings, not
    fine-tuning seeds of one model. ``settings``: ``stats``, ``seed``."""
    datas = [load_ablation(t, p) for t, p in zip(tables, predictions, strict=True)]
    frames = curve_statistics(datas, settings)
    write_stats_tables(frames, dict(out))
    log.info("planted curve statistics over %d planting(s)", len(datas))
    return frames


def _planting(units_path: str | Path, score_paths: Mapping[str, str | Path], normalise: str) -> Planting:
    """One planting's S and every method's ranking (the layout is the score tables')."""
    scores = {m: read_score_table(p)[0] for m, p in score_paths.items()}
    first = next(iter(score_paths))
    layout = NeuronLayout.from_scores(scores[first], str(score_paths[first]))
    member = membership(read_planted_units(units_path), layout, str(units_path))
    ranks = {m: rankings(s, layout, m, normalise, str(score_paths[m])) for m, s in scores.items()}
    for m, s in scores.items():
        if NeuronLayout.from_scores(s, str(score_paths[m])) != layout:
            raise InputError(f"{score_paths[m]}: scores other neurons than {score_paths[first]}")
    return Planting(layout, member, ranks, scores)


def run_planted_stats(
    inputs: Mapping[str, Sequence[Any]],
    settings: Mapping[str, Any],
    out: Mapping[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """The benchmark's tables: ``recovery`` and ``pr_curves`` (``kneurons.planted.recovery``, per
    variant pooled over its replicates), ``ground_truth`` (one row per planting: accuracies of the
    planted model, the base, the head alone, S rolled back, everything else rolled back) and the
    verdicts (``verdicts`` TSV in the claims format, ``verdicts_html``).

    ``inputs`` lists, variant-major then replicate (``settings["variants"]`` x ``planted.replicates``):
    ``units``, ``ground_truth``, ``selections`` and ``scores`` (per planting, one table per method of
    ``settings["methods"]``, in that order); ``head_only``: the control's metrics, one per replicate.
    """
    variants, methods = list(settings["variants"]), list(settings["methods"])
    reps = int(settings["planted"]["replicates"])
    n = len(variants) * reps
    for key in ("units", "ground_truth", "selections"):
        if len(inputs[key]) != n:
            raise ValueError(
                f"{len(inputs[key])} {key} inputs for {len(variants)} variants x {reps} replicates"
            )
    if len(inputs["scores"]) != n * len(methods) or len(inputs["head_only"]) != reps:
        raise ValueError(
            "score tables or head-only metrics do not match the variants, replicates and methods"
        )
    head_only = [read_intact_metrics(p, "test")["accuracy"] for p in inputs["head_only"]]
    tables, curves, truth_rows = [], [], []
    for v, variant in enumerate(variants):
        plantings, selections, planted_acc = [], [], []
        for r in range(reps):
            i = v * reps + r
            paths = dict(
                zip(methods, inputs["scores"][i * len(methods) : (i + 1) * len(methods)], strict=True)
            )
            plantings.append(_planting(inputs["units"][i], paths, settings["ablate"]["normalise"]))
            selections.append(read_selections(inputs["selections"][i]))
            truth = read_ground_truth(inputs["ground_truth"][i])
            planted_acc.append(truth["accuracy"]["planted"])
            truth_rows.append(
                {
                    "variant": variant,
                    "replicate": r,
                    "n_units": truth["n_units"],
                    "n_total": truth["n_total"],
                    "n_test": truth.get("n_test"),
                    "planted": truth["accuracy"]["planted"],
                    "base": truth["accuracy"]["base"],
                    "head_only": head_only[r],
                    "rollback_planted": truth["accuracy"]["rollback_planted"],
                    "rollback_others": truth["accuracy"]["rollback_others"],
                    "rollback_others_identical": truth["rollback_others_identical"],
                    "row_norm_ratio": truth.get("row_norm_ratio"),
                }
            )
        module = variant_module(variant, settings["planted"]["concentrated"])
        table, curve = recovery(variant, plantings, selections, planted_acc, settings, module)
        tables.append(table)
        curves.append(curve)
    frames = {
        "recovery": pd.concat(tables, ignore_index=True),
        "pr_curves": pd.concat(curves, ignore_index=True),
        "ground_truth": pd.DataFrame(truth_rows),
    }
    for name, df in frames.items():
        write_result_table(df, out[name])
    claims = verdicts(frames["recovery"], settings)
    write_claims(claims, out["verdicts"])
    write_verdicts(claims, out["verdicts_html"], **PLANTED_VERDICTS)
    for row in frames["recovery"].itertuples():
        log.info(
            "%s %s: AUPRC %.3f [%.3f, %.3f] (random expects %.4f), precision@|S| %.3f, "
            "preserving its top-|S| keeps %.3f of %.3f",
            row.variant,
            row.method,
            row.auprc,
            row.auprc_lo,
            row.auprc_hi,
            row.random_expected_auprc,
            row.precision_at_s,
            row.preserve_accuracy,
            row.planted_accuracy,
        )
    return frames


#: How the verdict table of the benchmark is rendered (``kneurons.tables.claims.render_verdicts``).
PLANTED_VERDICTS = {
    "heading": "Planted knowledge: does each method find the units that hold it?",
    "intro": (
        "One row per scoring method and variant of the planted-knowledge benchmark: a base model was "
        "fine-tuned with only a recorded set S of neurons (and the head) trainable, so S is exactly "
        "where the knowledge was written. <em>supported</em>: the method's AUPRC of S among all neurons "
        "lies above random's (the {pct} interval of the difference above 0); <em>not supported</em>: "
        "below 0 or within the margin; <em>inconclusive</em> otherwise."
    ),
    "table": "planted/verdicts.tsv",
    "atlas": False,
}
