"""The Hugging Face backend: the only code that knows the insides of transformers' ``EsmModel``.

HF specifics kept here: tensors are batch-first ``(B, T, E)`` (so every module is handed out
wrapped in a batch-first ``HookPoint``: hooks see ``(T, B, n)`` as with fair-esm); the padding
mask becomes HF's extended attention mask (``create_bidirectional_mask``: a boolean mask for
SDPA, an additive one for eager attention); rotary embeddings are computed once per pass from
the sequence length and handed to every ``EsmLayer``; ``model.attention`` maps ``sdpa`` to HF's
``sdpa`` and ``reference`` to HF's ``eager`` attention.

Module map (fair-esm names of ``kneurons.vocabulary.MODULE_TYPES``):
``attention.self.{query,key,value}`` -> ``q_proj``/``k_proj``/``v_proj``, ``attention.output.dense``
-> ``out_proj``, ``intermediate.dense`` -> ``fc1`` (its pre-activation output, as fair-esm's
``fc1``), ``output.dense`` -> ``fc2``.

transformers is an optional dependency (``pip install 'kneurons[hf]'``), imported only when an
HF model is built or loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from kneurons.model.backends.fair_esm.backend import get_alphabet, tokenize
from kneurons.model.backends.hf.architecture import build_backbone, is_hf_esm
from kneurons.model.hooks import HookPoint

#: fair-esm module type -> (path inside an ``EsmLayer``).
MODULE_PATHS: dict[str, str] = {
    "q_proj": "attention.self.query",
    "k_proj": "attention.self.key",
    "v_proj": "attention.self.value",
    "out_proj": "attention.output.dense",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
}


class HfEsmBackend:
    """transformers' ``EsmModel`` behind the classifier API (see ``kneurons.model.backends.base.Backend``).

    Holds a reference to the backbone (the classifier owns the parameters, keys ``esm.*``).
    """

    name = "hf"
    #: Batch-first ``(B, T, E)``: the batch is dimension 0 of the residual stream.
    batch_dim = 0
    #: As in fair-esm, the head scaling and the rotary embedding are linear, so the attention
    #: logits are bilinear in the ``q_proj`` and ``k_proj`` outputs (IG shares their passes).
    qk_bilinear = True

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone
        self._hook_points: dict[tuple[int, str], HookPoint] = {}
        self.streams = StreamPoints(self.num_layers, self.embed_dim, batch_first=True)
        self.embedding_rescale = True
        alphabet = get_alphabet()  # ESM-2's ids (check_config holds the snapshot to them)
        self._cls_idx, self._eos_idx = alphabet.cls_idx, alphabet.eos_idx

    @staticmethod
    def accepts(backbone: nn.Module) -> bool:
        """True for an HF ``EsmModel``."""
        return is_hf_esm(backbone)

    # -- the registry's questions (kneurons.model.backends) ----------------------------------
    @classmethod
    def build(cls, spec: BackboneSpec) -> nn.Module:
        """An ``EsmModel`` of ``spec`` (its recorded config, else ESM-2's) with random weights."""
        return build_backbone(spec)

    @classmethod
    def load(
        cls, model_cfg: dict[str, Any], download: bool = True, downloader: Any = None
    ) -> tuple[nn.Module, BackboneSpec]:
        """The configured ``EsmModel`` from a snapshot directory or the offline hub cache (``load``);
        random init unless ``model.pretrained``. Never downloads (``download`` is not used)."""
        from kneurons.model.backends.hf.load import load_hf_backbone

        return load_hf_backbone(model_cfg)

    @classmethod
    def weights_path(cls, model_cfg: dict[str, Any]) -> Path | None:
        """The snapshot directory: ``model.checkpoint``, else the hub cache's of ``facebook/<name>``."""
        from kneurons.model.backends.hf.load import resolve_snapshot

        return resolve_snapshot(model_cfg)

    def set_attention(self, attention: str) -> None:
        """Self-attention: ``sdpa`` (HF's SDPA) or ``reference`` (HF's eager softmax(QK^T)V)."""
        impl = {"sdpa": "sdpa", "reference": "eager"}.get(attention)
        if impl is None:
            raise ModelError(f"unknown attention {attention!r}; use 'sdpa' or 'reference'")
        self.backbone.set_attn_implementation(impl)

    # -- sizes and tokens -----------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Transformer layers."""
        return len(self.backbone.encoder.layer)

    @property
    def embed_dim(self) -> int:
        """Width of the residual stream."""
        return int(self.backbone.config.hidden_size)

    @property
    def padding_idx(self) -> int:
        """Token id of padding."""
        return int(self.backbone.config.pad_token_id)

    def tokenize(self, sequences: list[str]) -> torch.Tensor:
        """Token ids ``(B, T)``: ESM-2's vocabulary is fair-esm's alphabet, so fair-esm's converter serves."""
        return tokenize(list(sequences))

    def residue_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` True at residues: BOS (``<cls>``), EOS and padding excluded."""
        return (tokens != self.padding_idx) & (tokens != self._cls_idx) & (tokens != self._eos_idx)

    # -- parameters -----------------------------------------------------------------------
    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters the classifier never uses: the contact head (kept frozen)."""
        return list(self.backbone.contact_head.parameters())

    def bottom_parameters(self, layers: int) -> list[nn.Parameter]:
        """The token embeddings and the first ``layers`` layers (what ``train.freeze_layers`` freezes)."""
        e = self.backbone
        return [
            *e.embeddings.parameters(),
            *(p for layer in e.encoder.layer[:layers] for p in layer.parameters()),
        ]

    # -- the residual stream --------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``EsmEmbeddings`` with the attention mask ``EsmModel`` gives it: token dropout's rescaling
        over the unpadded length, padding zeroed. Returns ``(x (B,T,E), padding_mask (B,T) | None)``.
        Without ``embedding_rescale``, ``EsmEmbeddings`` runs with its token dropout off for the call."""
        padding_mask = tokens.eq(self.padding_idx)
        embeddings = self.backbone.embeddings
        token_dropout = embeddings.token_dropout
        embeddings.token_dropout = token_dropout and self.embedding_rescale
        try:
            x = embeddings(input_ids=tokens, attention_mask=(~padding_mask).long())
        finally:
            embeddings.token_dropout = token_dropout
        return x, (padding_mask if padding_mask.any() else None)

    def _layer_inputs(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> dict[str, Any]:
        """The keyword arguments ``EsmModel.forward`` hands every ``EsmLayer`` for stream ``x``."""
        from transformers.masking_utils import create_bidirectional_mask

        e = self.backbone
        attention_mask = create_bidirectional_mask(
            config=e.config,
            inputs_embeds=x,
            attention_mask=None if padding_mask is None else (~padding_mask).long(),
        )
        position_embeddings = None
        if e.rotary_embeddings is not None:
            position_ids = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
            position_embeddings = e.rotary_embeddings(x, position_ids)
        return {"attention_mask": attention_mask, "position_embeddings": position_embeddings}

    def run_layers(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None, start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        """``EsmLayer``s ``start .. stop-1`` on the residual stream ``x`` (B,T,E)."""
        layers = self.backbone.encoder.layer[start:stop]
        if len(layers) == 0:
            return x
        kwargs = self._layer_inputs(x, padding_mask)
        for i, layer in enumerate(layers, start):
            x = layer(self.streams.run(i, x), **kwargs)
        return x

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``encoder.emb_layer_norm_after`` on the stream after the last layer (stream point
        ``num_layers``), ``(B, T, E)``."""
        return self.streams.run(self.num_layers, self.backbone.encoder.emb_layer_norm_after(x))

    def repeat_stream(self, x: torch.Tensor, copies: int) -> torch.Tensor:
        """``x`` (B,T,E) with its batch repeated ``copies`` times (copy-major)."""
        return x.repeat(copies, 1, 1) if copies > 1 else x

    # -- modules and resume points --------------------------------------------------------
    def linear(self, layer: int, module_type: str) -> nn.Linear:
        """The HF ``nn.Linear`` behind ``module_type`` of layer ``layer`` (batch-first outputs)."""
        if module_type not in MODULE_TYPES:
            raise ModelError(f"unknown module {module_type!r}; one of {', '.join(MODULE_TYPES)}")
        return self.backbone.encoder.layer[layer].get_submodule(MODULE_PATHS[module_type])

    def stream_point(self, layer: int) -> HookPoint:
        """The stream entering layer ``layer`` (``num_layers``: after the final norm), seen ``(T, B, E)``."""
        return self.streams.point(layer)

    def module(self, layer: int, module_type: str) -> HookPoint:
        """Hook point of ``module_type`` in layer ``layer``: hooks see its output time-first ``(T, B, n)``."""
        key = (layer, module_type)
        if key not in self._hook_points:
            self._hook_points[key] = HookPoint(self.linear(layer, module_type), batch_first=True)
        return self._hook_points[key]

    def run_layer_with_states(
        self, layer: int, x: torch.Tensor, padding_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, LayerState]:
        """Run one layer and keep the inputs of ``out_proj``, the FFN block and ``fc2``.

        The state holds ``x`` and ``padding_mask`` (layer input), ``ctx`` (attention context,
        ``attention.output.dense``'s input), ``h`` (post-attention residual, the input of the
        layer's ``LayerNorm``) and ``g`` (``fc2``'s input, after the gelu).
        """
        blk = self.backbone.encoder.layer[layer]
        state: LayerState = {"x": x, "padding_mask": padding_mask}

        taps = {"ctx": blk.attention.output.dense, "h": blk.LayerNorm, "g": blk.output.dense}
        out = run_keeping_inputs(
            lambda: self.run_layers(x, padding_mask, layer, layer + 1), state, taps, first=()
        )
        return out, state

    def resume_layer(self, layer: int, position: int, state: LayerState, copies: int = 1) -> torch.Tensor:
        """Layer output from the state cached at resume point ``position``, the batch repeated ``copies``x.

        Replays the tail of ``EsmLayer.forward`` with HF's own submodules (``EsmSelfOutput``,
        ``feed_forward_chunk``, ``EsmOutput``), so it is bit-identical and the hooks fire.
        """
        blk = self.backbone.encoder.layer[layer]

        def rep(name: str) -> torch.Tensor:
            return self.repeat_stream(state[name], copies)

        if position == 0:
            return self.run_layers(rep("x"), repeat_padding(state["padding_mask"], copies), layer, layer + 1)
        if position == 1:
            return blk.feed_forward_chunk(blk.attention.output(rep("ctx"), rep("x")))
        if position == 2:
            return blk.feed_forward_chunk(rep("h"))
        if position == 3:
            return blk.output(rep("g"), rep("h"))
        raise ModelError(f"no resume point {position}")
