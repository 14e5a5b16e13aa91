"""The fair-esm backend: the only code that knows the insides of fair-esm's ``ESM2``.

fair-esm specifics kept here: tensors inside the layers are time-first ``(T, B, E)`` (module
outputs ``(T, B, n_neurons)``); ``MultiheadAttention`` scales the ``q_proj`` output in place
(see ``kneurons.model.hooks``); the feed-forward block uses fair-esm's erf ``gelu``; the
self-attention implementation is switched by ``kneurons.model.backends.fair_esm.attention.set_attention``.

fair-esm's ``gelu`` (``x * 0.5 * (1 + erf(x / sqrt 2))``) allocates three temporaries per call and
was a quarter of an ablation job's time on the demo model. This module replaces
``esm.modules.gelu`` (which ``TransformerLayer.forward`` looks up at call time) with ``gelu``,
which does the same float operations in the same order, in place where autograd does not need the
intermediates: bit-identical outputs (tests/test_fair_esm_fast_paths.py), half the time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import esm
import esm.modules
import torch
from torch import nn

from kneurons.errors import ModelError
from kneurons.model.backends.base import (
    MODULE_TYPES,
    BackboneSpec,
    LayerState,
    StreamPoints,
    repeat_padding,
    run_keeping_inputs,
)
from kneurons.model.backends.fair_esm.attention import set_attention

_FAIR_ESM_GELU = esm.modules.gelu
_SQRT2 = math.sqrt(2.0)


def gelu(x: torch.Tensor) -> torch.Tensor:
    """fair-esm's erf gelu, bit for bit; in place (half the time) when no gradient flows through ``x``."""
    if x.requires_grad and torch.is_grad_enabled():
        return _FAIR_ESM_GELU(x)
    t = (x / _SQRT2).erf_().add_(1.0)
    return (x * 0.5).mul_(t)


esm.modules.gelu = gelu


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


def _fast_encode(alphabet: esm.data.Alphabet) -> Callable[[str], list[int]]:
    """``alphabet.encode``, without its pass over every special token for plain residue strings.

    fair-esm splits the text on each of its 33 tokens in turn (a fifth of the demo's fine-tuning
    time, re-tokenising every epoch). Its multi-character tokens all start with ``<``, so a text
    without ``<`` whose characters are all single-character tokens encodes character by
    character; anything else (specials, whitespace, unknown characters) goes to fair-esm's own.
    """
    single = {t: i for t, i in alphabet.tok_to_idx.items() if len(t) == 1 and not t.isspace()}
    encode = alphabet.encode

    def fast(text: str) -> list[int]:
        if "<" not in text:
            try:
                return [single[c] for c in text]
            except KeyError:
                pass
        return encode(text)

    return fast


@functools.cache
def _batch_converter() -> esm.data.BatchConverter:
    alphabet = get_alphabet()
    alphabet.encode = _fast_encode(alphabet)
    return alphabet.get_batch_converter()


def tokenize(sequences: list[str], alphabet: esm.data.Alphabet | None = None) -> torch.Tensor:
    """Token ids (B, T) with BOS/EOS and right padding, as fair-esm's batch converter makes them."""
    converter = alphabet.get_batch_converter() if alphabet is not None else _batch_converter()
    _, _, tokens = converter([(str(i), s) for i, s in enumerate(sequences)])
    return tokens


class FairEsmBackend:
    """fair-esm's ``ESM2`` behind the classifier API (see ``kneurons.model.backends.base.Backend``).

    Holds a reference to the backbone, not a copy: the classifier owns the parameters (its state
    dict keys stay ``esm.*``), and ``.to(device)`` moves them in place.
    """

    name = "fair-esm"
    #: Time-first ``(T, B, E)``: the batch is dimension 1 of the stream; module outputs are time-first
    #: too, so the linears serve as their own hook points.
    batch_dim = 1
    #: Attention logits are bilinear in the ``q_proj`` and ``k_proj`` outputs (IG shares their passes).
    qk_bilinear = True

    def __init__(self, backbone: esm.model.esm2.ESM2) -> None:
        self.backbone = backbone
        self.streams = StreamPoints(self.num_layers, self.embed_dim, batch_first=False)
        self.embedding_rescale = True

    @staticmethod
    def accepts(backbone: nn.Module) -> bool:
        """True for a fair-esm ESM-2 backbone."""
        return isinstance(backbone, esm.model.esm2.ESM2)

    # -- the registry's questions (kneurons.model.backends) ----------------------------------
    @classmethod
    def build(cls, spec: BackboneSpec) -> esm.model.esm2.ESM2:
        """fair-esm's ESM-2 of ``spec`` with random weights."""
        return build_backbone(spec)

    @classmethod
    def load(
        cls, model_cfg: dict[str, Any], download: bool = True, downloader: Any = None
    ) -> tuple[esm.model.esm2.ESM2, BackboneSpec]:
        """The configured ESM-2: the official or local weights file (``weights``), downloaded into the
        torch hub cache when ``download`` allows; random init unless ``model.pretrained``."""
        from kneurons.model.backends.fair_esm import weights

        name = model_cfg["name"]
        if not model_cfg.get("pretrained", False):
            spec = BackboneSpec.from_config(model_cfg)
            return build_backbone(spec), spec
        if name != "custom":  # an unknown name is refused here; a custom file sets its own sizes
            BackboneSpec.from_config(model_cfg)
        backbone = weights.load_pretrained_backbone(
            name, model_cfg.get("checkpoint"), download=download, downloader=downloader
        )
        spec = BackboneSpec(
            name=name,
            num_layers=backbone.num_layers,
            embed_dim=backbone.embed_dim,
            attention_heads=backbone.attention_heads,
            token_dropout=bool(backbone.token_dropout),
        )
        return backbone, spec

    @classmethod
    def weights_path(cls, model_cfg: dict[str, Any]) -> Path | None:
        """``model.checkpoint``, else ``$TORCH_HOME/hub/checkpoints/<name>.pt`` (never downloading)."""
        from kneurons.model.backends.fair_esm import weights

        if model_cfg.get("checkpoint"):
            return Path(model_cfg["checkpoint"]).expanduser()
        return weights.resolve_checkpoint(model_cfg["name"], None, download=False)

    def set_attention(self, attention: str) -> None:
        """Self-attention implementation: ``sdpa`` or fair-esm's ``reference``."""
        set_attention(self.backbone, attention)

    # -- sizes and tokens -----------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Transformer layers."""
        return len(self.backbone.layers)

    @property
    def embed_dim(self) -> int:
        """Width of the residual stream."""
        return int(self.backbone.embed_dim)

    @property
    def padding_idx(self) -> int:
        """Token id of padding."""
        return int(self.backbone.padding_idx)

    def tokenize(self, sequences: list[str]) -> torch.Tensor:
        """Token ids ``(B, T)`` with BOS/EOS and right padding, on the CPU."""
        return tokenize(list(sequences))

    def residue_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` True at residues: BOS, EOS and padding excluded."""
        e = self.backbone
        return (tokens != e.padding_idx) & (tokens != e.cls_idx) & (tokens != e.eos_idx)

    # -- parameters -----------------------------------------------------------------------
    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters the classifier never uses: the LM and contact heads (kept frozen)."""
        e = self.backbone
        return [*e.contact_head.parameters(), *e.lm_head.parameters()]

    def bottom_parameters(self, layers: int) -> list[nn.Parameter]:
        """The token embedding and the first ``layers`` layers (what ``train.freeze_layers`` freezes)."""
        e = self.backbone
        return [e.embed_tokens.weight, *(p for layer in e.layers[:layers] for p in layer.parameters())]

    # -- the residual stream --------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token embedding as ESM2.forward computes it; returns ``(x (T,B,E), padding_mask (B,T) | None)``.

        Without ``embedding_rescale`` the token-dropout block is skipped, as InterProt's ESM-2
        wrapper (``interprot/esm_wrapper.py``) computes the embeddings its SAEs were trained on.
        """
        e = self.backbone
        padding_mask = tokens.eq(e.padding_idx)
        x = e.embed_scale * e.embed_tokens(tokens)
        if e.token_dropout and self.embedding_rescale:
            x = x.masked_fill((tokens == e.mask_idx).unsqueeze(-1), 0.0)
            mask_ratio_train = 0.15 * 0.8
            src_lengths = (~padding_mask).sum(-1)
            mask_ratio_observed = (tokens == e.mask_idx).sum(-1).to(x.dtype) / src_lengths
            x = x * (1 - mask_ratio_train) / (1 - mask_ratio_observed)[:, None, None]
        x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        return x.transpose(0, 1), (padding_mask if padding_mask.any() else None)

    def run_layers(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None, start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        """Transformer layers ``start .. stop-1`` on the residual stream ``x`` (T,B,E)."""
        for i, layer in enumerate(self.backbone.layers[start:stop], start):
            x = self.streams.run(i, x)
            x, _ = layer(x, self_attn_padding_mask=padding_mask, need_head_weights=False)
        return x

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """Final layer norm after the last layer (stream point ``num_layers``), batch-first ``(B, T, E)``."""
        return self.streams.run(self.num_layers, self.backbone.emb_layer_norm_after(x)).transpose(0, 1)

    def repeat_stream(self, x: torch.Tensor, copies: int) -> torch.Tensor:
        """``x`` (T,B,E) with its batch repeated ``copies`` times (copy-major)."""
        return x.repeat(1, copies, 1) if copies > 1 else x

    # -- modules and resume points --------------------------------------------------------
    def stream_point(self, layer: int) -> nn.Module:
        """The stream entering layer ``layer`` (``num_layers``: after the final norm), time-first already."""
        return self.streams.point(layer)

    def module(self, layer: int, module_type: str) -> nn.Linear:
        """The ``module_type`` linear of transformer layer ``layer`` (0-based)."""
        if module_type not in MODULE_TYPES:
            raise ModelError(f"unknown module {module_type!r}; one of {', '.join(MODULE_TYPES)}")
        blk = self.backbone.layers[layer]
        return (
            getattr(blk, module_type)
            if module_type in ("fc1", "fc2")
            else getattr(blk.self_attn, module_type)
        )

    def run_layer_with_states(
        self, layer: int, x: torch.Tensor, padding_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, LayerState]:
        """Run one layer and keep the inputs of ``out_proj``, the final layer norm and ``fc2``.

        The state holds ``x`` and ``padding_mask`` (layer input), ``ctx`` (attention context),
        ``h`` (post-attention residual) and ``g`` (``fc2``'s input).
        """
        blk = self.backbone.layers[layer]
        state: LayerState = {"x": x, "padding_mask": padding_mask}

        taps = {"ctx": blk.self_attn.out_proj, "h": blk.final_layer_norm, "g": blk.fc2}
        out = run_keeping_inputs(
            lambda: self.run_layers(x, padding_mask, layer, layer + 1), state, taps, first=()
        )
        return out, state

    def resume_layer(self, layer: int, position: int, state: LayerState, copies: int = 1) -> torch.Tensor:
        """Layer output from the state cached at resume point ``position``, the batch repeated ``copies``x.

        Replays the tail of ``TransformerLayer.forward`` op for op (tests check it is bit-identical),
        calling the modules so that their forward hooks (masks) fire.
        """
        blk = self.backbone.layers[layer]

        def rep(name: str) -> torch.Tensor:
            return self.repeat_stream(state[name], copies)

        if position == 0:
            return self.run_layers(rep("x"), repeat_padding(state["padding_mask"], copies), layer, layer + 1)
        if position == 1:
            return self._ffn(blk, rep("x") + blk.self_attn.out_proj(rep("ctx")))
        if position == 2:
            return self._ffn(blk, rep("h"))
        if position == 3:
            return rep("h") + blk.fc2(rep("g"))
        raise ModelError(f"no resume point {position}")

    @staticmethod
    def _ffn(blk: nn.Module, h: torch.Tensor) -> torch.Tensor:
        """Second half of ``TransformerLayer.forward`` from the post-attention residual ``h``."""
        return h + blk.fc2(gelu(blk.fc1(blk.final_layer_norm(h))))
