"""ESM-2 backbones: pretrained weights (fair-esm download, torch hub cache, local file) or random init.

Official fair-esm checkpoints are pickles holding an ``argparse.Namespace`` (the training
config in ``cfg["model"]``) next to the tensors. fair-esm 2.0.0 loads them with a bare
``torch.load`` (and its hub helper with ``weights_only=False``), which either fails on
torch >= 2.6 or unpickles arbitrary code. Here every checkpoint is read with
``torch.load(weights_only=True)`` inside ``torch.serialization.safe_globals`` allowing only
``argparse.Namespace``; the model is then built by fair-esm's own
``load_model_and_alphabet_core`` from the already-loaded data.
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import esm
import torch

from kneurons.config import ESM2_ARCHITECTURES
from kneurons.errors import ModelError
from kneurons.io import sha256_file
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone
from kneurons.model.hf_snapshot import resolve_backend

log = logging.getLogger(__name__)

#: fair-esm's download location of the model weights (the contact-regression file is not needed
#: for classification and is not fetched).
MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"

#: (size in bytes, sha256) of official checkpoint files, by file name. Only values that were
#: checked against the published files are listed; other files are loaded unverified (logged).
KNOWN_CHECKPOINTS: dict[str, tuple[int, str]] = {
    "esm2_t6_8M_UR50D.pt": (30_104_453, "c3c1145126ec08895c39c24a5df5e6f899441bf641eb09c72504ef9b7acd9e40"),
    "esm2_t12_35M_UR50D.pt": (
        134_095_705,
        "7f21e80e61d16a71735163ef555d3009afb0c98da74c48e29df08606973cc55e",
    ),
}

#: The only non-tensor globals an official ESM-2 checkpoint needs.
CHECKPOINT_SAFE_GLOBALS: list[Any] = [argparse.Namespace]

Downloader = Callable[[str, Path], None]


def hub_checkpoint_dir() -> Path:
    """Where fair-esm (via torch hub) keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def verify_checkpoint(path: str | os.PathLike) -> bool:
    """Check size and sha256 of an official checkpoint file; ``False`` when no checksum is known.

    Raises ModelError naming the file and both checksums on a mismatch.
    """
    path = Path(path)
    known = KNOWN_CHECKPOINTS.get(path.name)
    if known is None:
        log.info("%s: no known sha256 for this file name; loaded unverified", path)
        return False
    size, sha = known
    actual_size = path.stat().st_size
    if actual_size != size:
        raise ModelError(
            f"{path}: size {actual_size} bytes, expected {size} for the official {path.name} "
            f"(truncated or different file; delete it and download again)"
        )
    actual = sha256_file(path)
    if actual != sha:
        raise ModelError(
            f"{path}: sha256 {actual} does not match the official {path.name} ({sha}); "
            f"delete the file and download again"
        )
    return True


def load_esm_checkpoint(path: str | os.PathLike) -> dict:
    """Read an official-layout ESM checkpoint safely (tensors, containers and argparse.Namespace only)."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"{path}: cannot be read as an ESM checkpoint with weights_only=True and only "
            f"argparse.Namespace allowed "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(data, dict) or "model" not in data:
        raise ModelError(f"{path}: not an ESM checkpoint (expected a dict with a 'model' state dict)")
    return data


def _download(url: str, dest: Path) -> None:
    """Fetch ``url`` to ``dest`` (torch hub writes a temporary file and renames it)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(dest), progress=False)


def resolve_checkpoint(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    download: bool = True,
    downloader: Downloader | None = None,
) -> Path:
    """Path of the weights of ``name``: the local ``checkpoint``, else the hub cache, downloading if allowed.

    Raises ModelError naming the model, the cache path looked in, and how to provide the file.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ModelError(f"model.checkpoint: {path} does not exist (weights of {name})")
        return path
    path = hub_checkpoint_dir() / f"{name}.pt"
    if path.is_file():
        return path
    url = MODEL_URL.format(name=name)
    how = (
        f"download {url} on a machine with internet and copy it to {path} (or set TORCH_HOME), "
        f"or set model.checkpoint to its path"
    )
    if not download:
        raise ModelError(f"pretrained weights of {name} not found at {path}; {how}")
    try:
        log.info("downloading %s to %s", url, path)
        (downloader or _download)(url, path)
    except Exception as exc:
        raise ModelError(
            f"pretrained weights of {name} not found at {path} and the download failed "
            f"({exc.__class__.__name__}: {exc}); {how}"
        ) from exc
    if not path.is_file():
        raise ModelError(f"pretrained weights of {name}: the download left no file at {path}; {how}")
    return path


def load_pretrained_backbone(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    download: bool = True,
    downloader: Downloader | None = None,
) -> esm.model.esm2.ESM2:
    """The pretrained fair-esm ESM-2 ``name`` (hub cache, download, or a local official-layout file)."""
    if name not in ESM2_ARCHITECTURES:
        raise ModelError(f"no pretrained weights for {name!r}; known: {', '.join(ESM2_ARCHITECTURES)}")
    path = resolve_checkpoint(name, checkpoint, download=download, downloader=downloader)
    verify_checkpoint(path)
    data = load_esm_checkpoint(path)
    try:
        with warnings.catch_warnings():
            # The contact-regression weights are not loaded on purpose (no contact prediction here).
            warnings.filterwarnings("ignore", message="Regression weights not found")
            backbone, _ = esm.pretrained.load_model_and_alphabet_core(name, data, None)
    except Exception as exc:
        raise ModelError(f"{path}: not a valid {name} checkpoint ({exc.__class__.__name__}: {exc})") from exc
    want = ESM2_ARCHITECTURES[name]
    got = (backbone.num_layers, backbone.embed_dim, backbone.attention_heads)
    if got != want:
        raise ModelError(
            f"{path}: holds an ESM-2 with (layers, embed_dim, heads) = {got}, but {name} has {want}"
        )
    return backbone


def load_backbone(
    model_cfg: dict[str, Any],
    download: bool = True,
    downloader: Downloader | None = None,
) -> tuple[esm.model.esm2.ESM2, BackboneSpec]:
    """The backbone the ``model`` config section asks for: pretrained weights or random init.

    Downloads happen only when both ``download`` and the config's ``model.download`` allow them.
    The backend (``model.backend``, ``auto`` inferred) picks the library; fair-esm's path is below.
    """
    backend = resolve_backend(model_cfg)
    if backend != "fair-esm":
        return load_backend_backbone(backend, model_cfg)
    spec = BackboneSpec.from_config(model_cfg)
    if model_cfg.get("pretrained", False):
        backbone = load_pretrained_backbone(
            spec.name,
            model_cfg.get("checkpoint"),
            download=download and model_cfg.get("download", True),
            downloader=downloader,
        )
        spec = BackboneSpec(
            name=spec.name,
            num_layers=backbone.num_layers,
            embed_dim=backbone.embed_dim,
            attention_heads=backbone.attention_heads,
            token_dropout=bool(backbone.token_dropout),
        )
        return backbone, spec
    return build_backbone(spec), spec


def load_backend_backbone(backend: str, model_cfg: dict[str, Any]) -> tuple[torch.nn.Module, BackboneSpec]:
    """The backbone and spec of a backend other than fair-esm (offline: no download)."""
    if backend == "hf":
        from kneurons.model.hf_esm import load_hf_backbone

        return load_hf_backbone(model_cfg)
    raise ModelError(f"model.backend: {backend!r} is not available in this version; use fair-esm or hf")


def load_reference_backbone(backbone_info: dict[str, Any], model_cfg: dict[str, Any]) -> torch.nn.Module:
    """The pretrained backbone a classifier was fine-tuned from (``ablate.fill: pretrained``).

    ``backbone_info`` is the checkpoint's recorded spec (its name and backend; old checkpoints are
    fair-esm); the weights come from ``model.checkpoint``, else the backend's cache.
    """
    backend = backbone_info.get("backend", "fair-esm")
    if backend != "fair-esm":
        cfg = {**model_cfg, "name": backbone_info["name"], "backend": backend, "pretrained": True}
        return load_backend_backbone(backend, cfg)[0]
    return load_pretrained_backbone(
        backbone_info["name"], model_cfg.get("checkpoint"), download=bool(model_cfg.get("download", True))
    )


def build_classifier(
    model_cfg: dict[str, Any],
    num_classes: int,
    download: bool = True,
    downloader: Downloader | None = None,
) -> tuple[EsmClassifier, BackboneSpec]:
    """An ``EsmClassifier`` on the configured backbone, with a freshly initialised head."""
    backbone, spec = load_backbone(model_cfg, download=download, downloader=downloader)
    classifier = EsmClassifier(
        backbone,
        num_classes,
        pooling=model_cfg.get("pooling", "mean"),
        attention=model_cfg.get("attention", "sdpa"),
    )
    return classifier, spec
