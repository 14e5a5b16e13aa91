"""The scoring job: one (method, layer) score table from the checkpoint and the scoring set."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kneurons.errors import InputError
from kneurons.io import sha256_file
from kneurons.scoring import registry
from kneurons.scoring.base import score_layer
from kneurons.scoring.subset import subset_hash
from kneurons.tables import WEIGHTS_KEY, read_scoring_set, write_score_table

log = logging.getLogger(__name__)


def run_score_job(
    checkpoint: str | Path,
    scoring_set_path: str | Path,
    method: str,
    layer: int,
    settings: dict[str, Any],
    out_path: str | Path,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Score the six modules of one layer by one method and write ``out_path`` with its provenance.

    ``settings`` are the rule's params (``kneurons.settings.job_settings('score_layer', config, method=m)``):
    ``score`` (the method's keys), ``model.attention``, ``seed``; a whole validated config works too.
    """
    from kneurons import __version__ as version
    from kneurons.model.classifier import load_job_classifier

    device = torch.device(device)
    model, info = load_job_classifier(checkpoint, settings, device)
    subset = read_scoring_set(scoring_set_path)
    labels = list(info["labels"])
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
    score_cfg = settings["score"]
    recorded = registry.get(method).settings(score_cfg)
    log.info(
        "scoring %s layer %d: %d sequences, device %s, settings %s",
        method,
        layer,
        len(subset),
        device,
        recorded,
    )
    start = time.monotonic()
    df = score_layer(model, subset, method, layer, score_cfg, device=device)
    meta = {
        "method": method,
        "layer": int(layer),
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
    write_score_table(df, out_path, meta)
    log.info("wrote %s (%d rows) in %.1f s", out_path, len(df), meta["seconds"])
    return df
