"""The model backends: one registry of the libraries a backbone can come from.

A **backend** wraps the transformer of one library and is the only code that knows its insides
(``base.Backend``: embed, run layers from ``l``, the named modules ``q_proj`` .. ``fc2``, resume
points, stream points). Each family is a sub-package (``fair_esm``, ``hf``, ``esmc``) holding its
backend class and its loaders; the class says what it accepts (``accepts``), how to build a
backbone with random weights (``build``), how to load the configured one (``load``) and where its
pretrained weights are (``weights_path``).

This module is the registry, and it is torch-free: configuration validation reads what each
backend takes (``BackendInfo``) before anything imports torch, and the implementation class is
imported only when asked for (``backend_class``). Choosing a backend by name or by backbone
happens here and nowhere else: no ``if backend == ...`` outside this registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kneurons.errors import ModelError
from kneurons.model.backends.snapshot import HF_ORG, is_snapshot_dir, read_config

if TYPE_CHECKING:
    from torch import nn

    from kneurons.model.backends.base import Backend


@dataclass(frozen=True)
class BackendInfo:
    """What configuration validation needs to know about a backend, without importing it.

    ``checkpoints``: what ``model.checkpoint`` may be for it (``file``: one weights file,
    ``dir``: a snapshot directory), and ``reads`` says it in words; ``hub_names``: whether
    ``model.name`` may be a Hugging Face repository (``facebook/esm2_...``; a backend that names
    models otherwise refuses it); ``file_shape``: ``module:function`` reading ``(layers, embed_dim,
    heads)`` of a weights file without torch (None: a file's shape is checked when it is loaded);
    ``implementation``: ``module:Class`` of the backend.
    """

    name: str
    library: str
    checkpoints: frozenset[str]
    reads: str
    hub_names: bool
    file_shape: str | None
    implementation: str

    def read_file_shape(self, path: Path) -> tuple[int, int, int] | None:
        """``(layers, embed_dim, heads)`` of a weights file, torch-free; None when unknown."""
        if self.file_shape is None:
            return None
        module, fn = self.file_shape.split(":")
        return getattr(importlib.import_module(module), fn)(path)

    def backend_class(self) -> type[Backend]:
        """The backend class (imports its library)."""
        module, cls = self.implementation.split(":")
        return getattr(importlib.import_module(module), cls)


#: Every backend, by the name ``model.backend`` gives it, in the order ``backend_for`` tries them.
BACKENDS: dict[str, BackendInfo] = {
    info.name: info
    for info in (
        BackendInfo(
            "fair-esm",
            "fair-esm's ESM2",
            frozenset({"file"}),
            reads="one .pt file",
            hub_names=False,
            file_shape="kneurons.model.backends.fair_esm.checkpoint_shape:read_checkpoint_shape",
            implementation="kneurons.model.backends.fair_esm.backend:FairEsmBackend",
        ),
        BackendInfo(
            "hf",
            "Hugging Face transformers' EsmModel",
            frozenset({"dir"}),
            reads="a snapshot directory (config.json + weights)",
            hub_names=True,
            file_shape=None,
            implementation="kneurons.model.backends.hf.backend:HfEsmBackend",
        ),
        BackendInfo(
            "esmc",
            "transformers' EsmcModel (ESM C)",
            # EvolutionaryScale's official .pth, or a transformers snapshot folder
            frozenset({"file", "dir"}),
            reads="an official .pth file or a snapshot directory",
            hub_names=True,
            file_shape=None,
            implementation="kneurons.model.backends.esmc.backend:EsmcBackend",
        ),
    )
}

#: Values of ``model.backend``: ``auto`` infers one of the registered backends (``resolve_backend``).
BACKEND_CHOICES: tuple[str, ...] = ("auto", *BACKENDS)


def get(name: str) -> BackendInfo:
    """The registry entry of backend ``name`` (ModelError naming the known ones otherwise)."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ModelError(f"no model backend {name!r}; known: {', '.join(BACKENDS)}") from None


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name`` (imports its library)."""
    return get(name).backend_class()


def resolve_backend(model_cfg: dict[str, Any]) -> str:
    """The backend of the ``model`` config section; ``auto`` is inferred.

    From ``model.checkpoint`` when it exists: a snapshot directory is ``hf`` (``esmc`` when its
    config.json's ``model_type`` is ``esmc``), a ``.pth`` file (EvolutionaryScale's) ``esmc``,
    another file ``fair-esm``. Otherwise from ``model.name``: ``facebook/...`` is ``hf``, anything
    else ``fair-esm``.
    """
    backend = model_cfg.get("backend", "auto")
    if backend != "auto":
        return backend
    checkpoint = model_cfg.get("checkpoint")
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if is_snapshot_dir(path):
            return "esmc" if read_config(path).get("model_type") == "esmc" else "hf"
        if path.is_file():
            return "esmc" if path.suffix == ".pth" else "fair-esm"
    return "hf" if str(model_cfg.get("name", "")).startswith(f"{HF_ORG}/") else "fair-esm"


def backend_for(backbone: nn.Module) -> Backend:
    """The backend of a bare backbone (e.g. pretrained reference weights), by its class."""
    for info in BACKENDS.values():
        cls = info.backend_class()
        if cls.accepts(backbone):
            return cls(backbone)
    raise ModelError(f"no model backend for a {type(backbone).__name__} backbone")


def module_of(model: nn.Module, layer: int, module_type: str) -> Any:
    """Module ``(layer, module_type)`` of a classifier or of a bare backbone of a known backend."""
    backend = getattr(model, "backend", None) or backend_for(model)
    return backend.module(layer, module_type)
