"""Loading ESM C weights: an official EvolutionaryScale ``.pth`` (converted: the fused q/k/v
projection split by rows, the SwiGLU input projection into gate and up) or a transformers snapshot
folder of ``EsmcModel`` or a model with a head, into the backbone ``esmc`` wraps."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kneurons.errors import ModelError
from kneurons.model.backends.esmc.architecture import esmc_config, transformers_esmc
from kneurons.model.backends.snapshot import read_config, snapshot_dir_problem
from kneurons.model.weights import refuse_non_finite, snapshot_state_dict

#: Keys of an official checkpoint that are not part of the backbone (the masked-LM head).
OFFICIAL_HEAD_PREFIXES = ("sequence_head.",)
#: Keys of a transformers snapshot that are heads (EsmcForMaskedLM, EsmcForSequenceClassification).
HF_HEAD_PREFIXES = ("lm_head.", "classifier.")


def esmc_from_official(
    state_dict: dict[str, torch.Tensor], source: str = "official ESM C state dict"
) -> tuple[Any, dict[str, torch.Tensor]]:
    """An EvolutionaryScale ``esm``-package ESM C state dict as ``(EsmcConfig, EsmcModel state dict)``.

    The fused ``attn.layernorm_qkv.1`` projection ``(3d, d)`` splits by rows into q, k, v (the
    esm package chunks its output in that order); the SwiGLU ``ffn.1`` ``(2h, d)`` splits into
    ``gate_proj`` (first half, the one passed through SiLU) and ``up_proj``. Sizes come from the
    tensors; heads are ``d / 64`` (every ESM C has 64-dim heads). The masked-LM head is dropped;
    any other key the conversion does not use is an error. Every error is a ModelError naming
    ``source`` (the file the state dict came from).
    """
    sd = dict(state_dict)
    if "embed.weight" not in sd or "transformer.norm.weight" not in sd:
        raise ModelError(
            f"{source}: not an official ESM C state dict (no 'embed.weight' / 'transformer.norm.weight'); "
            f"first keys: {', '.join(list(sd)[:5])}"
        )
    vocab, d = sd["embed.weight"].shape
    blocks = sorted({int(k.split(".")[2]) for k in sd if k.startswith("transformer.blocks.")})
    if blocks != list(range(len(blocks))) or not blocks:
        raise ModelError(f"{source}: transformer blocks {blocks} are not 0..n-1 (a block is missing)")
    if d % 64:
        raise ModelError(f"{source}: width {d} is not a multiple of the 64-dim heads")

    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise ModelError(f"{source}: missing {key}")
        used.add(key)
        return sd[key]

    hidden = take("transformer.blocks.0.ffn.3.weight").shape[1]
    config = esmc_config(len(blocks), d, d // 64, intermediate_size=hidden)
    config.vocab_size = int(vocab)
    out = {"embed_tokens.weight": take("embed.weight"), "norm.weight": take("transformer.norm.weight")}
    for i in blocks:
        src, dst = f"transformer.blocks.{i}.", f"layers.{i}."
        qkv = take(src + "attn.layernorm_qkv.1.weight")
        if qkv.shape != (3 * d, d):
            raise ModelError(
                f"{source}: {src}attn.layernorm_qkv.1.weight is {tuple(qkv.shape)}, not {(3 * d, d)} "
                f"(the fused q, k, v projection of width {d})"
            )
        q, k, v = qkv.chunk(3, dim=0)
        gate, up = take(src + "ffn.1.weight").chunk(2, dim=0)
        out |= {
            dst + "input_layernorm.weight": take(src + "attn.layernorm_qkv.0.weight"),
            dst + "input_layernorm.bias": take(src + "attn.layernorm_qkv.0.bias"),
            dst + "self_attn.q_proj.weight": q.clone(),
            dst + "self_attn.k_proj.weight": k.clone(),
            dst + "self_attn.v_proj.weight": v.clone(),
            dst + "self_attn.q_norm.weight": take(src + "attn.q_ln.weight"),
            dst + "self_attn.k_norm.weight": take(src + "attn.k_ln.weight"),
            dst + "self_attn.o_proj.weight": take(src + "attn.out_proj.weight"),
            dst + "post_attention_layernorm.weight": take(src + "ffn.0.weight"),
            dst + "post_attention_layernorm.bias": take(src + "ffn.0.bias"),
            dst + "mlp.gate_proj.weight": gate.clone(),
            dst + "mlp.up_proj.weight": up.clone(),
            dst + "mlp.down_proj.weight": take(src + "ffn.3.weight"),
        }
    left = [
        k for k in sd if k not in used and not k.startswith(OFFICIAL_HEAD_PREFIXES) and ".rotary." not in k
    ]
    if left:
        raise ModelError(
            f"{source}: {len(left)} keys the ESM C conversion does not know "
            f"(e.g. {', '.join(left[:4])}); biases or other variants are not supported"
        )
    return config, out


def _from_snapshot(folder: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    """``(EsmcConfig, EsmcModel state dict)`` of a transformers snapshot of EsmcModel or one with a head."""
    t = transformers_esmc()
    if not (folder / "config.json").is_file():  # what the folder lacks; missing weights: snapshot_state_dict
        raise ModelError(f"model.checkpoint: {snapshot_dir_problem(folder)}")
    cfg = read_config(folder)
    if cfg.get("model_type") != "esmc":
        raise ModelError(f"{folder}/config.json: model_type {cfg.get('model_type')!r}, not 'esmc'")
    config = t.EsmcConfig.from_dict(cfg)
    state = {}
    for key, value in snapshot_state_dict(folder).items():
        if key.startswith(HF_HEAD_PREFIXES):
            continue
        state[key.removeprefix("esmc.")] = value
    return config, state


def is_esmc_checkpoint(path: str | os.PathLike) -> bool:
    """True for what :func:`load_esmc_backbone` reads, by its look: an ESM C snapshot folder or a ``.pth``."""
    path = Path(path).expanduser()
    if path.is_dir():
        try:
            return json.loads((path / "config.json").read_text()).get("model_type") == "esmc"
        except (OSError, ValueError):
            return False
    return path.is_file() and path.suffix == ".pth"


def load_esmc_backbone(checkpoint_path: str | os.PathLike) -> nn.Module:
    """Pretrained ESM C from a local file: a transformers snapshot folder or an official ``.pth``.

    A folder needs ``config.json`` with ``model_type: esmc`` and the weights of ``EsmcModel``,
    ``EsmcForMaskedLM`` or ``EsmcForSequenceClassification`` (heads are dropped). A file is an
    EvolutionaryScale ``esm``-package state dict (``esmc_300m_2024_12_v0.pth``, ...), read with
    ``torch.load(weights_only=True)`` and converted by :func:`esmc_from_official`. Every backbone
    tensor must be present, and nothing else (a strict load).
    """
    t = transformers_esmc()
    path = Path(checkpoint_path).expanduser()
    if path.is_dir():
        config, state = _from_snapshot(path)
    elif path.is_file():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(
                f"{path}: cannot be read as an ESM C state dict with weights_only=True "
                f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from exc
        if not isinstance(data, dict):
            raise ModelError(f"{path}: holds a {type(data).__name__}, not an ESM C state dict")
        refuse_non_finite(data, path)
        config, state = esmc_from_official(data, str(path))
    else:
        raise ModelError(
            f"model.checkpoint: {path} does not exist (ESM C weights: a snapshot folder or a .pth)"
        )
    backbone = t.EsmcModel(config)
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit ESM C's architecture: {exc}") from exc
    return backbone.float().eval()
