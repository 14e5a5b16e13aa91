"""The concept job: which neurons and SAE features align with which concepts, held out and sanity-checked,
and whether the knowledge units are the catalytic ones (``kneurons.concepts``); and its figures."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kneurons.ablation.masks import layout_of
from kneurons.characterise.activations import residue_activations
from kneurons.concepts.activations import concept_counts, unit_maxima
from kneurons.concepts.alignment import NULL_COLUMNS, is_aligned, pair_nulls
from kneurons.concepts.catalogue import CONCEPT_COLUMNS, PARTS, Catalogue, build_catalogue
from kneurons.concepts.knowledge import KNOWLEDGE_COLUMNS, knowledge_comparison, select_units, unit_scores
from kneurons.concepts.metric import at_thresholds, choose_thresholds, part_scores, scaled_activations
from kneurons.concepts.results import (
    ALIGNMENT_COLUMNS,
    FEATURES,
    NEURONS,
    SUMMARY_COLUMNS,
    UNIT_COLUMNS,
    Scores,
    alignment_rows,
    concept_results,
    summary_table,
    unit_table,
)
from kneurons.features.attach import attach_saes, attach_scored_saes
from kneurons.model.checkpoint import load_job_classifier
from kneurons.provenance import check_scores_match_checkpoint
from kneurons.tables import read_score_table, read_split_rows, write_concept_tables, write_concepts_info
from kneurons.vocabulary import FEATURE_MODULE, MODULE_TYPES, NEURON_KEY

log = logging.getLogger(__name__)

#: The status of a run whose data carry no concept (no annotation column, or none frequent enough).
NO_CONCEPTS = "no concept to score"
#: Activations held at once while drawing the nulls (floats: residues x candidate units per chunk).
NULL_CHUNK_FLOATS = 50_000_000
#: The split parts the stage reads: the training sample for each unit's maximum, then PARTS.
SPLIT_PARTS = ("train", *PARTS)


def load_parts(
    split_path: str | Path, labels: Sequence[str], max_proteins: int | None, seed: int
) -> dict[str, pd.DataFrame]:
    """The train, val and test rows of split.tsv (their file index kept), each at most ``max_proteins``
    (a seeded sample, in file order)."""
    parts = {}
    for part in SPLIT_PARTS:
        rows = read_split_rows(split_path, part, labels, "concepts")
        if max_proteins is not None and len(rows) > max_proteins:
            rows = rows.sample(n=max_proteins, random_state=seed).sort_index()
        parts[part] = rows
    return parts


def _scored_units(
    model: Any,
    kinds: Mapping[str, tuple[str, ...]],
    scores: Mapping[str, Mapping[str, str | Path]],
    settings: dict,
) -> pd.DataFrame:
    """The units scored, one row each (``layer, module, neuron, units`` and, where the kind's IG table
    is given, ``ig_score, random_score, knowledge``): per kind all units, or the knowledge units and a
    seeded sample up to ``concepts.max_units``."""
    frames = []
    for kind, modules in kinds.items():
        layout = layout_of(model, modules)
        paths = scores.get(kind, {})
        ig = rnd = know = None
        if paths.get("ig"):
            ig_table, _ = read_score_table(paths["ig"])
            rnd_table = read_score_table(paths["random"])[0] if paths.get("random") else None
            us = unit_scores(
                layout,
                ig_table,
                rnd_table,
                settings["stats"]["top_fraction"],
                settings["ablate"]["normalise"],
                source=str(paths["ig"]),
            )
            ig, rnd, know = us.ig, us.random, us.knowledge
        keep = np.flatnonzero(know) if know is not None else np.zeros(0, np.int64)
        flat = select_units(layout.total, keep, settings["concepts"]["max_units"], settings["seed"])
        df = layout.keys(flat).assign(units=kind)
        df["ig_score"] = ig[flat] if ig is not None else np.nan
        df["random_score"] = rnd[flat] if rnd is not None else np.nan
        df["knowledge"] = know[flat] if know is not None else np.nan
        df["n_total"] = layout.total
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _nulls(
    model: Any,
    sequences: Sequence[str],
    units: pd.DataFrame,
    maxima: np.ndarray,
    candidates: pd.DataFrame,
    catalogue: Catalogue,
    settings: dict,
    device: Any,
    bf16: bool,
) -> pd.DataFrame:
    """Each candidate pair's null, from the candidate units' test activations, in chunks of units."""
    c = settings["concepts"]
    if candidates.empty:
        return candidates.assign(**dict.fromkeys(NULL_COLUMNS, np.nan))
    tracks = catalogue.tracks["test"]
    needed = np.unique(candidates["unit"].to_numpy())
    chunk = max(1, int(NULL_CHUNK_FLOATS // max(1, tracks.n_residues)))
    out = []
    for start in range(0, len(needed), chunk):
        cols = needed[start : start + chunk]
        log.info("null draws: units %d-%d of %d candidates", start + 1, start + len(cols), len(needed))
        acts = residue_activations(
            model, sequences, units.iloc[cols][NEURON_KEY], c["token_budget"], device, bf16
        )
        scaled = scaled_activations(np.concatenate(acts), maxima[cols])
        rows = candidates[candidates["unit"].isin(cols)]
        out.append(pair_nulls(scaled, cols, rows, c["thresholds"], tracks, c["shuffles"], settings["seed"]))
    return pd.concat(out)


def _empty_outputs(out: Mapping[str, str | Path], info: dict[str, Any]) -> dict[str, Any]:
    """Header-only tables and the info of a run without concepts (not an error: data may lack annotations)."""
    frames = {
        "alignment": pd.DataFrame(columns=ALIGNMENT_COLUMNS),
        "summary": pd.DataFrame(columns=SUMMARY_COLUMNS),
        "concepts": pd.DataFrame(columns=CONCEPT_COLUMNS),
        "units": pd.DataFrame(columns=UNIT_COLUMNS),
        "knowledge": pd.DataFrame(columns=KNOWLEDGE_COLUMNS),
    }
    write_concept_tables(frames, out)
    write_concepts_info(out["info"], info)
    log.info("concepts: %s", info["status"])
    return info


def _info(catalogue: Catalogue, parts: Mapping[str, pd.DataFrame], c: Mapping[str, Any]) -> dict[str, Any]:
    """What ``concepts/info.json`` records before any unit is measured: columns, proteins, concepts,
    what the parser skipped, and the settings of the call."""
    return {
        "annotation_columns": catalogue.columns,
        "proteins": {p: len(parts[p]) for p in SPLIT_PARTS},
        "concepts_scored": len(catalogue.real()),
        "concepts_too_rare": catalogue.too_rare.to_dict("records"),
        "features_parsed": catalogue.stats.features,
        "features_unknown_location": catalogue.stats.unknown_location,
        "positions_beyond_sequence": catalogue.stats.beyond_sequence,
        "other_feature_keys": catalogue.stats.skipped_keys,
        "thresholds": list(c["thresholds"]),
        "f1_floor": c["f1_floor"],
        "shuffles": c["shuffles"],
        "min_proteins": c["min_proteins"],
    }


def _attach(
    model: Any, scores: Mapping[str, Mapping[str, Any]], saes: Sequence[Mapping[str, Any]] | None
) -> dict:
    """The kinds of unit to measure (module names per kind): the neurons, and the features of
    ``saes`` once attached (checked against the features' IG table when there is one)."""
    kinds: dict[str, tuple[str, ...]] = {NEURONS: MODULE_TYPES}
    if saes:
        feature_ig = scores.get(FEATURES, {}).get("ig")
        if feature_ig:
            attach_scored_saes(model, saes, feature_ig, read_score_table(feature_ig)[1])
        else:
            attach_saes(model, saes)
        kinds[FEATURES] = (FEATURE_MODULE,)
    return kinds


def _measure(
    model: Any,
    seqs: Mapping[str, list[str]],
    keys: pd.DataFrame,
    catalogue: Catalogue,
    c: Mapping[str, Any],
    device: Any,
    bf16: bool,
) -> tuple[np.ndarray, Scores]:
    """Each unit's training maximum, and its scores on every concept: the threshold chosen on the
    validation counts, precision, recall and F1 there and on the test counts."""
    maxima = unit_maxima(model, seqs["train"], keys, c["token_budget"], device, bf16)
    per_part = {}
    for p in PARTS:
        counts = concept_counts(
            model,
            seqs[p],
            keys,
            maxima,
            c["thresholds"],
            catalogue.tracks[p],
            c["token_budget"],
            device,
            bf16,
            f"{p} counts",
        )
        instances = np.array([catalogue.tracks[p].n_instances(i) for i in range(len(catalogue.concepts))])
        per_part[p] = part_scores(counts, instances)
    chosen = choose_thresholds(per_part["val"][2])
    val, test = ([at_thresholds(x, chosen) for x in per_part[p]] for p in PARTS)
    return maxima, Scores(*val, chosen, *test)


def run_concepts_job(
    checkpoint: str | Path,
    split_path: str | Path,
    settings: dict[str, Any],
    out: Mapping[str, str | Path],
    scores: Mapping[str, Mapping[str, str | Path]] | None = None,
    saes: Sequence[Mapping[str, Any]] | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Align every unit (or a seeded sample, ``concepts.max_units`` per kind) with the concepts of the
    split's annotations: thresholds on the validation part, F1 and nulls on the test part.

    ``settings``: the rule's params (``kneurons.settings.job_settings('concepts', config)``).
    ``scores``: per kind (``neurons``, ``features``) its ``ig`` and ``random`` score tables (the
    knowledge units and the knowledge part; without ``ig`` a kind has no knowledge scores). ``saes``:
    the SAE specs whose features are units too (``kneurons.jobs.features.sae_specs``). Writes
    ``out[name]`` for alignment, summary, concepts, units, knowledge (TSV) and info (JSON); returns
    the info. Data without concepts give header-only tables and say so.
    """
    c = settings["concepts"]
    scores = scores or {}
    bf16 = settings["train"].get("bf16", True)
    model, ckpt_info = load_job_classifier(checkpoint, settings, device)
    parts = load_parts(split_path, [str(x) for x in ckpt_info["labels"]], c["max_proteins"], settings["seed"])
    catalogue = build_catalogue(
        {p: parts[p] for p in PARTS}, c["min_proteins"], settings["seed"], str(split_path)
    )
    info = _info(catalogue, parts, c)
    if not catalogue.real():
        why = (
            f"no annotation column in {split_path}"
            if not catalogue.columns
            else (f"no concept carried by {c['min_proteins']} proteins in both the val and the test part")
        )
        return _empty_outputs(out, info | {"status": f"{NO_CONCEPTS}: {why}"})
    for kind in scores.values():  # scores of another model mislead
        for path in kind.values():
            check_scores_match_checkpoint(path, checkpoint, read_score_table(path)[1], require=False)
    units = _scored_units(model, _attach(model, scores, saes), scores, settings)
    counted = ", ".join(
        f"{k}: {len(g)} of {int(g['n_total'].iloc[0])} units" for k, g in units.groupby("units")
    )
    real = catalogue.real()
    log.info(
        "concepts: %d concepts (+ %d controls), %s", len(real), len(catalogue.concepts) - len(real), counted
    )
    seqs = {p: parts[p]["sequence"].astype(str).tolist() for p in SPLIT_PARTS}
    maxima, sc = _measure(model, seqs, units[NEURON_KEY], catalogue, c, device, bf16)
    u, k = np.nonzero(sc.f1 > c["f1_floor"])
    candidates = pd.DataFrame({"unit": u, "concept": k, "threshold_index": sc.chosen[u, k]})
    log.info("concepts: %d pairs above the floor %g; drawing their nulls", len(candidates), c["f1_floor"])
    nulls = _nulls(model, seqs["test"], units, maxima, candidates, catalogue, settings, device, bf16)
    aligned = np.zeros(sc.f1.shape, dtype=bool)
    if not nulls.empty:
        flags = is_aligned(sc.f1[nulls["unit"], nulls["concept"]], nulls, c["f1_floor"])
        aligned[nulls["unit"].to_numpy()[flags], nulls["concept"].to_numpy()[flags]] = True
    units = units.assign(max_train=maxima)
    unit_rows = unit_table(units, catalogue, sc, aligned)
    st = settings["stats"]
    frames = {
        "alignment": alignment_rows(units, catalogue, sc, c["thresholds"], nulls, aligned, c["top_per_unit"]),
        "summary": summary_table(units, catalogue, sc, aligned),
        "concepts": concept_results(units, catalogue, sc, aligned),
        "units": unit_rows,
        "knowledge": knowledge_comparison(
            unit_rows.assign(catalytic_f1=unit_rows["catalytic_f1"].fillna(0.0)),
            sum(catalogue.concepts[i].catalytic for i in real),
            st["bootstrap"],
            st["confidence"],
            settings["seed"],
        ),
    }
    write_concept_tables(frames, out)
    info |= {
        "status": f"{len(real)} concepts from {', '.join(catalogue.columns)}",
        "units": {
            kind: {"scored": len(g), "total": int(g["n_total"].iloc[0])} for kind, g in units.groupby("units")
        },
        "dead_units": int((maxima <= 0).sum()),
        "candidate_pairs": len(candidates),
        "aligned_pairs": int(aligned[:, real].sum()),
        "aligned_control_pairs": int(aligned.sum() - aligned[:, real].sum()),
    }
    write_concepts_info(out["info"], info)
    log.info(
        "concepts: %s; %d aligned pairs (%d with controls)",
        info["status"],
        info["aligned_pairs"],
        info["aligned_control_pairs"],
    )
    return info


def concept_scores(inputs: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The ``scores`` of ``run_concepts_job`` from the rule's named inputs: ``ig`` and ``random``
    (neurons), ``feature_ig`` and ``feature_random`` (SAE features), those that are there."""
    out: dict[str, dict[str, str]] = {}
    for kind, prefix in ((NEURONS, ""), (FEATURES, "feature_")):
        paths = {m: str(inputs[prefix + m]) for m in ("ig", "random") if inputs.get(prefix + m)}
        if paths:
            out[kind] = paths
    return out
