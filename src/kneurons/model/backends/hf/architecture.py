"""Hugging Face ESM-2's architecture: its ``config.json`` values, the check that a config is an ESM-2
this package runs, and a backbone built with random weights.

transformers is an optional dependency (``pip install 'kneurons[hf]'``), imported only when an HF
model is built or loaded (``require_transformers``).
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from kneurons.errors import ModelError
from kneurons.model.backends.base import BackboneSpec

#: What the missing optional dependency is called, in every error about it.
INSTALL_HINT = "pip install 'kneurons[hf]'"

#: The ``config.json`` keys that fix an HF ESM-2 backbone (stored in classifier checkpoints).
CONFIG_KEYS: tuple[str, ...] = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "position_embedding_type",
    "rope_theta",
    "token_dropout",
    "pad_token_id",
    "mask_token_id",
    "layer_norm_eps",
    "emb_layer_norm_before",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)

#: Token ids ESM-2 uses everywhere (fair-esm's ``ESM-1b`` alphabet; HF's vocab.txt of ESM-2).
ESM2_IDS = {"vocab_size": 33, "pad_token_id": 1, "mask_token_id": 32}

#: The backbone's head-less modules whose weights a snapshot may lack (unused here).
OPTIONAL_KEYS = re.compile(r"^(contact_head\.|rotary_embeddings\.inv_freq$)")

#: Heads of HF task models and buffers that are not part of ``EsmModel``'s parameters.
DROPPED_KEYS = re.compile(r"^(lm_head\.|classifier\.|pooler\.|embeddings\.position_ids$)")


def require_transformers() -> Any:
    """The ``transformers`` module; a ModelError naming the extra to install when it is missing."""
    try:
        import transformers
        from transformers import EsmConfig, EsmModel  # noqa: F401  (the classes this backend needs)
    except ImportError as exc:
        raise ModelError(
            f"the Hugging Face ESM-2 backend (model.backend: hf) needs transformers, which is not "
            f"installed ({exc}); install it with: {INSTALL_HINT}"
        ) from exc
    return transformers


def esm2_config(num_layers: int, embed_dim: int, attention_heads: int, token_dropout: bool = True) -> dict:
    """``config.json`` values of an ESM-2 of this size, as the official HF ESM-2 repositories have them."""
    return {
        "architectures": ["EsmForMaskedLM"],
        "model_type": "esm",
        "vocab_size": 33,
        "hidden_size": embed_dim,
        "num_hidden_layers": num_layers,
        "num_attention_heads": attention_heads,
        "intermediate_size": 4 * embed_dim,
        "max_position_embeddings": 1026,
        "position_embedding_type": "rotary",
        "rope_theta": 10000.0,
        "token_dropout": bool(token_dropout),
        "pad_token_id": 1,
        "mask_token_id": 32,
        "layer_norm_eps": 1e-5,
        "emb_layer_norm_before": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
    }


def backbone_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``CONFIG_KEYS`` of an HF config dict (what a classifier checkpoint records)."""
    defaults = esm2_config(1, 8, 1)
    return {k: cfg.get(k, defaults[k]) for k in CONFIG_KEYS}


def check_config(cfg: dict[str, Any], where: str) -> None:
    """Refuse an HF config this backend cannot run as ESM-2 (other vocabulary, a decoder, ESMFold)."""
    if cfg.get("model_type", "esm") != "esm":
        raise ModelError(f"{where}: model_type {cfg.get('model_type')!r} is not an ESM-2 (model_type 'esm')")
    wrong = {k: cfg.get(k) for k, v in ESM2_IDS.items() if cfg.get(k) != v}
    if wrong:
        raise ModelError(
            f"{where}: {wrong} differ from ESM-2's vocabulary ({ESM2_IDS}); the tokenizer is ESM-2's"
        )
    for key in ("is_decoder", "add_cross_attention", "is_folding_model"):
        if cfg.get(key):
            raise ModelError(f"{where}: {key} is set; only the ESM-2 encoder is supported")


def build_backbone(spec: BackboneSpec) -> nn.Module:
    """An HF ``EsmModel`` (no pooler) of ``spec`` with random weights: its recorded config, else ESM-2's."""
    transformers = require_transformers()
    cfg = spec.hf_config or esm2_config(
        spec.num_layers, spec.embed_dim, spec.attention_heads, spec.token_dropout
    )
    check_config(cfg, f"model {spec.name}")
    config = transformers.EsmConfig(**backbone_config(cfg))
    return transformers.EsmModel(config, add_pooling_layer=False).eval()


def is_hf_esm(backbone: nn.Module) -> bool:
    """True for transformers' ``EsmModel`` (checked without importing transformers for other backbones)."""
    if not type(backbone).__module__.startswith("transformers."):
        return False
    from transformers import EsmModel

    return isinstance(backbone, EsmModel)


# -- the backend ----------------------------------------------------------------------
