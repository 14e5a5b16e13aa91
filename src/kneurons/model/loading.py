"""The configured backbone and classifier, whatever the backend: pretrained weights or random init.

Which library reads the weights is the registry's business (``kneurons.model.backends``): each
backend class loads its own files (``load``) and says where they are (``weights_path``). Here
are what the stages ask: the backbone of the ``model`` config section, a classifier on it, the
identity of its initial weights (recorded end to end), and the pretrained reference weights of a
fine-tuned classifier (the ``pretrained`` ablation fill).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from kneurons.errors import ModelError
from kneurons.model.backends import backend_class, resolve_backend
from kneurons.model.backends.base import BackboneSpec
from kneurons.model.classifier import EsmClassifier
from kneurons.model.weights import Downloader, weights_sha256


def weights_identity(model_cfg: dict[str, Any], seed: int) -> str:
    """What the backbone's initial weights are: the weights file's sha256, or ``random-init:<seed>``.

    ``seed`` is the one random init is drawn from (``model.init_seed``, else the run's seed:
    ``seed_everything`` before the backbone is built), so it names those weights. Call after the
    backbone was loaded: the file is then in place (no download here) and its sha256 memoised.
    A backend that cannot say where its weights are gives ``unhashed:<backend>:<name>``.
    """
    if not model_cfg.get("pretrained", False):
        return f"random-init:{seed}"
    backend = resolve_backend(model_cfg)
    path = backend_class(backend).weights_path(model_cfg)
    if path is None:
        return f"unhashed:{backend}:{model_cfg['name']}"
    return weights_sha256(path)


def load_backbone(
    model_cfg: dict[str, Any],
    download: bool = True,
    downloader: Downloader | None = None,
) -> tuple[nn.Module, BackboneSpec]:
    """The backbone the ``model`` config section asks for: pretrained weights or random init.

    Downloads happen only when both ``download`` and the config's ``model.download`` allow them
    (and only where the backend's library downloads at all). The backend (``model.backend``,
    ``auto`` inferred) loads its own files.
    """
    cls = backend_class(resolve_backend(model_cfg))
    return cls.load(model_cfg, download=download and model_cfg.get("download", True), downloader=downloader)


def _reference_config(backbone_info: dict[str, Any], model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` section that loads a fine-tuned classifier's pretrained backbone: its recorded
    name and backend (old checkpoints: fair-esm), pretrained, the configured checkpoint and download."""
    backend = backbone_info.get("backend", BackboneSpec.backend)  # the spec's default: fair-esm
    return {**model_cfg, "name": backbone_info["name"], "backend": backend, "pretrained": True}


def load_reference_backbone(backbone_info: dict[str, Any], model_cfg: dict[str, Any]) -> nn.Module:
    """The pretrained backbone a classifier was fine-tuned from (``ablate.fill: pretrained``).

    ``backbone_info`` is the checkpoint's recorded spec (its name and backend; old checkpoints are
    fair-esm); the weights come from ``model.checkpoint``, else the backend's cache.
    """
    cfg = _reference_config(backbone_info, model_cfg)
    return backend_class(cfg["backend"]).load(cfg, download=bool(cfg.get("download", True)))[0]


def reference_weights_path(backbone_info: dict[str, Any], model_cfg: dict[str, Any]) -> Path:
    """Where ``load_reference_backbone`` reads the weights: ``model.checkpoint``, else the backend's cache."""
    cfg = _reference_config(backbone_info, model_cfg)
    path = backend_class(cfg["backend"]).weights_path(cfg)
    if path is None:
        raise ModelError(
            f"the pretrained weights of {cfg['name']} (backend {cfg['backend']}) are found only at "
            f"model.checkpoint, which is not set"
        )
    return path


def build_classifier(
    model_cfg: dict[str, Any],
    num_classes: int,
    download: bool = True,
    downloader: Downloader | None = None,
    reseed: Callable[[], None] | None = None,
) -> tuple[EsmClassifier, BackboneSpec]:
    """An ``EsmClassifier`` on the configured backbone, with a freshly initialised head.

    ``reseed`` runs between the backbone and the head: replicates share the backbone's random
    initialisation (``model.init_seed``) and differ from the head on (their training seed).
    """
    backbone, spec = load_backbone(model_cfg, download=download, downloader=downloader)
    if reseed is not None:
        reseed()
    classifier = EsmClassifier(
        backbone,
        num_classes,
        pooling=model_cfg.get("pooling", "mean"),
        attention=model_cfg.get("attention", "sdpa"),
    )
    return classifier, spec
