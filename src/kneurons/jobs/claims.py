"""The claims job: a verdict per claim from the statistics (and characterisation) tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kneurons.errors import InputError
from kneurons.stats.claims import IntactModel, evaluate_claims, sae_quality_note, with_sae_quality
from kneurons.stats.keys import with_fill
from kneurons.stats.metrics import majority_share
from kneurons.tables import (
    read_characterise_table,
    read_concept_table,
    read_intact_metrics,
    read_predictions,
    read_stats_table,
    write_claims,
    write_verdicts,
)

log = logging.getLogger(__name__)


def _paths(value: Any) -> list[str | Path]:
    """One path or a list of them, as a list."""
    return [value] if isinstance(value, str | Path) else list(value or [])


def proteins_text(n: int, what: str, cap_key: str, cap: int | None) -> str:
    """Which proteins a claim was measured on, for the baseline rule's note: ``the test proteins of
    ablate.max_sequences`` when the cap drew them (``n`` reached it), else ``every test protein``."""
    return f"the {what} proteins of {cap_key}" if cap is not None and n >= cap else f"every {what} protein"


def intact_model(paths: Sequence[str | Path], part: str | None) -> IntactModel:
    """The intact model on one set of proteins from its metrics files (one per replicate for a
    characterisation's ``class_summary.json``, ``part`` ``intact``; the one pooled
    ``external/<name>/metrics.json``, ``part`` None): accuracy averaged over the files, which must
    agree on the proteins' number and majority share."""
    if not paths:
        raise InputError("claims: no metrics of the intact model were given")
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


def intact_from_predictions(paths: Sequence[str | Path]) -> IntactModel:
    """The intact model on the proteins an ablation evaluated, from one ablation job's predictions per
    replicate (``.pred.npz``: ``full_pred``, ``y_true``): accuracy averaged over the replicates, which
    must have evaluated the same proteins."""
    if not paths:
        raise InputError("claims: no ablation predictions (the intact model's) were given")
    accuracies, ref = [], None
    for path in paths:
        _, _, full_pred, y_true, accessions = read_predictions(path)
        if ref is None:
            ref = (y_true, accessions, path)
        elif not (np.array_equal(ref[0], y_true) and np.array_equal(ref[1], accessions)):
            raise InputError(f"claims: {path} evaluated other proteins than {ref[2]}")
        accuracies.append(float((full_pred == y_true).mean()))
    return IntactModel(accuracy=float(np.mean(accuracies)), n=len(ref[0]), majority=majority_share(ref[0]))


def run_claims(
    inputs: Mapping[str, Any],
    settings: Mapping[str, Any],
    out: str | Path,
    verdicts: str | Path | None = None,
) -> pd.DataFrame:
    """Write ``out`` (``stats/claims.tsv``) and, where given, ``verdicts`` (``stats/verdicts.html``,
    the same table rendered for the report's first screen) from ``inputs``: ``random_gap``,
    ``faithfulness`` (where given: claims 1, 2 and 4 take its CPR gaps), ``density`` (all pooled over
    replicates), ``intact`` (one test-split ablation job's predictions per replicate: the intact
    model on the ablation's evaluated proteins, for the baseline rule of the test split's claims)
    and, when the characterisation ran, ``class_specificity`` (one table per replicate; each class's
    recall drops are averaged over the replicates, per fill) with ``class_summary`` (each
    replicate's ``class_summary.json``: the intact model on claim 5's held-out proteins) and, when
    SAE features were ablated, ``compactness`` (``stats/compactness.tsv``, pooled over the
    replicates: claim 6, test split only) and ``sae_quality`` (``features/stats/sae_quality.tsv``:
    claim 6 is inconclusive, the reason in its note, where an SAE does not fit a replicate's model)
    and, when the concept stage ran, ``concept_knowledge`` (``concepts/knowledge.tsv``: claim 7, the
    main run's test split).
    Per external set (``settings["external"]``, sorted names): ``external`` (its ``random_gap.tsv``),
    ``external_faithfulness`` (its ``faithfulness.tsv``, where given) and ``external_metrics`` (its
    ``metrics.json``: the intact model on its evaluated proteins), in the order of the names.
    Returns the claims with their numbers at full precision, one row per claim and fill.

    ``settings`` are the rule's params (``kneurons.settings.job_settings('claims', config)``;
    ``ablate.max_sequences`` and the characterisation's ``split`` and ``max_proteins`` name the
    proteins in the notes).
    """
    paths = _paths(inputs.get("class_specificity"))
    pooled = None
    if paths:
        frames = [with_fill(read_characterise_table(p, "class_specificity")) for p in paths]
        pooled = (
            pd.concat(frames)
            .groupby(["fill", "class"], sort=False)[["drop_own", "drop_other"]]
            .mean()
            .reset_index()
        )
    compactness = None
    if inputs.get("compactness"):
        compactness = read_stats_table(inputs["compactness"], "compactness")
    # the SAE quality rule (features/stats/sae_quality.tsv): claim 6 only, on the test split
    sae_note = (
        sae_quality_note(read_stats_table(inputs["sae_quality"], "sae_quality"))
        if inputs.get("sae_quality")
        else ""
    )
    concepts = None
    if inputs.get("concept_knowledge"):
        concepts = read_concept_table(inputs["concept_knowledge"], "knowledge")
    n_rep = int(settings.get("replicates", 1))
    faithfulness = (
        read_stats_table(inputs["faithfulness"], "faithfulness") if inputs.get("faithfulness") else None
    )
    cap = (settings.get("ablate") or {}).get("max_sequences")
    intact = intact_from_predictions(_paths(inputs.get("intact")))
    intact = replace(intact, proteins=proteins_text(intact.n, "test", "ablate.max_sequences", cap))
    by_claim = {}
    if _paths(inputs.get("class_summary")):
        held = settings.get("characterise") or {}
        summaries = _paths(inputs["class_summary"])
        claim5 = intact_model(summaries, "intact")
        what = str(held.get("split", "held-out"))
        words = proteins_text(claim5.n, what, "characterise.max_proteins", held.get("max_proteins"))
        by_claim["5"] = replace(claim5, proteins=words)
    parts = [
        evaluate_claims(
            read_stats_table(inputs["random_gap"], "random_gap"),
            read_stats_table(inputs["density"], "density"),
            pooled,
            settings["stats"],
            n_replicates=n_rep,
            intact=intact,
            compactness=compactness,
            faithfulness=faithfulness,
            intact_by_claim=by_claim,
            concepts=concepts,
        )
    ]
    parts[0] = with_sae_quality(parts[0], sae_note)
    # External sets: the curve claims (1, 2, 4) on proteins the model never saw (no SAE features: no 6).
    names = list(settings.get("external", []))
    ext_paths = _paths(inputs.get("external"))
    ext_metrics = _paths(inputs.get("external_metrics"))
    ext_faith = _paths(inputs.get("external_faithfulness")) or [None] * len(names)
    if not len(names) == len(ext_paths) == len(ext_metrics) == len(ext_faith):
        raise ValueError(
            f"{len(ext_paths)} external statistics tables, {len(ext_faith)} faithfulness tables and "
            f"{len(ext_metrics)} metrics files for {len(names)} sets {names}"
        )
    for name, path, faith, metrics in zip(names, ext_paths, ext_faith, ext_metrics, strict=True):
        gap = read_stats_table(path, "random_gap")
        ext = intact_model([metrics], None)  # its ablation's evaluated proteins, capped as the test split's
        ext = replace(ext, proteins=proteins_text(ext.n, name, "ablate.max_sequences", cap))
        rows = evaluate_claims(
            gap,
            None,
            None,
            settings["stats"],
            n_replicates=n_rep,
            set_name=name,
            intact=ext,
            random_gap_source=f"external/{name}/random_gap.tsv",
            faithfulness=read_stats_table(faith, "faithfulness") if faith else None,
            faithfulness_source=f"external/{name}/faithfulness.tsv",
        )
        rows["figure"] = f"external/{name}/curves.tsv"
        parts.append(rows)
    claims = pd.concat(parts, ignore_index=True)
    write_claims(claims, out)
    if verdicts is not None:
        write_verdicts(claims, verdicts)
    for row in claims.itertuples():
        note = f" ({row.note})" if row.note else ""
        fill = f", fill {row.fill}" if row.fill else ""
        log.info(
            "claim %s (%s, %s%s): %s [%s]%s",
            *(row.claim, row.method, row.set, fill, row.verdict, row.statistic, note),
        )
    return claims
