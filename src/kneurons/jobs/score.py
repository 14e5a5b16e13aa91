"""The scoring job: one score table of a method's chunk of layers from the checkpoint and the scoring set.

The model is loaded once and each layer is scored on its own (``scoring.base.score_layer``), so a
layer's scores are the same whichever chunk it is in (``scatter.score_layer_chunks``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kneurons.errors import InputError
from kneurons.features.attach import SAES_KEY, attach_saes, sae_identities
from kneurons.io import sha256_file
from kneurons.model.reference import reference_loader, reference_rows
from kneurons.scoring import registry
from kneurons.scoring.base import check_layer, score_layer
from kneurons.scoring.subset import subset_hash
from kneurons.tables import COMPLETENESS_KEY, WEIGHTS_KEY, read_scoring_set, write_score_table
from kneurons.vocabulary import FEATURE_MODULE, MODULE_TYPES

log = logging.getLogger(__name__)


def _check_labels(
    subset: pd.DataFrame, labels: list[str], scoring_set_path: str | Path, checkpoint: str | Path
) -> None:
    """The scoring set's ``label_index`` must name its ``label`` in the checkpoint's label map."""
    bad = subset[(subset["label_index"] >= len(labels)) | (subset["label_index"] < 0)]
    if bad.empty:
        mismatch = subset[
            [labels[i] != lab for i, lab in zip(subset["label_index"], subset["label"], strict=True)]
        ]
    else:
        mismatch = bad
    if not mismatch.empty:
        row = mismatch.iloc[0]
        raise InputError(
            f"{scoring_set_path}: line {int(mismatch.index[0]) + 2}: label {row['label']!r} with label_index "
            f"{row['label_index']} does not match the checkpoint's labels {labels} ({checkpoint})"
        )


def run_score_job(
    checkpoint: str | Path,
    scoring_set_path: str | Path,
    method: str,
    layers: Sequence[int] | None,
    settings: dict[str, Any],
    out_path: str | Path,
    device: torch.device | str = "cpu",
    saes: Sequence[Mapping[str, Any]] | None = None,
    reference_checkpoint: str | Path | None = None,
) -> pd.DataFrame:
    """Score the six modules of each of ``layers`` (None: every layer) by one method; write one
    table to ``out_path``.

    The table holds the layers' rows in the order given, and its provenance records them as
    ``layers`` (each layer's time is in the log). ``settings`` are the rule's params
    (``kneurons.settings.job_settings('score_layers', config, method=m)``): ``score`` (the
    method's keys), ``model.attention``, ``seed``; a whole validated config works too.

    ``saes``: score SAE features instead of neurons. Each spec (``kneurons.features.attach``) is
    attached to the model, ``layers`` (None: the SAEs' layers) are scored over the units ``"sae"``,
    and the provenance records the SAEs (``SAES_KEY``: description and file hashes).

    A method that compares the model with the weights fine-tuning started from (``delta``) reads
    them with ``kneurons.model.reference.reference_loader``: the classifier ``reference_checkpoint``
    (the planted-knowledge benchmark's base model) when given, else the pretrained weights of
    ``settings["model"]`` (``checkpoint``, ``download``); refused for a random-init model.
    """
    from kneurons import __version__ as version
    from kneurons.model.checkpoint import load_job_classifier

    device = torch.device(device)
    model, info = load_job_classifier(checkpoint, settings, device)
    units: tuple[str, ...] = MODULE_TYPES
    identities = None
    if saes is not None:
        identities = sae_identities(attach_saes(model, saes), saes)
        units = (FEATURE_MODULE,)
        layers = sorted(model.saes) if layers is None else layers
    elif layers is None:  # every layer of the model
        layers = range(model.num_layers)
    layers = [int(layer) for layer in layers or []]
    if not layers:
        raise ValueError("a scoring job needs at least one layer")
    subset = read_scoring_set(scoring_set_path)
    _check_labels(subset, list(info["labels"]), scoring_set_path, checkpoint)
    for layer in layers:  # refuse a bad chunk before scoring any of it
        check_layer(model, layer, units)
    score_cfg = settings["score"]
    recorded = registry.get(method).settings(score_cfg)
    reference = None
    if registry.needs_reference(method):
        load = reference_loader(
            info, settings.get("model", {}), str(checkpoint), reference_checkpoint, f"score method {method!r}"
        )
        blocks = [(layer, t) for layer in layers for t in units]
        reference = reference_rows(load(), blocks, [model.module(*b).out_features for b in blocks])
    log.info(
        "scoring %s layers %s: %d sequences, device %s, settings %s",
        method,
        layers,
        len(subset),
        device,
        recorded,
    )
    start = time.monotonic()
    frames, completeness = [], []
    for layer in layers:
        began = time.monotonic()
        frames.append(
            score_layer(model, subset, method, layer, score_cfg, device, units, reference=reference)
        )
        # attributions: per layer and module, the steps used and their completeness gap
        completeness += frames[-1].attrs.get(COMPLETENESS_KEY, [])
        # per layer in the log only: the table's provenance keeps one timing field, `seconds`
        log.info("layer %d: %d rows in %.1f s", layer, len(frames[-1]), time.monotonic() - began)
    df = pd.concat(frames, ignore_index=True)
    meta = {
        "method": method,
        "layers": layers,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha256_file(checkpoint),
        # The backbone weights the checkpoint was fine-tuned from (None: a checkpoint of older code).
        WEIGHTS_KEY: info.get("meta", {}).get(WEIGHTS_KEY),
        "subset": {
            "n": len(subset),
            "split": score_cfg["split"],
            "max_sequences": score_cfg["max_sequences"],
            "seed": settings.get("seed", 0),
            "accessions_sha256": subset_hash(subset["accession"].tolist()),
        },
        "settings": recorded,
        "device": str(device),
        "dtype": "bfloat16 autocast" if device.type == "cuda" and score_cfg.get("bf16", True) else "float32",
        "kneurons": version,
        "torch": torch.__version__,
        "seconds": round(time.monotonic() - start, 3),
    }
    if identities is not None:
        meta[SAES_KEY] = identities
    if completeness:
        meta[COMPLETENESS_KEY] = completeness
    write_score_table(df, out_path, meta)
    log.info("wrote %s (%d rows) in %.1f s", out_path, len(df), meta["seconds"])
    return df
