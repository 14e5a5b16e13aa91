"""Torch files the project writes, and the fine-tuned classifier's checkpoint.

``save_tensors`` is the one place a torch file is written (checkpoints, training state, converted
weights, trained SAEs): atomically, and byte-identical for identical contents. A classifier
checkpoint (``save_classifier``) is self-contained: weights, the backbone's spec (its backend
included, so ``load_classifier`` rebuilds the same library's model), the label map and metadata,
all tensors and plain containers, read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from kneurons.errors import ModelError
from kneurons.io import atomic_path
from kneurons.model.backends.base import BackboneSpec
from kneurons.model.classifier import EsmClassifier, build_backbone

CHECKPOINT_FORMAT = "kneurons-classifier/1"


def save_tensors(path: str | Path, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically (the one place the project writes torch files).

    Through a file object: ``torch.save(path)`` names the archive after the (random) temporary
    file, so identical contents would differ in bytes and in sha256. A SIGTERM (SystemExit,
    ``kneurons.jobs.signals``) that lands inside ``torch.save`` makes its zip writer's clean-up
    raise a RuntimeError ("unexpected pos ...") that hides it; the SystemExit is raised again,
    so a stopped job exits as terminated, with no misleading traceback.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        try:
            torch.save(obj, fh)
        except RuntimeError as exc:
            if isinstance(exc.__context__, SystemExit):
                raise exc.__context__ from None
            raise


def save_classifier(
    path: str | Path,
    model: EsmClassifier,
    spec: BackboneSpec,
    labels: list[str],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write a self-contained checkpoint (weights, backbone spec, label map, metadata) atomically.

    Only tensors and plain Python containers are stored, so ``load_classifier`` can use
    ``torch.load(weights_only=True)``.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "backbone": asdict(spec),
        "pooling": model.pooling,
        "labels": list(labels),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }
    save_tensors(path, payload)


def load_classifier(
    path: str | Path, map_location: str | torch.device = "cpu", attention: str = "sdpa"
) -> tuple[EsmClassifier, dict]:
    """Load a checkpoint written by ``save_classifier``: ``(model in eval mode, payload without weights)``.

    ``attention`` is the config's ``model.attention`` (``sdpa`` | ``reference``); weights do not depend on it.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated files, other formats, pickles with foreign globals
        raise ModelError(
            f"{path}: not a readable kneurons classifier checkpoint ({exc.__class__.__name__}: {exc})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ModelError(f"{path}: not a kneurons classifier checkpoint (format {found!r})")
    spec = BackboneSpec(**payload["backbone"])
    model = EsmClassifier(
        build_backbone(spec),
        num_classes=len(payload["labels"]),
        pooling=payload["pooling"],
        attention=attention,
    )
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit the recorded architecture: {exc}") from exc
    model.eval()
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, info


def load_job_classifier(
    path: str | Path, cfg: dict, map_location: str | torch.device = "cpu"
) -> tuple[EsmClassifier, dict]:
    """``load_classifier`` for a workflow job: the attention implementation comes from ``cfg['model']``.

    Scoring, ablation and characterisation must run the attention the config names; a partial
    config (tests, library use) gets the schema default, ``sdpa``.
    """
    return load_classifier(
        path, map_location=map_location, attention=cfg.get("model", {}).get("attention", "sdpa")
    )
