"""The characterisation jobs: class-specific neurons and where the top neurons fire."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kneurons.ablation.masks import layout_of
from kneurons.characterise import (
    characterise_neurons,
    class_overlap,
    class_suppression,
    select_class_neurons,
    split_ig_scores,
)
from kneurons.features.attach import attach_scored_saes
from kneurons.jobs.ablate import job_fills
from kneurons.model.checkpoint import load_job_classifier
from kneurons.provenance import check_scores_match_checkpoint
from kneurons.tables import (
    read_characterise_table,
    read_score_table,
    read_split_rows,
    write_json_result,
    write_result_table,
)
from kneurons.vocabulary import MODULE_TYPES

log = logging.getLogger(__name__)


def load_held_out(
    split_path: str | Path,
    labels: Sequence[str],
    split: str = "test",
    max_proteins: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows of ``split`` in split.tsv (all columns kept), at most ``max_proteins`` (seeded sample).

    Raises InputError naming the file and line of a label the model does not know, and when the
    split is empty.
    """
    rows = read_split_rows(split_path, split, labels, "characterise.split")
    if max_proteins is not None and len(rows) > max_proteins:
        rows = rows.sample(n=max_proteins, random_state=seed).sort_index()
    return rows.reset_index(drop=True)


def held_out_intact(matrix: pd.DataFrame, labels: pd.Series) -> dict[str, Any]:
    """The intact model's ``accuracy``, ``n`` and ``majority_baseline`` on the held-out proteins
    (their ``labels``), from the class-suppression matrix's ``recall_base``: each class's correct
    proteins are its recall times its proteins."""
    counts = labels.astype(str).value_counts()
    base = matrix.drop_duplicates("evaluated").set_index("evaluated")["recall_base"]
    correct = sum(round(float(base[lab]) * int(n)) for lab, n in counts.items())
    n = int(counts.sum())
    return {"accuracy": correct / n, "n": n, "majority_baseline": float(counts.max() / n)}


def run_class_job(
    checkpoint: str | Path,
    ig_path: str | Path,
    split_path: str | Path,
    settings: dict[str, Any],
    out: dict[str, str | Path],
    scoring_set_path: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Class-specific neurons: selection, overlap, suppression under every fill of ``ablate.fills``.
    ``settings``: the rule's params (``kneurons.settings.job_settings('characterise_classes', config)``).

    Writes ``out["neurons"]`` (class sets), ``out["overlap"]``, ``out["matrix"]``,
    ``out["specificity"]`` (TSV, one block of rows per fill, column ``fill``) and ``out["summary"]``
    (JSON: the first fill's means at the top, every fill's in ``per_fill``); returns the summary.
    """
    c = settings["characterise"]
    model, info = load_job_classifier(checkpoint, settings, device)
    labels = [str(x) for x in info["labels"]]
    ig, ig_meta = read_score_table(ig_path)
    # scores of another model mislead
    check_scores_match_checkpoint(ig_path, checkpoint, ig_meta, require=False)
    _, per_class = split_ig_scores(ig, source=str(ig_path))
    layout = layout_of(model)
    normalise = settings["ablate"]["normalise"]
    sets = select_class_neurons(
        per_class, layout, c["class_selection"], c["class_fraction"], c["class_threshold"], normalise
    )
    overlap, shared = class_overlap(sets)
    held = load_held_out(split_path, labels, c["split"], c["max_proteins"], settings["seed"])
    index = {lab: i for i, lab in enumerate(labels)}
    fills = job_fills(
        settings["ablate"]["fills"],
        model,
        info,
        settings["model"],
        scoring_set_path,
        c["token_budget"],
        device,
        str(checkpoint),
        seed=settings["seed"],
    )
    matrix, spec = class_suppression(
        model,
        held["sequence"].tolist(),
        held["label"].map(index).to_numpy(),
        labels,
        sets,
        fills,
        c["random_sets"],
        settings["seed"],
        c["token_budget"],
        device,
        settings["train"].get("bf16", True),
    )
    per_fill = {}
    for kind in [f.kind for f in fills]:
        m, s = matrix[matrix["fill"] == kind], spec[spec["fill"] == kind]
        per_fill[kind] = {
            "mean_recall_change_own": float(m[m["suppressed"] == m["evaluated"]]["recall_change"].mean()),
            "mean_recall_change_other": float(m[m["suppressed"] != m["evaluated"]]["recall_change"].mean()),
            "mean_specificity_diff": float(s["specificity_diff"].mean()),
            "mean_random_specificity_diff": float(s["random_diff_mean"].mean()),
        }
    first = per_fill[fills[0].kind]
    summary = {
        # the intact model on these held-out proteins: claim 5's baseline rule (kneurons.stats.claims)
        "intact": held_out_intact(matrix, held["label"]),
        "classes": sorted(set(sets["label"])),
        "selection": c["class_selection"],
        "fraction": c["class_fraction"] if c["class_selection"] == "top_fraction" else None,
        "threshold": c["class_threshold"] if c["class_selection"] == "relative_threshold" else None,
        "normalise": normalise,
        "fill": fills[0].kind,
        "fills": [f.kind for f in fills],
        "neurons_per_class": {str(k): int(v) for k, v in sets.groupby("label").size().items()},
        "shared_by_all": shared,
        "mean_jaccard_between_classes": float(
            overlap.loc[overlap["class_a"] != overlap["class_b"], "jaccard"].mean()
        ),
        "held_out_split": c["split"],
        "held_out_proteins": len(held),
        **first,
        "random_sets": c["random_sets"],
        "per_fill": per_fill,
    }
    write_result_table(sets, out["neurons"])
    write_result_table(overlap, out["overlap"])
    write_result_table(matrix, out["matrix"])
    write_result_table(spec, out["specificity"])
    write_json_result(out["summary"], summary)
    log.info("class summary: %s", summary)
    return summary


def run_neuron_job(
    checkpoint: str | Path,
    ig_path: str | Path,
    split_path: str | Path,
    class_neurons_path: str | Path | None,
    settings: dict[str, Any],
    out: dict[str, str | Path],
    device: torch.device | str = "cpu",
    saes: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Where the top-N IG neurons fire: per-neuron table, windows, PFMs, site summary, info JSON.

    Writes ``out["neurons"]``, ``out["windows"]``, ``out["pfm"]``, ``out["summary"]`` (TSV),
    ``out["info"]`` (JSON) and, when named, ``out["window_activations"]`` (TSV); returns the info.
    Missing annotations are reported, not an error.
    ``settings``: the rule's params (``kneurons.settings.job_settings('characterise_neurons', config)``).
    ``saes``: characterise the top-N IG *features* of these SAEs instead (``ig_path`` scores them;
    no class sets: ``class_neurons_path`` None); the tables name them as module ``sae``.
    """
    c = settings["characterise"]
    model, info = load_job_classifier(checkpoint, settings, device)
    labels = [str(x) for x in info["labels"]]
    ig, ig_meta = read_score_table(ig_path)
    # scores of another model mislead
    check_scores_match_checkpoint(ig_path, checkpoint, ig_meta, require=False)
    modules: tuple[str, ...] = MODULE_TYPES
    if saes is not None:
        modules = attach_scored_saes(model, saes, ig_path, ig_meta)
    held = load_held_out(split_path, labels, c["split"], c["max_proteins"], settings["seed"])
    sets = read_characterise_table(class_neurons_path, "class_neurons") if class_neurons_path else None
    res = characterise_neurons(
        model,
        ig,
        held,
        c,
        sets,
        settings["ablate"]["normalise"],
        device,
        settings["train"].get("bf16", True),
        settings["seed"],
        modules,
    )
    write_result_table(res["neurons"], out["neurons"])
    write_result_table(res["windows"], out["windows"])
    write_result_table(res["pfm"], out["pfm"])
    if "window_activations" in out:  # the atlas colours window residues by these
        write_result_table(res["window_activations"], out["window_activations"])
    write_result_table(res["summary"], out["summary"])
    write_json_result(out["info"], res["info"])
    log.info("annotations: %s", res["info"]["annotation"])
    return res["info"]
