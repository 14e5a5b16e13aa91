"""ESM-2 weights between fair-esm and Hugging Face layouts: ``kneurons convert --to hf|fair-esm SRC DEST``.

The two libraries hold the same tensors under other names (``MODULE_PAIRS``): fair-esm's
``layers.{i}.self_attn.q_proj`` is HF's ``esm.encoder.layer.{i}.attention.self.query`` and so on.
A fair-esm file is written in the official layout (``{"model": {"encoder.<key>": tensor},
"cfg": {"model": Namespace(encoder_layers, encoder_embed_dim, encoder_attention_heads,
token_dropout)}}``), which fair-esm and ``kneurons.model.backends.fair_esm.weights`` read; an HF snapshot
directory as ``EsmForMaskedLM`` (``config.json`` + ``model.safetensors``; ``vocab.txt`` for HF's
tokenizer). Tied ``lm_head`` weights are stored once, as HF does.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from kneurons.errors import KneuronsError, ModelError
from kneurons.io import atomic_path
from kneurons.model.backends import snapshot as hf_snapshot
from kneurons.model.backends.hf.architecture import esm2_config
from kneurons.model.backends.hf.load import backbone_state_dict
from kneurons.model.checkpoint import save_tensors
from kneurons.model.weights import snapshot_state_dict

log = logging.getLogger(__name__)

#: fair-esm key inside ``layers.{i}.`` -> HF key inside ``encoder.layer.{i}.``.
MODULE_PAIRS: dict[str, str] = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "final_layer_norm": "LayerNorm",
}

#: fair-esm key -> HF ``EsmForMaskedLM`` key, outside the layers.
TOP_PAIRS: dict[str, str] = {
    "embed_tokens.weight": "esm.embeddings.word_embeddings.weight",
    "emb_layer_norm_after.weight": "esm.encoder.emb_layer_norm_after.weight",
    "emb_layer_norm_after.bias": "esm.encoder.emb_layer_norm_after.bias",
    "contact_head.regression.weight": "esm.contact_head.regression.weight",
    "contact_head.regression.bias": "esm.contact_head.regression.bias",
    "lm_head.dense.weight": "lm_head.dense.weight",
    "lm_head.dense.bias": "lm_head.dense.bias",
    "lm_head.layer_norm.weight": "lm_head.layer_norm.weight",
    "lm_head.layer_norm.bias": "lm_head.layer_norm.bias",
    "lm_head.bias": "lm_head.bias",
}

_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)\.(weight|bias)$")
_HF_LAYER_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
_ROT = re.compile(r"^layers\.\d+\.self_attn\.rot_emb\.inv_freq$")


def _num_layers(keys: Sequence[str], pattern: re.Pattern) -> int:
    layers = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    if not layers or layers != set(range(max(layers) + 1)):
        raise ModelError(f"no consecutive transformer layers in the state dict (found {sorted(layers)})")
    return max(layers) + 1


def fair_esm_to_hf(
    state_dict: dict[str, torch.Tensor], attention_heads: int, token_dropout: bool = True
) -> tuple[dict[str, torch.Tensor], dict]:
    """An ESM2 state dict (fair-esm keys) as HF ``EsmForMaskedLM`` tensors and its ``config.json`` values.

    ``attention_heads`` is not in the tensors' shapes, so it is given. Every tensor is carried
    over; fair-esm's tied ``lm_head.weight`` becomes HF's tied decoder (not stored).
    """
    sd = {re.sub(r"^(encoder\.sentence_encoder\.|encoder\.)", "", k): v for k, v in state_dict.items()}
    n_layers = _num_layers(list(sd), _LAYER_KEY)
    embed_dim = int(sd["embed_tokens.weight"].shape[1])
    if embed_dim % attention_heads:
        raise ModelError(f"embed_dim {embed_dim} is not divisible by {attention_heads} attention heads")
    out: dict[str, torch.Tensor] = {}
    unused = []
    for key, value in sd.items():
        if key in TOP_PAIRS:
            out[TOP_PAIRS[key]] = value
        elif (m := _LAYER_KEY.match(key)) and m.group(2) in MODULE_PAIRS:
            out[f"esm.encoder.layer.{m.group(1)}.{MODULE_PAIRS[m.group(2)]}.{m.group(3)}"] = value
        elif key == "layers.0.self_attn.rot_emb.inv_freq":
            out["esm.rotary_embeddings.inv_freq"] = value
        elif not (_ROT.match(key) or key == "lm_head.weight"):
            unused.append(key)
    if unused:
        raise ModelError(f"not a fair-esm ESM-2 state dict: unknown keys {unused[:5]}")
    if "lm_head.weight" in sd and not torch.equal(sd["lm_head.weight"], sd["embed_tokens.weight"]):
        raise ModelError("lm_head.weight is not tied to embed_tokens.weight (HF's ESM-2 ties them)")
    config = esm2_config(n_layers, embed_dim, attention_heads, token_dropout)
    return out, config


def hf_to_fair_esm(state_dict: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """HF ESM-2 tensors (``EsmModel``, ``EsmForMaskedLM`` or a task model) under fair-esm ``ESM2`` keys.

    The rotary buffer is repeated into every layer (fair-esm keeps one per layer; recomputed from
    the head size when the snapshot lacks it); ``lm_head.weight`` is the embedding (tied).
    """
    lm = {k: v for k, v in state_dict.items() if k.startswith("lm_head.")}
    sd = backbone_state_dict(state_dict)
    n_layers = _num_layers(list(sd), _HF_LAYER_KEY)
    back_top = {v.removeprefix("esm."): k for k, v in TOP_PAIRS.items() if v.startswith("esm.")}
    back_mod = {v: k for k, v in MODULE_PAIRS.items()}
    out: dict[str, torch.Tensor] = {}
    unused = []
    for key, value in sd.items():
        if key in back_top:
            out[back_top[key]] = value
        elif (m := _HF_LAYER_KEY.match(key)) and m.group(2) in back_mod:
            out[f"layers.{m.group(1)}.{back_mod[m.group(2)]}.{m.group(3)}"] = value
        elif key != "rotary_embeddings.inv_freq":
            unused.append(key)
    if unused:
        raise ModelError(f"not an HF ESM-2 state dict: unknown keys {unused[:5]}")
    inv_freq = sd.get("rotary_embeddings.inv_freq")
    if inv_freq is None:
        head_dim = int(config["hidden_size"]) // int(config["num_attention_heads"])
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    for i in range(n_layers):
        out[f"layers.{i}.self_attn.rot_emb.inv_freq"] = inv_freq.clone()
    back_lm = {v: k for k, v in TOP_PAIRS.items() if v.startswith("lm_head.")}
    for key, value in lm.items():  # lm_head.decoder.weight is the tied embedding
        if key in back_lm:
            out[back_lm[key]] = value
    if "lm_head.dense.weight" in out:
        out["lm_head.weight"] = out["embed_tokens.weight"]
    return out


# -- files ----------------------------------------------------------------------------
def write_hf_snapshot(dest: str | Path, state_dict: dict[str, torch.Tensor], config: dict) -> Path:
    """Write an HF snapshot directory: ``config.json``, ``model.safetensors`` and ESM-2's ``vocab.txt``."""
    from safetensors.torch import save_file

    from kneurons.model.backends.fair_esm.backend import get_alphabet

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(dest / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    with atomic_path(dest / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    with atomic_path(dest / "vocab.txt") as tmp:
        Path(tmp).write_text("\n".join(get_alphabet().all_toks) + "\n")
    return dest


def write_fair_esm(dest: str | Path, state_dict: dict[str, torch.Tensor], config: dict) -> Path:
    """Write a fair-esm checkpoint in the official layout (which fair-esm and ``pretrained`` read).

    The tensors go through fair-esm's ``ESM2`` (so every key it expects is there); a snapshot
    without a language-model head gets ESM2's fresh ``lm_head`` (logged: not used for classification).
    """
    import esm

    from kneurons.model.backends.fair_esm.backend import get_alphabet

    model = esm.model.esm2.ESM2(
        num_layers=int(config["num_hidden_layers"]),
        embed_dim=int(config["hidden_size"]),
        attention_heads=int(config["num_attention_heads"]),
        alphabet=get_alphabet(),
        token_dropout=bool(config.get("token_dropout", True)),
    )
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(("lm_head.", "contact_head."))]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"weights do not fit fair-esm's ESM2: missing {missing}, unexpected {result.unexpected_keys}"
        )
    if result.missing_keys:
        log.warning(
            "no %s in the source; written with ESM2's fresh initialisation", ", ".join(result.missing_keys)
        )
    cfg = argparse.Namespace(
        encoder_layers=model.num_layers,
        encoder_embed_dim=model.embed_dim,
        encoder_attention_heads=model.attention_heads,
        token_dropout=bool(model.token_dropout),
    )
    payload = {"model": {f"encoder.{k}": v for k, v in model.state_dict().items()}, "cfg": {"model": cfg}}
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(dest, payload)
    return dest


def convert_to_hf(src: str | Path, dest: str | Path) -> Path:
    """A fair-esm checkpoint file (official layout) -> an HF snapshot directory."""
    from kneurons.model.backends.fair_esm.weights import load_esm_checkpoint

    data = load_esm_checkpoint(src)
    cfg = data.get("cfg", {}).get("model") if isinstance(data.get("cfg"), dict) else None
    if cfg is None or not hasattr(cfg, "encoder_attention_heads"):
        raise ModelError(
            f"{src}: no ESM-2 config (cfg['model'].encoder_attention_heads); not an ESM-2 checkpoint"
        )
    state, config = fair_esm_to_hf(
        data["model"], int(cfg.encoder_attention_heads), bool(getattr(cfg, "token_dropout", True))
    )
    return write_hf_snapshot(dest, state, config)


def convert_to_fair_esm(src: str | Path, dest: str | Path) -> Path:
    """An HF snapshot directory -> a fair-esm checkpoint file (official layout)."""
    from kneurons.model.backends.hf.architecture import check_config

    src = Path(src)
    if not hf_snapshot.is_snapshot_dir(src):
        raise ModelError(f"{src}: not a Hugging Face snapshot directory (no config.json)")
    config = hf_snapshot.read_config(src)
    check_config(config, str(src / "config.json"))
    return write_fair_esm(dest, hf_to_fair_esm(snapshot_state_dict(src), config), config)


def main(argv: Sequence[str] | None = None) -> int:
    """``kneurons convert --to hf|fair-esm SRC DEST``."""
    parser = argparse.ArgumentParser(
        prog="kneurons convert",
        description="Convert ESM-2 weights between fair-esm and Hugging Face layouts.",
    )
    parser.add_argument("--to", required=True, choices=["hf", "fair-esm"], help="the layout to write")
    parser.add_argument(
        "src", help="a fair-esm .pt file (--to hf) or an HF snapshot directory (--to fair-esm)"
    )
    parser.add_argument("dest", help="the snapshot directory (--to hf) or .pt file (--to fair-esm) to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        out = (
            convert_to_hf(args.src, args.dest)
            if args.to == "hf"
            else convert_to_fair_esm(args.src, args.dest)
        )
    except KneuronsError as exc:
        print(f"kneurons convert: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
