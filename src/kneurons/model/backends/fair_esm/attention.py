"""A fused attention fast path for fair-esm's ``MultiheadAttention``.

fair-esm computes ``softmax(Q K^T) V`` by hand (two ``bmm``, a float32 softmax and the full
``(B*H, T, T)`` weight tensor in memory). When no attention weights are needed, the same result
comes from ``torch.nn.functional.scaled_dot_product_attention`` (SDPA), which on CUDA dispatches
to flash / memory-efficient kernels.

What the fast path keeps identical, so that neuron scores do not depend on the backend:

* ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` are *called as modules*, so forward hooks
  (activation recording, masks, integrated-gradient scaling) fire exactly as on the reference path
  and their returned outputs are used;
* ``q`` is multiplied by ``head_dim ** -0.5`` before the rotary embedding, as fair-esm does, and
  SDPA runs with ``scale=1``;
* rotary position embeddings are applied by the module's own ``rot_emb``;
* keys at padding positions are masked out (``key_padding_mask``, True = padding).

It differs in one place: fair-esm scales ``q`` *in place* (``q *= scaling``), so a hook that keeps
a reference to the raw ``q_proj`` output sees it scaled afterwards; the fast path scales a copy.

When the fast path does not apply, the reference code runs: attention weights requested per head
(``need_head_weights=True``, e.g. for contact prediction), an additive ``attn_mask``,
incremental decoding state, ``add_bias_kv``/``add_zero_attn``, ``before_softmax``. The head-averaged
weights that fair-esm's ``TransformerLayer`` always asks for (``need_weights=True``) and ``ESM2``
discards unless head weights are requested are returned as ``None`` on the fast path.

The backend is chosen per model with :func:`set_attention` (``"sdpa"`` or ``"reference"``); the
workflow's ``model.attention`` config key selects it (default ``sdpa``). Switching swaps the class
of each attention module, so parameters, state dicts and registered hooks are untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from esm.multihead_attention import MultiheadAttention
from torch import nn

from kneurons.errors import ConfigError

#: Values of the ``model.attention`` config key.
ATTENTION_BACKENDS: tuple[str, ...] = ("sdpa", "reference")


class SdpaMultiheadAttention(MultiheadAttention):
    """fair-esm ``MultiheadAttention`` whose forward uses SDPA when no weights are requested.

    Instances are never built directly: :func:`set_attention` switches the class of existing
    ``MultiheadAttention`` modules to this one (and back).
    """

    def _sdpa_applies(
        self,
        incremental_state,
        static_kv: bool,
        attn_mask: torch.Tensor | None,
        before_softmax: bool,
        need_head_weights: bool,
        key: torch.Tensor | None,
        value: torch.Tensor | None,
    ) -> bool:
        return (
            not need_head_weights
            and not before_softmax
            and incremental_state is None
            and not static_kv
            and attn_mask is None
            and self.bias_k is None
            and not self.add_zero_attn
            and not self.onnx_trace
            and key is not None
            and value is not None
        )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None,
        value: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None = None,
        incremental_state=None,
        need_weights: bool = True,
        static_kv: bool = False,
        attn_mask: torch.Tensor | None = None,
        before_softmax: bool = False,
        need_head_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention over time-first inputs ``(T, B, E)``; returns ``(output (T, B, E), None)``."""
        if not self._sdpa_applies(
            incremental_state, static_kv, attn_mask, before_softmax, need_head_weights, key, value
        ):
            return super().forward(
                query,
                key,
                value,
                key_padding_mask=key_padding_mask,
                incremental_state=incremental_state,
                need_weights=need_weights,
                static_kv=static_kv,
                attn_mask=attn_mask,
                before_softmax=before_softmax,
                need_head_weights=need_head_weights,
            )
        tgt_len, bsz, embed_dim = query.shape
        heads, head_dim = self.num_heads, self.head_dim
        # Module calls (not F.linear on the weights): neuron hooks must see and may replace these.
        q = self.q_proj(query) * self.scaling
        k = self.k_proj(key)
        v = self.v_proj(value)
        src_len = k.shape[0]
        # (T, B, E) -> (B*H, T, D): fair-esm's layout, which its rotary embedding expects.
        q = q.contiguous().view(tgt_len, bsz * heads, head_dim).transpose(0, 1)
        k = k.contiguous().view(src_len, bsz * heads, head_dim).transpose(0, 1)
        v = v.contiguous().view(src_len, bsz * heads, head_dim).transpose(0, 1)
        if self.rot_emb is not None:
            q, k = self.rot_emb(q, k)
        # Under bf16 autocast the rotary tables (float32) promote q and k while v stays bf16;
        # SDPA needs one dtype (the reference path's bmm is autocast to bf16 likewise).
        q, k = q.to(v.dtype), k.to(v.dtype)
        q = q.reshape(bsz, heads, tgt_len, head_dim)
        k = k.reshape(bsz, heads, src_len, head_dim)
        v = v.reshape(bsz, heads, src_len, head_dim)
        mask = None
        if key_padding_mask is not None and key_padding_mask.dim() != 0:
            # SDPA's boolean mask means "may attend"; fair-esm's padding mask means "is padding".
            mask = ~key_padding_mask.to(torch.bool).view(bsz, 1, 1, src_len)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            scale=1.0,
        )
        out = out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed_dim)
        return self.out_proj(out), None


def _attention_modules(model: nn.Module) -> Iterator[MultiheadAttention]:
    for module in model.modules():
        if isinstance(module, MultiheadAttention):
            yield module


def get_attention(model: nn.Module) -> str:
    """The backend the model's attention modules use: ``sdpa``, ``reference`` or ``mixed``."""
    kinds = {type(m) is SdpaMultiheadAttention for m in _attention_modules(model)}
    if not kinds:
        raise ConfigError("model has no fair-esm MultiheadAttention modules")
    if kinds == {True}:
        return "sdpa"
    return "reference" if kinds == {False} else "mixed"


def set_attention(model: nn.Module, backend: str) -> nn.Module:
    """Switch every fair-esm attention module in ``model`` to ``backend`` (``sdpa`` | ``reference``).

    Works in place and returns ``model``. Parameters, buffers and hooks are kept.
    """
    if backend not in ATTENTION_BACKENDS:
        raise ConfigError(
            f"model.attention: unknown backend {backend!r}; use one of {', '.join(ATTENTION_BACKENDS)}"
        )
    target = SdpaMultiheadAttention if backend == "sdpa" else MultiheadAttention
    found = False
    for module in _attention_modules(model):
        found = True
        # Only fair-esm's own class and ours are switched: a user subclass keeps its forward.
        if type(module) in (MultiheadAttention, SdpaMultiheadAttention):
            module.__class__ = target
    if not found:
        raise ConfigError("model has no fair-esm MultiheadAttention modules to switch")
    return model


def enable_sdpa(model: nn.Module) -> nn.Module:
    """Use the SDPA fast path in every attention module of ``model`` (in place)."""
    return set_attention(model, "sdpa")


def disable_sdpa(model: nn.Module) -> nn.Module:
    """Use fair-esm's reference attention in every attention module of ``model`` (in place)."""
    return set_attention(model, "reference")


@contextlib.contextmanager
def attention_backend(model: nn.Module, backend: str) -> Iterator[nn.Module]:
    """Temporarily run ``model`` with ``backend``; restores each module's previous class on exit."""
    previous = [(m, type(m)) for m in _attention_modules(model)]
    set_attention(model, backend)
    try:
        yield model
    finally:
        for module, cls in previous:
            module.__class__ = cls
