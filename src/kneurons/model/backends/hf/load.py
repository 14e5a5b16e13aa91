"""Loading Hugging Face ESM-2 weights: snapshot folders (``EsmModel``, ``EsmForMaskedLM``,
``EsmForSequenceClassification``) and the offline hub cache, into the backbone ``hf_esm`` wraps."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from kneurons.errors import ModelError
from kneurons.model.backends import snapshot as hf_snapshot
from kneurons.model.backends.fair_esm.backend import get_alphabet
from kneurons.model.backends.hf.architecture import (
    DROPPED_KEYS,
    OPTIONAL_KEYS,
    backbone_config,
    build_backbone,
    check_config,
    require_transformers,
)
from kneurons.model.weights import snapshot_state_dict

if TYPE_CHECKING:
    from kneurons.model.backends.base import BackboneSpec


def backbone_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``EsmModel`` keys of an ``EsmModel``, ``EsmForMaskedLM`` or ``EsmForSequenceClassification`` state.

    Strips the task models' ``esm.`` prefix, drops their heads (``lm_head``, ``classifier``) and
    the pooler, and renames old LayerNorm ``gamma``/``beta`` to ``weight``/``bias``.
    """
    out: dict[str, torch.Tensor] = {}
    prefixed = any(k.startswith("esm.") for k in state)
    for key, value in state.items():
        if prefixed:
            if not key.startswith("esm."):
                continue  # the task head (lm_head.*, classifier.*)
            key = key[len("esm.") :]
        if DROPPED_KEYS.match(key):
            continue
        key = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key))
        out[key] = value
    return out


def check_vocab(snapshot: Path) -> None:
    """A snapshot's ``vocab.txt``, when it has one, must be ESM-2's (the fair-esm alphabet, in order)."""
    vocab = snapshot / "vocab.txt"
    if not vocab.is_file():
        return
    tokens = vocab.read_text(encoding="utf-8").split()
    if tokens != list(get_alphabet().all_toks):
        raise ModelError(f"{vocab}: not ESM-2's vocabulary; this backend tokenizes with ESM-2's alphabet")


def load_snapshot(snapshot: str | os.PathLike) -> nn.Module:
    """The ``EsmModel`` of a snapshot directory (config.json + model.safetensors or pytorch_model.bin)."""
    transformers = require_transformers()
    snapshot = Path(snapshot).expanduser()
    cfg = hf_snapshot.read_config(snapshot)
    check_config(cfg, str(snapshot / "config.json"))
    check_vocab(snapshot)
    state = backbone_state_dict(snapshot_state_dict(snapshot))
    config = transformers.EsmConfig(**backbone_config(cfg))
    model = transformers.EsmModel(config, add_pooling_layer=False)
    load_backbone_weights(model, state, str(snapshot))
    return model.eval()


def load_backbone_weights(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into an ``EsmModel``; only the unused contact head and rotary buffer may be absent."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ModelError(f"{where}: weights do not fit config.json: {exc}") from exc
    missing = [k for k in result.missing_keys if not OPTIONAL_KEYS.match(k)]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"{where}: not an ESM-2 EsmModel state dict: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {result.unexpected_keys[:5]}"
            f"{' ...' if len(result.unexpected_keys) > 5 else ''}"
        )


def resolve_snapshot(model_cfg: dict[str, Any]) -> Path:
    """The snapshot directory of ``model``: ``model.checkpoint``, else the hub cache entry of the name."""
    checkpoint = model_cfg.get("checkpoint")
    if checkpoint:
        path = Path(checkpoint).expanduser()
        problem = hf_snapshot.snapshot_dir_problem(path)
        if problem:
            raise ModelError(f"model.checkpoint: {problem}")
        return path
    name = model_cfg["name"]
    if name == "custom":
        raise ModelError(
            "model.backend hf with model.name custom needs model.checkpoint (a snapshot directory)"
        )
    return hf_snapshot.find_snapshot(f"{hf_snapshot.HF_ORG}/{hf_snapshot.fair_esm_name(name)}")


def load_hf_backbone(model_cfg: dict[str, Any]) -> tuple[nn.Module, BackboneSpec]:
    """The HF backbone the ``model`` config section asks for, and its spec (shape from config.json).

    ``pretrained: true`` loads ``model.checkpoint`` (a snapshot directory) or the hub cache's
    snapshot of ``facebook/<name>``; otherwise the architecture is built with random weights.
    """
    from kneurons.model.architectures import ESM2_ARCHITECTURES
    from kneurons.model.backends.base import BackboneSpec

    if not model_cfg.get("pretrained", False):
        spec = BackboneSpec.from_config(model_cfg)
        return build_backbone(spec), spec
    snapshot = resolve_snapshot(model_cfg)
    backbone = load_snapshot(snapshot)
    cfg = backbone_config(hf_snapshot.read_config(snapshot))
    shape = (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"])
    official = ESM2_ARCHITECTURES.get(hf_snapshot.fair_esm_name(model_cfg["name"]))
    if official is not None and shape != official:
        raise ModelError(
            f"{snapshot}: holds an ESM-2 with (layers, embed_dim, heads) = {shape}, "
            f"but {model_cfg['name']} has {official}"
        )
    spec = BackboneSpec(
        name=model_cfg["name"],
        num_layers=shape[0],
        embed_dim=shape[1],
        attention_heads=shape[2],
        token_dropout=bool(cfg["token_dropout"]),
        backend="hf",
        hf_config=cfg,
    )
    return backbone, spec
