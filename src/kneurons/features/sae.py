"""A sparse autoencoder: the math of every supported format in one class (DESIGN.md, "Features"),
and its features as units on the residual stream.

All four formats are one computation with format-specific tensors and switches::

    z      = (h - mu) / (sigma + 1e-5)            z-scored formats (per token, unbiased std); else z = h
    pre    = (z - b_pre) @ W_enc + b_enc
    f      = ReLU(TopK_k(pre))                    TopK formats; ReLU(pre) without k; pre itself if linear
    z_hat  = f @ W_dec + b_dec
    h_hat  = z_hat * sigma + mu                   z-scored formats; else h_hat = z_hat

A **linear** dictionary (``linear=True``) has no nonlinearity: ``f = pre``. An orthonormal basis of
the stream (``W_enc`` = the basis, ``W_dec`` its transpose, ``b_pre = b_dec``) is one: its
coordinates reconstruct the stream exactly, and negative coordinates stay (``kneurons.features.bases``).

``W_enc`` is ``(d, F)`` and ``W_dec`` ``(F, d)`` whatever the file's layout (``kneurons.features.load``
maps each format's tensors here, with the file's names in every error). An edit of the features
keeps the SAE's error term: ``h' = h + ((f' - f) @ W_dec) * s``, ``s = sigma + 1e-5`` for z-scored
formats (the inverse of the encoder's normalisation of the clean run), 1 otherwise; TopK never
runs again after an edit, so ``f' = f`` gives the intact model bit for bit.

Feature tensors are time-first ``(T, B, F)`` like every hooked unit; the math itself works on
any leading dimensions.

**The features as units**: ``SaeHookPoint`` is what ``EsmClassifier.module(layer, "sae")`` returns.
It has the interface of ``kneurons.model.hooks.HookPoint`` (``out_features``,
``register_forward_hook(hook)``, ``weight``/``bias``), so scoring, ablation and characterisation
treat features as any other units. Underneath, one forward hook on the layer's stream point
encodes the stream once per pass, hands the features ``f`` ``(T, B, F)`` to the registered hooks
in order (each sees the previous one's replacement, as hooks on one module chain), and applies
the edit ``h + ((f' - f) W_dec) s`` only when some hook returned a replacement. TopK is never
re-run on edited features, and with no replacement the stream is not touched at all.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Self

import torch
import torch.nn.functional as F
from torch import nn

from kneurons.errors import InputError, ModelError
from kneurons.model.hooks import ForwardHook, HookPoint

#: The SAE file formats ``load_sae`` reads (DESIGN.md, "Features").
SAE_FORMATS: tuple[str, ...] = ("interplm", "interprot", "esmc", "kneurons")
#: Added to the per-token standard deviation by the z-scored formats (InterProt's ``LN``).
ZSCORE_EPS = 1e-5


@dataclass(frozen=True)
class SaeCode:
    """The clean run's encoding of a stream ``h``: features ``f`` and the per-token normalisation.

    ``mu`` and ``sigma`` (``(..., 1)``) are None for formats without input scaling.
    """

    f: torch.Tensor
    mu: torch.Tensor | None = None
    sigma: torch.Tensor | None = None


class SparseAutoencoder(nn.Module):
    """One SAE on the residual stream entering layer ``layer`` (``num_layers``: after the final norm).

    ``k`` is TopK's k (None: a ReLU SAE); ``zscore`` says whether inputs are z-scored per token.
    ``relu_first`` applies ReLU before TopK (ESM C's order) rather than after (InterProt's); the
    nonzero features are the same either way, the flag keeps each format's own order.
    ``linear``: no nonlinearity at all (``f = pre``; a basis of the stream, ``k`` must be None).
    ``source`` names the file the SAE came from (every error about it says it); ``meta`` holds
    what the file records besides tensors (a trained SAE's training record).

    The tensors are parameters that require no grad: attached to a classifier they are no part
    of its state dict or of its parameters; ``train_sae`` turns their gradients on.
    """

    def __init__(
        self,
        *,
        W_enc: torch.Tensor,
        b_enc: torch.Tensor,
        W_dec: torch.Tensor,
        b_pre: torch.Tensor,
        b_dec: torch.Tensor,
        layer: int,
        k: int | None,
        zscore: bool,
        format: str,
        source: str,
        relu_first: bool = False,
        meta: dict[str, Any] | None = None,
        linear: bool = False,
    ) -> None:
        super().__init__()
        d, n = W_enc.shape
        shapes = {"W_enc": (d, n), "b_enc": (n,), "W_dec": (n, d), "b_pre": (d,), "b_dec": (d,)}
        given = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_pre": b_pre, "b_dec": b_dec}
        for name, t in given.items():
            if tuple(t.shape) != shapes[name]:
                raise InputError(f"{source}: SAE tensor {name} is {tuple(t.shape)}, expected {shapes[name]}")
            self.register_parameter(name, nn.Parameter(t.detach().clone().float(), requires_grad=False))
        if k is not None and not 1 <= int(k) <= n:
            raise InputError(f"{source}: TopK k = {k} must lie in 1..{n} (the SAE's features)")
        if linear and k is not None:
            raise InputError(f"{source}: a linear dictionary has no TopK (k = {k})")
        self.layer = int(layer)
        self.k = None if k is None else int(k)
        self.zscore = bool(zscore)
        self.relu_first = bool(relu_first)
        self.linear = bool(linear)
        self.format = format
        self.source = str(source)
        self.meta = dict(meta or {})

    # -- sizes ----------------------------------------------------------------------------
    @property
    def d(self) -> int:
        """Width of the stream it reads."""
        return int(self.W_enc.shape[0])

    @property
    def n_features(self) -> int:
        """Number of features ``F``."""
        return int(self.W_enc.shape[1])

    def describe(self) -> dict[str, Any]:
        """Plain description (format, file, layer, d, F, k): what reports and tables record."""
        return {
            "format": self.format,
            "source": self.source,
            "layer": self.layer,
            "d": self.d,
            "n_features": self.n_features,
            "k": self.k,
        }

    # -- the math -------------------------------------------------------------------------
    def normalise(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(z, mu, sigma)``: the per-token z-score of ``h`` (InterProt's ``LN``), or ``(h, None, None)``."""
        if not self.zscore:
            return h, None, None
        mu = h.mean(dim=-1, keepdim=True)
        centred = h - mu
        sigma = centred.std(dim=-1, keepdim=True)  # unbiased, as InterProt's LN
        return centred / (sigma + ZSCORE_EPS), mu, sigma

    def pre_activations(self, z: torch.Tensor) -> torch.Tensor:
        """``(z - b_pre) @ W_enc + b_enc``: the encoder before its nonlinearity."""
        return (z - self.b_pre) @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """The features from the pre-activations: ReLU, or TopK with ReLU (in the format's order);
        the pre-activations themselves for a linear dictionary."""
        if self.linear:
            return pre
        if self.k is None:
            return F.relu(pre)
        if self.relu_first:
            pre = F.relu(pre)
        top = pre.topk(self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, top.indices, F.relu(top.values))

    def code(self, h: torch.Tensor) -> SaeCode:
        """The features of stream ``h`` (``(..., d)`` -> ``(..., F)``), with the normalisation edits need."""
        z, mu, sigma = self.normalise(h)
        return SaeCode(self.activate(self.pre_activations(z)), mu, sigma)

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """The features ``f`` of stream ``h``."""
        return self.code(h).f

    def decode(self, code: SaeCode) -> torch.Tensor:
        """The reconstruction ``h_hat`` of the stream from ``code`` (its features and normalisation)."""
        z_hat = code.f @ self.W_dec + self.b_dec
        if code.sigma is None:
            return z_hat
        return z_hat * code.sigma + code.mu

    def edit_scale(self, code: SaeCode) -> torch.Tensor | float:
        """``s`` of the edit: ``sigma + 1e-5`` of the clean run for z-scored SAEs, 1 otherwise."""
        return 1.0 if code.sigma is None else code.sigma + ZSCORE_EPS

    def edit(self, h: torch.Tensor, code: SaeCode, f_new: torch.Tensor) -> torch.Tensor:
        """The stream with the features ``code.f`` of the clean run ``h`` replaced by ``f_new``.

        ``h + ((f_new - f) @ W_dec) * s``: the error term ``h - h_hat`` is kept, so ``f_new = f``
        returns ``h`` exactly, and TopK is not re-run on the edited features.
        """
        return h + ((f_new - code.f) @ self.W_dec) * self.edit_scale(code)

    # -- attachment -----------------------------------------------------------------------
    def check_fits(self, embed_dim: int, num_layers: int) -> None:
        """Refuse (naming the file) an SAE of another width, or one at a layer the model lacks."""
        if self.d != embed_dim:
            raise InputError(
                f"{self.source}: the SAE reads a {self.d}-dim stream, but the model's residual stream "
                f"is {embed_dim}-dim (an SAE of another model size?)"
            )
        if not 0 <= self.layer <= num_layers:
            raise InputError(
                f"{self.source}: layer {self.layer} is not a stream point of this {num_layers}-layer "
                f"model (0..{num_layers}; {num_layers} is the output of the final layer norm)"
            )

    def hook_point(self, stream: nn.Module | HookPoint) -> SaeHookPoint:
        """The hook point of this SAE's features on ``stream`` (a classifier's ``stream_point(layer)``)."""
        return SaeHookPoint(stream, self)


# -- the features as a hook point --------------------------------------------------------------
class SaeHookHandle:
    """What ``SaeHookPoint.register_forward_hook`` returns: ``remove()`` (idempotent) or a ``with`` block."""

    def __init__(self, point: SaeHookPoint, key: int) -> None:
        self._point, self._key = point, key

    def remove(self) -> None:
        """Unregister the hook."""
        self._point._remove(self._key)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class SaeHookPoint:
    """The features of ``sae`` on ``stream`` (a stream point: an identity module or its ``HookPoint``)."""

    _ids = itertools.count()

    def __init__(self, stream: nn.Module | HookPoint, sae: SparseAutoencoder) -> None:
        self.stream = stream
        self.sae = sae
        self._hooks: dict[int, ForwardHook] = {}
        self._stream_handle: Any = None

    @property
    def out_features(self) -> int:
        """Features of the SAE."""
        return self.sae.n_features

    @property
    def weight(self) -> torch.Tensor:
        """Features are no linear layer's outputs: there is no weight to recompute them from."""
        raise ModelError(
            f"the features of the SAE at layer {self.sae.layer} ({self.sae.source}) are not the output of "
            f"one linear layer, so they have no weight to recompute them from"
        )

    @property
    def bias(self) -> torch.Tensor | None:
        """As ``weight``: features have no linear layer's bias."""
        return self.weight

    def register_forward_hook(self, hook: ForwardHook) -> SaeHookHandle:
        """Register ``hook(point, (h,), f) -> replacement or None`` on the features ``f`` ``(T, B, F)``.

        ``h`` is the stream the features were encoded from, time-first ``(T, B, E)``.
        """
        key = next(self._ids)
        self._hooks[key] = hook
        if self._stream_handle is None:
            self._stream_handle = self.stream.register_forward_hook(self._on_stream)
        return SaeHookHandle(self, key)

    def _remove(self, key: int) -> None:
        self._hooks.pop(key, None)
        if not self._hooks and self._stream_handle is not None:
            self._stream_handle.remove()
            self._stream_handle = None

    def _on_stream(self, module: nn.Module, _inputs: tuple, h: torch.Tensor) -> torch.Tensor | None:
        code = self.sae.code(h)
        f, edited = code.f, False
        for hook in list(self._hooks.values()):
            new = hook(module, (h,), f)
            if new is not None:
                f, edited = new, True
        return self.sae.edit(h, code, f) if edited else None
