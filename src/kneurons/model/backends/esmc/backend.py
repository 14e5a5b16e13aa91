"""The ESM C backend: the only code that knows the insides of ESM C (transformers' ``EsmcModel``).

ESM C (EvolutionaryScale, 2024) comes through Hugging Face transformers (``transformers.models.esmc``,
an optional dependency: ``pip install 'kneurons[esmc]'``), imported lazily so that the rest of the
package works without it. EvolutionaryScale's own ``esm`` package cannot be installed next to
fair-esm (both are the top-level module ``esm``), so its checkpoints are converted
(``kneurons.model.backends.esmc.load``).

ESM C specifics kept here: the residual stream and the modules are batch-first ``(B, T, E)``
(hook points present module outputs time-first, as every backend's); a pre-norm layer with
QK-LayerNorm and rotary embeddings whose two residual branches are divided by
``sqrt(n_layers / 36)``; a SwiGLU feed-forward ``down_proj(silu(gate_proj(x)) * up_proj(x))``.

Neurons (the DESIGN vocabulary): ``q_proj``/``k_proj``/``v_proj`` are the output units of the three
projections (in the official layout: the fused ``layernorm_qkv`` projection's output units split
into q, k, v in that order, ``d`` units each); ``out_proj`` is ``o_proj``'s output; an ``fc1``
neuron is a unit of the gated hidden layer ``silu(gate_proj(x)) * up_proj(x)`` (after the gate,
i.e. ``down_proj``'s input); ``fc2`` neurons are ``down_proj``'s output units.
"""

from __future__ import annotations

import sys
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
from kneurons.model.backends.esmc.architecture import (
    CLS_IDX,
    EOS_IDX,
    NAME,
    PAD_IDX,
    build_esmc_backbone,
    rebuild,
    token_ids,
    transformers_esmc,
)
from kneurons.model.hooks import HookPoint

#: Attention implementations by the ``model.attention`` config value.
ATTENTION_IMPLEMENTATIONS = {"sdpa": "sdpa", "reference": "eager"}


# -- the backend ---------------------------------------------------------------------------------
class EsmcBackend:
    """transformers' ``EsmcModel`` behind the classifier API (see ``kneurons.model.backends.base.Backend``).

    Holds a reference to the backbone (the classifier owns the parameters, keys ``esm.*``).
    """

    name = NAME
    #: Batch-first ``(B, T, E)``: the batch is dimension 0 of the residual stream.
    batch_dim = 0
    #: QK-LayerNorm sits between ``q_proj``/``k_proj`` and the attention logits, so scaling ``q`` is
    #: not scaling ``k``: integrated gradients must not share their passes.
    qk_bilinear = False

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone
        self._esmc = transformers_esmc()
        self._hook_points: dict[tuple[int, str], HookPoint] = {}
        self.streams = StreamPoints(self.num_layers, self.embed_dim, batch_first=True)
        # ESM C has no token-dropout rescale of its embeddings: nothing to turn off
        self.embedding_rescale = True

    @staticmethod
    def accepts(backbone: nn.Module) -> bool:
        """True for transformers' ``EsmcModel`` (never imports transformers itself)."""
        mod = sys.modules.get("transformers.models.esmc.modeling_esmc")
        return mod is not None and isinstance(backbone, mod.EsmcModel)

    # -- the registry's questions (kneurons.model.backends) ----------------------------------
    @classmethod
    def build(cls, spec: BackboneSpec) -> nn.Module:
        """An ``EsmcModel`` with random weights: the recorded config (``spec.hf_config``), else ESM C's
        architecture at ``spec``'s sizes."""
        if spec.hf_config is not None:
            return rebuild({"backend": cls.name, "config": spec.hf_config})
        return build_esmc_backbone(spec.num_layers, spec.embed_dim, spec.attention_heads)

    @classmethod
    def load(
        cls, model_cfg: dict[str, Any], download: bool = True, downloader: Any = None
    ) -> tuple[nn.Module, BackboneSpec]:
        """ESM C: ``model.checkpoint`` (a snapshot folder or an official ``.pth``; nothing is
        downloaded, ``download`` is not used), or random init at ``model.custom``'s sizes."""
        from kneurons.model.backends.esmc import load as esmc_load

        if model_cfg.get("pretrained", False):
            if not model_cfg.get("checkpoint"):
                raise ModelError(
                    "model.backend esmc: pretrained ESM C weights come only from model.checkpoint"
                )
            backbone = esmc_load.load_esmc_backbone(model_cfg["checkpoint"])
        else:
            c = model_cfg["custom"]
            backbone = build_esmc_backbone(c["num_layers"], c["embed_dim"], c["attention_heads"])
        desc = cls(backbone).describe()
        spec = BackboneSpec(
            name=model_cfg["name"],
            num_layers=desc["num_layers"],
            embed_dim=desc["embed_dim"],
            attention_heads=desc["attention_heads"],
            token_dropout=False,
            backend=cls.name,
            hf_config=desc["config"],
        )
        return backbone, spec

    @classmethod
    def weights_path(cls, model_cfg: dict[str, Any]) -> Path | None:
        """``model.checkpoint``: ESM C's weights are looked for nowhere else (None without it)."""
        checkpoint = model_cfg.get("checkpoint")
        return Path(checkpoint).expanduser() if checkpoint else None

    def set_attention(self, attention: str) -> None:
        """Self-attention implementation: ``sdpa`` or the ``reference`` (transformers' eager) one."""
        if attention not in ATTENTION_IMPLEMENTATIONS:
            raise ModelError(
                f"unknown attention {attention!r}; one of {', '.join(ATTENTION_IMPLEMENTATIONS)}"
            )
        self.backbone.set_attn_implementation(ATTENTION_IMPLEMENTATIONS[attention])

    def describe(self) -> dict[str, Any]:
        """JSON-able description that :func:`rebuild` turns back into this architecture.

        ``config`` is the whole ``EsmcConfig`` (vocabulary, hidden width of the gate, rotary base:
        a checkpoint's architecture is more than its three sizes).
        """
        c = self.backbone.config
        return {
            "backend": self.name,
            "num_layers": int(c.num_hidden_layers),
            "embed_dim": int(c.hidden_size),
            "attention_heads": int(c.num_attention_heads),
            "config": c.to_dict(),
        }

    # -- parameters -----------------------------------------------------------------------
    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters the classifier never uses: none (``EsmcModel`` carries no head)."""
        return []

    def bottom_parameters(self, layers: int) -> list[nn.Parameter]:
        """The token embedding and the first ``layers`` layers (what ``train.freeze_layers`` freezes)."""
        e = self.backbone
        return [*e.embed_tokens.parameters(), *(p for layer in e.layers[:layers] for p in layer.parameters())]

    # -- sizes and tokens -----------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Transformer layers."""
        return len(self.backbone.layers)

    @property
    def embed_dim(self) -> int:
        """Width of the residual stream."""
        return int(self.backbone.config.hidden_size)

    @property
    def padding_idx(self) -> int:
        """Token id of padding."""
        return PAD_IDX

    def tokenize(self, sequences: list[str]) -> torch.Tensor:
        """Token ids ``(B, T)``: ``<cls>`` residues ``<eos>``, right-padded with ``<pad>``, on the CPU.

        ``<mask>`` and ``_`` become the mask, other characters outside the vocabulary ``<unk>``,
        as ESM C's tokenizer does (``token_ids``).
        """
        ids = [[CLS_IDX, *token_ids(s), EOS_IDX] for s in sequences]
        tokens = torch.full((len(ids), max((len(t) for t in ids), default=2)), PAD_IDX, dtype=torch.long)
        for row, t in enumerate(ids):
            tokens[row, : len(t)] = torch.tensor(t, dtype=torch.long)
        return tokens

    def residue_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` True at residues: ``<cls>``, ``<eos>`` and padding excluded."""
        return (tokens != PAD_IDX) & (tokens != CLS_IDX) & (tokens != EOS_IDX)

    # -- the residual stream --------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token embedding as ``EsmcModel.forward`` makes it: ``(x (B,T,E), padding_mask (B,T) | None)``."""
        padding_mask = tokens.eq(PAD_IDX)
        x = self.backbone.embed_tokens(tokens)
        return x, (padding_mask if padding_mask.any() else None)

    def _layer_inputs(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> tuple[Any, tuple]:
        """Attention mask and rotary ``(cos, sin)`` as ``EsmcModel.forward`` builds them for ``x``."""
        positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        rotary = self.backbone.rotary_emb(x, positions)
        mask = self._esmc.create_bidirectional_mask(
            config=self.backbone.config,
            inputs_embeds=x,
            attention_mask=None if padding_mask is None else ~padding_mask,
        )
        return mask, rotary

    def run_layers(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None, start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        """Transformer layers ``start .. stop-1`` on the residual stream ``x`` (B,T,E)."""
        mask, rotary = self._layer_inputs(x, padding_mask)
        for i, layer in enumerate(self.backbone.layers[start:stop], start):
            x = layer(self.streams.run(i, x), mask, position_embeddings=rotary)
        return x

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """Final layer norm after the last layer (stream point ``num_layers``), batch-first ``(B, T, E)``."""
        return self.streams.run(self.num_layers, self.backbone.norm(x))

    def repeat_stream(self, x: torch.Tensor, copies: int) -> torch.Tensor:
        """``x`` (B,T,E) with its batch repeated ``copies`` times (copy-major)."""
        return x.repeat(copies, 1, 1) if copies > 1 else x

    # -- modules and resume points --------------------------------------------------------
    def stream_point(self, layer: int) -> HookPoint:
        """The input of block ``layer`` (``num_layers``: after the final norm); hooks see ``(T, B, E)``."""
        return self.streams.point(layer)

    def module(self, layer: int, module_type: str) -> HookPoint:
        """The hook point of ``module_type`` in transformer layer ``layer`` (0-based), time-first outputs.

        ``fc1`` is the gated hidden layer, seen as ``down_proj``'s input; ``fc2`` is ``down_proj``'s output.
        """
        if module_type not in MODULE_TYPES:
            raise ModelError(f"unknown module {module_type!r}; one of {', '.join(MODULE_TYPES)}")
        key = (layer, module_type)
        if key not in self._hook_points:
            blk = self.backbone.layers[layer]
            attn, mlp = blk.self_attn, blk.mlp
            target = {
                "q_proj": attn.q_proj,
                "k_proj": attn.k_proj,
                "v_proj": attn.v_proj,
                "out_proj": attn.o_proj,
                "fc1": mlp.down_proj,
                "fc2": mlp.down_proj,
            }[module_type]
            self._hook_points[key] = HookPoint(target, batch_first=True, on_input=module_type == "fc1")
        return self._hook_points[key]

    def run_layer_with_states(
        self, layer: int, x: torch.Tensor, padding_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, LayerState]:
        """Run one layer and keep the inputs of ``o_proj``, the post-attention norm and ``down_proj``.

        The state holds ``x`` and ``padding_mask`` (layer input), ``ctx`` (attention context),
        ``h`` (post-attention residual) and ``g`` (the gated hidden layer, ``fc2``'s input, taken
        before any ``fc1`` hook, which fires again when the layer resumes there).
        """
        blk = self.backbone.layers[layer]
        state: LayerState = {"x": x, "padding_mask": padding_mask}

        taps = {"ctx": blk.self_attn.o_proj, "h": blk.post_attention_layernorm, "g": blk.mlp.down_proj}
        out = run_keeping_inputs(
            lambda: self.run_layers(x, padding_mask, layer, layer + 1), state, taps, first=("g",)
        )
        return out, state

    def resume_layer(self, layer: int, position: int, state: LayerState, copies: int = 1) -> torch.Tensor:
        """Layer output from the state cached at resume point ``position``, the batch repeated ``copies``x.

        Replays the tail of ``EsmcLayer.forward`` op for op (tests check it is bit-identical),
        calling the modules so that their hooks (masks) fire.
        """
        blk = self.backbone.layers[layer]
        scale = blk.scaling_factor

        def rep(name: str) -> torch.Tensor:
            return self.repeat_stream(state[name], copies)

        if position == 0:
            return self.run_layers(rep("x"), repeat_padding(state["padding_mask"], copies), layer, layer + 1)
        if position == 1:
            return self._ffn(blk, rep("x") + blk.self_attn.o_proj(rep("ctx")) / scale)
        if position == 2:
            return self._ffn(blk, rep("h"))
        if position == 3:
            return rep("h") + blk.mlp.down_proj(rep("g")) / scale
        raise ModelError(f"no resume point {position}")

    @staticmethod
    def _ffn(blk: nn.Module, h: torch.Tensor) -> torch.Tensor:
        """Second half of ``EsmcLayer.forward`` from the post-attention residual ``h``."""
        return h + blk.mlp(blk.post_attention_layernorm(h)) / blk.scaling_factor
