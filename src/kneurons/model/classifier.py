"""ESM-2 backbone + classification head, with the residual-stream API that scoring and ablation use.

The backbone is fair-esm's own ``ESM2`` module (pretrained or random weights). ``EsmClassifier``
splits its forward pass into ``embed`` -> ``run_layers`` -> ``classify`` so that a caller can
compute the residual stream entering layer ``l`` once and re-run only layers ``>= l``.

Inside the layers fair-esm keeps tensors time-first, ``(T, B, E)``; the module outputs that
define neurons (``q_proj`` ... ``fc2``) are therefore ``(T, B, n_neurons)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import esm
import torch
from torch import nn

from kneurons.config import ESM2_ARCHITECTURES
from kneurons.errors import ModelError
from kneurons.model.attention import set_attention
from kneurons.vocabulary import MODULE_TYPES

CHECKPOINT_FORMAT = "kneurons-classifier/1"


@dataclass(frozen=True)
class BackboneSpec:
    """What is needed to rebuild an ESM-2 backbone: its size and its fair-esm name (or ``custom``)."""

    name: str
    num_layers: int
    embed_dim: int
    attention_heads: int
    token_dropout: bool = True

    @classmethod
    def from_config(cls, model_cfg: dict[str, Any]) -> BackboneSpec:
        """Build the spec from the ``model`` section of the workflow config."""
        name = model_cfg["name"]
        if name in ESM2_ARCHITECTURES:
            layers, dim, heads = ESM2_ARCHITECTURES[name]
        elif name == "custom":
            c = model_cfg["custom"]
            layers, dim, heads = c["num_layers"], c["embed_dim"], c["attention_heads"]
        else:
            raise ModelError(f"unknown model {name!r}; known: custom, {', '.join(ESM2_ARCHITECTURES)}")
        return cls(name=name, num_layers=layers, embed_dim=dim, attention_heads=heads)


def build_backbone(spec: BackboneSpec) -> esm.model.esm2.ESM2:
    """The fair-esm ESM-2 architecture with random weights."""
    return esm.model.esm2.ESM2(
        num_layers=spec.num_layers,
        embed_dim=spec.embed_dim,
        attention_heads=spec.attention_heads,
        alphabet="ESM-1b",
        token_dropout=spec.token_dropout,
    )


def get_alphabet() -> esm.data.Alphabet:
    """The ESM-2 alphabet (shared by every ESM-2 size)."""
    return esm.data.Alphabet.from_architecture("ESM-1b")


class EsmClassifier(nn.Module):
    """ESM-2 with a linear classification head on pooled token representations.

    ``pooling='mean'`` averages the final representations over residues (BOS, EOS and padding
    excluded); ``pooling='bos'`` takes the BOS token. ``attention`` picks the self-attention
    implementation (``sdpa`` fast path or fair-esm's ``reference``; see ``kneurons.model.attention``).
    """

    def __init__(
        self, backbone: esm.model.esm2.ESM2, num_classes: int, pooling: str = "mean", attention: str = "sdpa"
    ):
        super().__init__()
        if pooling not in ("mean", "bos"):
            raise ModelError(f"unknown pooling {pooling!r}; use 'mean' or 'bos'")
        set_attention(backbone, attention)
        self.esm = backbone
        self.pooling = pooling
        self.num_classes = int(num_classes)
        self.head = nn.Linear(backbone.embed_dim, self.num_classes)

    # -- the residual-stream API --------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.esm.layers)

    def embed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token embedding as ESM2.forward computes it; returns ``(x (T,B,E), padding_mask (B,T) | None)``."""
        e = self.esm
        padding_mask = tokens.eq(e.padding_idx)
        x = e.embed_scale * e.embed_tokens(tokens)
        if e.token_dropout:
            x = x.masked_fill((tokens == e.mask_idx).unsqueeze(-1), 0.0)
            mask_ratio_train = 0.15 * 0.8
            src_lengths = (~padding_mask).sum(-1)
            mask_ratio_observed = (tokens == e.mask_idx).sum(-1).to(x.dtype) / src_lengths
            x = x * (1 - mask_ratio_train) / (1 - mask_ratio_observed)[:, None, None]
        x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        return x.transpose(0, 1), (padding_mask if padding_mask.any() else None)

    def run_layers(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None,
        start: int = 0,
        stop: int | None = None,
    ) -> torch.Tensor:
        """Run transformer layers ``start .. stop-1`` on the residual stream ``x`` (T,B,E)."""
        for layer in self.esm.layers[start:stop]:
            x, _ = layer(x, self_attn_padding_mask=padding_mask, need_head_weights=False)
        return x

    def classify(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Final layer norm, pooling and head on the residual stream after the last layer."""
        h = self.esm.emb_layer_norm_after(x).transpose(0, 1)  # (B, T, E)
        return self.head(self.pool(h, tokens))

    def pool(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Pool (B,T,E) representations to (B,E)."""
        if self.pooling == "bos":
            return h[:, 0]
        e = self.esm
        residue = (tokens != e.padding_idx) & (tokens != e.cls_idx) & (tokens != e.eos_idx)
        w = residue.unsqueeze(-1).to(h.dtype)
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        x, padding_mask = self.embed(tokens)
        return self.classify(self.run_layers(x, padding_mask), tokens)

    # -- neurons ---------------------------------------------------------------------
    def module(self, layer: int, module_type: str) -> nn.Linear:
        """The ``module_type`` linear of transformer layer ``layer`` (0-based)."""
        if module_type not in MODULE_TYPES:
            raise ModelError(f"unknown module {module_type!r}; one of {', '.join(MODULE_TYPES)}")
        blk = self.esm.layers[layer]
        return (
            getattr(blk, module_type)
            if module_type in ("fc1", "fc2")
            else getattr(blk.self_attn, module_type)
        )

    # -- tokens --------------------------------------------------------------------------
    @property
    def padding_idx(self) -> int:
        """Token id of padding (never part of a neuron's activation)."""
        return int(self.esm.padding_idx)

    def tokenize(self, sequences: list[str]) -> torch.Tensor:
        """Token ids ``(B, T)`` of ``sequences`` with BOS/EOS and right padding, on the CPU."""
        return tokenize(list(sequences))

    def neuron_count(self, module_type: str) -> int:
        """Output units of a module type (the same in every layer)."""
        return self.module(0, module_type).out_features


def tokenize(sequences: list[str], alphabet: esm.data.Alphabet | None = None) -> torch.Tensor:
    """Token ids (B, T) with BOS/EOS and right padding, as fair-esm's batch converter makes them."""
    alphabet = alphabet or get_alphabet()
    converter = alphabet.get_batch_converter()
    _, _, tokens = converter([(str(i), s) for i, s in enumerate(sequences)])
    return tokens


# -- checkpoints -------------------------------------------------------------------------
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
    from kneurons.io import atomic_path

    payload = {
        "format": CHECKPOINT_FORMAT,
        "backbone": asdict(spec),
        "pooling": model.pooling,
        "labels": list(labels),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }
    # Through a file object: torch.save(path) names the archive after the (random) temporary
    # file, so identical checkpoints would differ in bytes and in sha256.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def load_classifier(
    path: str | Path, map_location: str | torch.device = "cpu", attention: str = "sdpa"
) -> tuple[EsmClassifier, dict]:
    """Load a checkpoint written by ``save_classifier``; returns ``(model in eval mode, payload without weights)``.

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
        raise ModelError(
            f"{path}: not a kneurons classifier checkpoint (format {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r})"
        )
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
