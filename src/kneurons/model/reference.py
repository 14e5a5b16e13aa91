"""The reference weights of a fine-tuned classifier: the weights its fine-tuning started from.

Two things roll a neuron back to them or measure how far it moved: the ``pretrained`` ablation
fill (``kneurons.ablation.fill``: a masked neuron outputs ``W_ref[i] . x + b_ref[i]`` on the input
it receives) and the ``delta`` scoring method (``kneurons.scoring.delta``: how much fine-tuning
changed that output). Both read the reference here, in one of two forms:

* **pretrained weights** (the paper's setting): the backbone named in the checkpoint, loaded from
  ``model.checkpoint`` or the backend's cache (``pretrained_reference``);
* **a classifier checkpoint** (the planted-knowledge benchmark, ``kneurons.planted``): the base
  model that a planted model was fine-tuned from (``checkpoint_reference``).

Either way the reference is identified by sha256 end to end: the fine-tuned checkpoint records the
sha256 of what it started from (``WEIGHTS_KEY`` in its metadata: the weights file, or the base
checkpoint file), and a reference whose sha256 differs is refused. A checkpoint fine-tuned from
random initialisation has no reference (``fine_tuned_from``), and both users refuse it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kneurons.errors import ConfigError, ModelError
from kneurons.model.backends import module_of
from kneurons.tables import WEIGHTS_KEY

log = logging.getLogger(__name__)

#: Checkpoint metadata key saying what fine-tuning started from: ``pretrained`` weights,
#: a classifier ``checkpoint`` (its sha256 under ``WEIGHTS_KEY``) or ``random init``.
#: Checkpoints written before the key existed say it with ``pretrained`` (True / False).
FINE_TUNED_FROM = "fine_tuned_from"
#: The values of ``FINE_TUNED_FROM``.
STARTS = ("pretrained", "checkpoint", "random init")

#: One module's reference rows: weight ``(n, d_in)`` and bias ``(n,)`` (None where it has none).
Rows = tuple[torch.Tensor, "torch.Tensor | None"]
#: ``(layer, module)`` -> its reference rows.
ReferenceRows = dict[tuple[int, str], Rows]


def fine_tuned_from(info: Mapping[str, Any]) -> str:
    """What the checkpoint with info ``info`` was fine-tuned from: one of ``STARTS``."""
    meta = info.get("meta", {}) or {}
    start = meta.get(FINE_TUNED_FROM)
    if start is not None:
        if start not in STARTS:
            raise ModelError(f"checkpoint metadata {FINE_TUNED_FROM}: {start!r} is not one of {STARTS}")
        return str(start)
    return "pretrained" if meta.get("pretrained", False) else "random init"


def reference_rows(
    reference: nn.Module, blocks: Sequence[tuple[int, str]], sizes: Sequence[int]
) -> ReferenceRows:
    """The weight and bias of each module of ``blocks`` in ``reference`` (a bare backbone or a
    classifier of the same architecture), detached copies; ``sizes`` are the fine-tuned model's
    unit counts, which the reference must have."""
    rows: ReferenceRows = {}
    for (layer, m), size in zip(blocks, sizes, strict=True):
        try:
            mod = module_of(reference, layer, m)
        except (IndexError, AttributeError) as exc:
            raise ModelError(f"reference model has no {m} in layer {layer}: {exc}") from exc
        if mod.out_features != size:
            raise ModelError(
                f"reference model's layer {layer} {m} has {mod.out_features} units, "
                f"the fine-tuned model {size}"
            )
        bias = mod.bias.detach().clone() if mod.bias is not None else None
        rows[(layer, m)] = (mod.weight.detach().clone(), bias)
    return rows


def pretrained_reference(
    info: Mapping[str, Any], model_cfg: Mapping[str, Any], source: str = "the checkpoint"
) -> Callable[[], nn.Module]:
    """Loader of the pre-fine-tuning backbone of a checkpoint with info ``info``.

    The backbone name and backend are the checkpoint's (``info["backbone"]``), the weights
    ``model.checkpoint`` (else the backend's cache); it downloads only if ``model.download`` allows.
    The loaded weights must be the ones fine-tuning started from: their sha256 is compared with
    the one the checkpoint (``source``) records, and a difference is an error.
    """

    def load() -> nn.Module:
        from kneurons.model import loading
        from kneurons.model.weights import weights_sha256

        backbone = loading.load_reference_backbone(info["backbone"], dict(model_cfg))
        recorded = info.get("meta", {}).get(WEIGHTS_KEY)
        if not recorded:
            log.warning(
                "%s records no sha256 of the weights it was fine-tuned from (written by older code); "
                "the pretrained fill's reference weights cannot be checked against them",
                source,
            )
            return backbone
        file = loading.reference_weights_path(info["backbone"], dict(model_cfg))
        actual = weights_sha256(file)
        if actual != recorded:
            raise ModelError(
                f"ablate.fill 'pretrained': the reference weights {file} (sha256 {actual}) are not the "
                f"weights {source} was fine-tuned from (sha256 {recorded}); point model.checkpoint at "
                f"the file fine-tuning used, or fine-tune again from {file}"
            )
        return backbone

    return load


def checkpoint_reference(
    path: str | Path, info: Mapping[str, Any], source: str = "the checkpoint"
) -> Callable[[], nn.Module]:
    """Loader of the classifier checkpoint ``path`` as the reference of the checkpoint with info
    ``info`` (``source``), which must have been fine-tuned from that very file: its sha256 is
    compared with the one ``source`` records (``WEIGHTS_KEY``), and a difference is an error."""

    def load() -> nn.Module:
        from kneurons.io import sha256_file
        from kneurons.model.checkpoint import load_classifier

        recorded = info.get("meta", {}).get(WEIGHTS_KEY)
        actual = sha256_file(path)
        if actual != recorded:
            raise ModelError(
                f"the reference checkpoint {path} (sha256 {actual}) is not the checkpoint {source} was "
                f"fine-tuned from (sha256 {recorded}); give the base model it was planted in"
            )
        return load_classifier(path)[0]

    return load


def reference_loader(
    info: Mapping[str, Any],
    model_cfg: Mapping[str, Any] | None = None,
    source: str = "the checkpoint",
    checkpoint: str | Path | None = None,
    what: str = "ablate.fill 'pretrained'",
) -> Callable[[], nn.Module]:
    """The loader of the reference of the checkpoint with info ``info`` (``source``): the classifier
    ``checkpoint`` when given, else the pretrained weights (``pretrained_reference`` with
    ``model_cfg``). Refused with a ConfigError naming ``what`` needs it when the checkpoint was
    fine-tuned from random initialisation, or from a checkpoint that was not given."""
    start = fine_tuned_from(info)
    if start == "random init":
        raise ConfigError(
            f"{what}: the reference is the pre-fine-tuning weights, but {source} was fine-tuned from random "
            f"initialisation (model.pretrained: false), so it has none"
        )
    if checkpoint is not None:
        return checkpoint_reference(checkpoint, info, source)
    if start == "checkpoint":
        raise ConfigError(
            f"{what}: {source} was fine-tuned from a classifier checkpoint (sha256 "
            f"{info.get('meta', {}).get(WEIGHTS_KEY)}), which is its reference; none was given"
        )
    return pretrained_reference(info, model_cfg or {}, source)
