"""The SAE feature jobs (units.features; docs/features.md): training the workflow's own SAEs,
their reconstruction report, and scoring, ablating and characterising their features.

Scoring, ablation and characterisation are the neuron jobs with SAEs attached
(``run_score_job``, ``run_ablation_job``, ``run_neuron_job`` with ``saes``): one code path for
both kinds of unit. What is feature-only lives here: resolving the config's SAE entries
(``sae_specs``), training (``run_train_sae``) and the report (``run_sae_report``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from kneurons.errors import InputError
from kneurons.scatter import TRAIN_SAE, trained_sae_layers

log = logging.getLogger(__name__)


def sae_specs(
    features: Sequence[Mapping[str, Any]], trained: Sequence[str | Path] = ()
) -> list[dict[str, Any]]:
    """The SAEs of a feature job: ``units.features`` with each ``sae: train`` entry resolved to its file.

    ``trained``: the trained SAE files, one per ``sae: train`` entry in config order (as the rule
    lists its inputs; ``kneurons.scatter.trained_sae_layers``). Given files keep their path, format and ``k``.
    """
    trained = [str(p) for p in trained]
    want = trained_sae_layers(list(features))
    if len(trained) != len(want):
        raise InputError(
            f"{len(trained)} trained SAE file(s) for the {len(want)} `sae: train` entries (layers {want})"
        )
    files = iter(trained)
    return [
        {
            "layer": int(entry["layer"]),
            "path": next(files) if entry["sae"] == TRAIN_SAE else str(entry["sae"]),
            "format": entry["format"],
            "k": entry.get("k"),
        }
        for entry in features
    ]


def _split_sequences(split_path: str | Path, split: str, labels: Sequence[str], purpose: str) -> list[str]:
    from kneurons.tables import read_split_rows

    return read_split_rows(split_path, split, labels, purpose)["sequence"].astype(str).tolist()


def run_train_sae(
    checkpoint: str | Path,
    split_path: str | Path,
    layer: int,
    settings: dict[str, Any],
    out_path: str | Path,
    device: torch.device | str = "cpu",
) -> Any:
    """Train the workflow's SAE on the stream entering ``layer`` over the training split; write it.

    ``settings`` are the rule's params (``job_settings('train_sae', config)``): ``sae`` (sizes and
    optimisation), ``token_budget``, ``model.attention``, ``seed``. The SAE records the sha256 of
    the checkpoint it was trained on and its held-out FVU and dead-feature share.
    """
    from kneurons.features.formats import save_sae
    from kneurons.features.train import train_sae
    from kneurons.io import sha256_file
    from kneurons.model.checkpoint import load_job_classifier

    device = torch.device(device)
    model, info = load_job_classifier(checkpoint, settings, device)
    sequences = _split_sequences(
        split_path, "train", list(info["labels"]), "an SAE trains on the training split"
    )
    s = settings["sae"]
    sae = train_sae(
        model,
        sequences,
        int(layer),
        n_features=s["n_features"],
        k=s["k"],
        epochs=s["epochs"],
        batch_tokens=s["batch_tokens"],
        lr=s["lr"],
        heldout=s["heldout"],
        max_tokens=s["max_tokens"],
        # one seed per layer, so two layers' SAEs do not start from the same dictionary
        seed=int(settings["seed"]) + int(layer),
        token_budget=settings["token_budget"],
        device=device,
        model_sha256=sha256_file(checkpoint),
    )
    save_sae(out_path, sae)
    log.info("wrote %s", out_path)
    return sae


def run_sae_report(
    checkpoint: str | Path,
    split_path: str | Path,
    specs: Sequence[Mapping[str, Any]],
    settings: dict[str, Any],
    out_path: str | Path,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """How each SAE fits this replicate's model on the validation split (``kneurons.features.quality``):
    FVU at its layer and at every other stream point, at its input point (and at the plain point
    where that differs), the loss recovered, its dead and dense features, what its file records
    of its training; an SAE that fits another layer far better, or nothing at all, is refused.
    JSON to ``out_path`` (one row per SAE; the quality rule reads it: ``kneurons.stats.sae_quality``).

    ``settings``: ``job_settings('sae_report', config)``: ``token_budget``, ``max_tokens`` (the
    validation tokens read, whole proteins in split order), ``quality`` (``sae.quality``: its
    ``max_fvu`` is where an SAE fits another layer), ``model.attention``.
    """
    from kneurons.features.attach import attach_saes, sae_identities
    from kneurons.features.quality import reconstruction_report
    from kneurons.features.train import within_tokens
    from kneurons.io import sha256_file
    from kneurons.model.checkpoint import load_job_classifier
    from kneurons.tables import read_split_rows, write_json_result

    device = torch.device(device)
    model, info = load_job_classifier(checkpoint, settings, device)
    labels = list(info["labels"])
    rows_val = read_split_rows(split_path, "val", labels, "SAEs are checked on the validation split")
    sequences = within_tokens(rows_val["sequence"].astype(str).tolist(), int(settings["max_tokens"]))
    index = {str(label): i for i, label in enumerate(labels)}
    gold = [index[str(label)] for label in rows_val["label"].tolist()[: len(sequences)]]
    saes = attach_saes(model, specs)
    identities = sae_identities(saes, specs)
    model_sha = sha256_file(checkpoint)
    rows = []
    for sae, identity in zip(saes, identities, strict=True):
        # attached SAEs leave the stream as it is until a feature is edited, so the other SAEs
        # attached here do not change what this one is measured on
        report = reconstruction_report(
            model,
            sae,
            sequences,
            gold,
            settings["token_budget"],
            device,
            float(settings["quality"]["max_fvu"]),
        )
        trained_on = sae.meta.get("model_sha256")
        if trained_on and trained_on != model_sha:
            log.warning(
                "%s was trained on another checkpoint (sha256 %s), not %s", sae.source, trained_on, checkpoint
            )
        loss = report["loss"]
        rows.append(
            {
                **identity,
                "fvu": {str(layer): value for layer, value in report["fvu"].items()},
                "fvu_own": report["fvu"][sae.layer],
                "fvu_plain": report["fvu_plain"],
                "loss_recovered": loss["recovered"],
                "loss": loss,
                "dead_share": report["dead_share"],
                "dense_share": report["dense_share"],
                "n_tokens": report["n_tokens"],
                "training": dict(sae.meta),
            }
        )
        log.info(
            "SAE layer %d (%s, %s): FVU %.4f on %d validation tokens (plain point %s), every layer %s, "
            "loss recovered %.3f, dead %.1f%%, dense %.1f%%",
            *(
                sae.layer,
                sae.source,
                report["input_point"],
                rows[-1]["fvu_own"],
                report["n_tokens"],
                "the same" if report["fvu_plain"] is None else f"{report['fvu_plain']:.4f}",
                {layer: round(v, 4) for layer, v in report["fvu"].items()},
                loss["recovered"],
                100 * rows[-1]["dead_share"],
                100 * rows[-1]["dense_share"],
            ),
        )
    out = {"split": "val", "n_sequences": len(sequences), "checkpoint_sha256": model_sha, "saes": rows}
    write_json_result(out_path, out)
    return out
