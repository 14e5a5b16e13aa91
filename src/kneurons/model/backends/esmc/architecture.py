"""ESM C's architecture: its vocabulary, transformers' classes (an optional dependency, imported
lazily), its config at a given size, and a backbone built with random weights (or rebuilt from
what a checkpoint recorded).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from kneurons.errors import ModelError

#: The registry's name of this backend (what ``EsmcBackend.describe`` records).
NAME = "esmc"

#: What to install when transformers (with ESM C) is missing.
INSTALL_HINT = "pip install 'kneurons[esmc]' (transformers >= 5.24 with ESM C)"

#: The ESM C sequence vocabulary, fixed by the weights (every ESM C checkpoint shares it; the same
#: list as transformers' ``tokenization_esmc.SEQUENCE_VOCAB`` and the esm package's tokenizer).
VOCAB: tuple[str, ...] = (
    "<cls>",
    "<pad>",
    "<eos>",
    "<unk>",
    "L",
    "A",
    "G",
    "V",
    "S",
    "E",
    "R",
    "T",
    "I",
    "D",
    "P",
    "K",
    "Q",
    "N",
    "F",
    "Y",
    "M",
    "H",
    "W",
    "C",
    "X",
    "B",
    "U",
    "Z",
    "O",
    ".",
    "-",
    "|",
    "<mask>",
)
CLS_IDX, PAD_IDX, EOS_IDX, UNK_IDX = 0, 1, 2, 3
MASK_IDX = VOCAB.index("<mask>")  # 32
#: One character -> its id. ``_`` is the mask, as ESM C's own tokenizer reads it: the esm package's
#: ``esm/utils/constants/esm3.py`` has ``MASK_STR_SHORT = "_"``, and ``esm/utils/encoding.py``
#: ``tokenize_sequence`` replaces it with ``<mask>`` before encoding (transformers 5.24.0's
#: ``EsmcTokenizer`` reads ``<mask>`` as id 32 but ``_`` as ``<unk>``).
_TOKEN_ID = {tok: i for i, tok in enumerate(VOCAB) if len(tok) == 1} | {"_": MASK_IDX}


def token_ids(sequence: str) -> list[int]:
    """ESM C's ids of one sequence's characters (no ``<cls>``/``<eos>``): ``<mask>`` and ``_`` are the
    mask, any other character outside the vocabulary ``<unk>``, as ESM C's tokenizer reads them."""
    ids: list[int] = []
    for k, part in enumerate(sequence.split("<mask>")):
        if k:
            ids.append(MASK_IDX)
        ids.extend(_TOKEN_ID.get(c, UNK_IDX) for c in part)
    return ids


def transformers_esmc() -> SimpleNamespace:
    """transformers' ESM C classes, or one ModelError saying what to install."""
    try:
        from transformers import EsmcConfig, EsmcModel
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError as exc:
        raise ModelError(
            f"the ESM C backend needs Hugging Face transformers with ESM C support "
            f"({exc.__class__.__name__}: {exc}); install it with {INSTALL_HINT}"
        ) from exc
    return SimpleNamespace(
        EsmcConfig=EsmcConfig, EsmcModel=EsmcModel, create_bidirectional_mask=create_bidirectional_mask
    )


def swiglu_hidden(embed_dim: int, expansion_ratio: float = 8 / 3) -> int:
    """Width of ESM C's gated hidden layer: ``expansion_ratio * d`` rounded up to a multiple of 256."""
    return int(((expansion_ratio * embed_dim) + 255) // 256 * 256)


def esmc_config(num_layers: int, embed_dim: int, heads: int, intermediate_size: int | None = None) -> Any:
    """An ``EsmcConfig`` of ESM C's architecture at the given size (vocabulary 64, bias-free linears)."""
    t = transformers_esmc()
    if embed_dim % heads:
        raise ModelError(f"ESM C: embed_dim {embed_dim} is not a multiple of the {heads} attention heads")
    return t.EsmcConfig(
        vocab_size=64,
        hidden_size=embed_dim,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        intermediate_size=intermediate_size or swiglu_hidden(embed_dim),
        hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        pad_token_id=PAD_IDX,
        bos_token_id=CLS_IDX,
        eos_token_id=EOS_IDX,
    )


def build_esmc_backbone(num_layers: int, embed_dim: int, heads: int, seed: int | None = None) -> nn.Module:
    """ESM C's architecture (transformers' ``EsmcModel``) with random weights.

    Drawn from ``seed`` without touching the global generator, or, with None, from the global
    generator as fair-esm's random init is (the job seeds it).
    """
    config = esmc_config(num_layers, embed_dim, heads)
    model = transformers_esmc().EsmcModel
    if seed is None:
        return model(config).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model(config).eval()


def rebuild(desc: dict[str, Any]) -> nn.Module:
    """The (randomly initialised) backbone that ``EsmcBackend.describe()`` recorded; load weights into it."""
    if desc.get("backend") != NAME:
        raise ModelError(f"not an ESM C backbone description (backend {desc.get('backend')!r})")
    t = transformers_esmc()
    return t.EsmcModel(t.EsmcConfig.from_dict(dict(desc["config"]))).eval()
