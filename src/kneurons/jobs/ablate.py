"""The ablation job: every mask of one (method, scope) on the test split, under every fill."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kneurons.ablation.engine import default_masks_per_pass
from kneurons.ablation.fill import Fill, make_fill
from kneurons.ablation.run import load_external_set, load_test_set, run_ablation
from kneurons.errors import InputError
from kneurons.features.attach import attach_scored_saes
from kneurons.model.reference import checkpoint_reference
from kneurons.tables import AblationResult, read_scoring_set, save_result
from kneurons.vocabulary import FEATURE_FILLS, MODULE_TYPES

log = logging.getLogger(__name__)


def job_fills(
    kinds: Sequence[str],
    model: nn.Module,
    info: dict[str, Any],
    model_settings: dict[str, Any],
    scoring_set_path: str | Path | None,
    token_budget: int,
    device: torch.device,
    source: str,
    reference_loader: Callable[[], nn.Module] | None = None,
    modules: Sequence[str] = MODULE_TYPES,
    seed: int = 0,
) -> list[Fill]:
    """The fills of an ablation or characterisation job (``ablate.fills``, in order): ``mean`` and
    ``resample`` read the scoring set's sequences (its mean activations, the donors, drawn with
    ``seed``), ``pretrained`` the reference weights (``make_fill``). ``modules``: the units the job
    masks (``("sae",)``: SAE features, whose means are the features')."""
    scoring_sequences = None
    if {"mean", "resample"} & set(kinds):
        if scoring_set_path is None:
            raise InputError(
                f"ablate.fills {sorted({'mean', 'resample'} & set(kinds))} need the scoring set "
                "(scores/scoring_set.tsv)"
            )
        scoring_sequences = read_scoring_set(scoring_set_path)["sequence"].tolist()
    return [
        make_fill(
            kind,
            model,
            info,
            model_settings,
            scoring_sequences=scoring_sequences,
            reference=reference_loader,
            token_budget=token_budget,
            device=device,
            source=source,
            modules=modules,
            seed=seed,
        )
        for kind in kinds
    ]


def job_fill(
    kind: str,
    model: nn.Module,
    info: dict[str, Any],
    model_settings: dict[str, Any],
    scoring_set_path: str | Path | None,
    token_budget: int,
    device: torch.device,
    source: str,
    reference_loader: Callable[[], nn.Module] | None = None,
    seed: int = 0,
) -> Fill:
    """One fill of a job, on the neurons (``job_fills`` with ``[kind]``): what ``kneurons explain``
    rebuilds from the run's first fill."""
    return job_fills(
        [kind],
        model,
        info,
        model_settings,
        scoring_set_path,
        token_budget,
        device,
        source,
        reference_loader,
        seed=seed,
    )[0]


def run_ablation_job(
    checkpoint: str | Path,
    split_path: str | Path,
    scores_path: str | Path,
    method: str,
    scope: str,
    settings: dict[str, Any],
    table_out: str | Path,
    pred_out: str | Path,
    scoring_set_path: str | Path | None = None,
    device: torch.device | str = "cpu",
    reference_loader: Callable[[], nn.Module] | None = None,
    external_path: str | Path | None = None,
    saes: Sequence[Mapping[str, Any]] | None = None,
    reference_checkpoint: str | Path | None = None,
) -> AblationResult:
    """One job: every mask of ``method`` in ``scope`` on the test split; writes the table and predictions.

    ``external_path``: evaluate on that external set (``external/<name>/proteins.tsv``) instead of the
    test split; ``ablate.max_sequences`` caps both (a label-stratified subset drawn with the seed).

    ``settings`` are the rule's params (``kneurons.settings.job_settings('ablate', config)``): ``ablate``,
    ``model.attention``, ``model.checkpoint``, ``seed``; a whole validated config works too. For
    ``fill: pretrained`` the reference backbone comes from ``reference_loader`` (default: the
    pretrained weights named in the checkpoint, ``kneurons.model.reference.reference_loader``), or
    the classifier ``reference_checkpoint`` the model was planted in (the planted-knowledge benchmark).

    ``saes``: ablate SAE features instead of neurons: each spec (``kneurons.features.attach``) is
    attached, the score table must record the same SAEs, and the masks rank and fill the features
    (with the fills that apply to them, ``FEATURE_FILLS``: ``pretrained`` is skipped, a feature has
    no weights to roll back; the SAE's error term is kept).
    """
    from kneurons.model.checkpoint import load_job_classifier
    from kneurons.provenance import check_scores_match_checkpoint
    from kneurons.tables import read_score_table

    device = torch.device(device)
    ab = settings["ablate"]
    model, info = load_job_classifier(checkpoint, settings, device)
    labels = list(info["labels"])
    if external_path is not None:
        accessions, sequences, y_true = load_external_set(
            external_path, labels, ab.get("max_sequences"), settings.get("seed", 0)
        )
    else:
        accessions, sequences, y_true = load_test_set(
            split_path, labels, ab.get("max_sequences"), settings.get("seed", 0)
        )
    scores, score_meta = read_score_table(scores_path)
    # Scores of another model would rank this model's neurons meaninglessly.
    check_scores_match_checkpoint(scores_path, checkpoint, score_meta)
    modules: tuple[str, ...] = MODULE_TYPES
    kinds = list(ab["fills"])
    if saes is not None:
        skipped = [k for k in kinds if k not in FEATURE_FILLS]
        kinds = [k for k in kinds if k in FEATURE_FILLS]
        if skipped:
            log.info("SAE features: fill(s) %s skipped (a feature has no weights to roll back)", skipped)
        if not kinds:
            raise InputError(
                f"SAE features take the fills {', '.join(FEATURE_FILLS)}; ablate.fills {ab['fills']} has none"
            )
        modules = attach_scored_saes(model, saes, scores_path, score_meta)
    if reference_loader is None and reference_checkpoint is not None:
        reference_loader = checkpoint_reference(reference_checkpoint, info, str(checkpoint))
    fills = job_fills(
        kinds,
        model,
        info,
        settings["model"],
        scoring_set_path,
        ab["token_budget"],
        device,
        str(checkpoint),
        reference_loader,
        modules,
        settings.get("seed", 0),
    )
    per_pass = ab.get("masks_per_pass") or default_masks_per_pass(device)
    result = run_ablation(
        model,
        sequences,
        y_true,
        labels,
        scores,
        method,
        scope,
        ab["fractions"],
        ab["modes"],
        fill=fills,
        normalise=ab["normalise"],
        random_seeds=ab.get("random_seeds"),
        accessions=accessions,
        token_budget=ab["token_budget"],
        masks_per_pass=per_pass,
        device=device,
        bf16=ab["bf16"],
        source=str(scores_path),
        modules=modules,
    )
    save_result(table_out, pred_out, result)
    log.info("%s / %s: %d rows in %.1f s", method, scope, len(result.table), result.seconds)
    return result
