"""The features of an attached SAE as a hook point: what ``EsmClassifier.module(layer, "sae")`` returns.

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
from typing import Any, Self

import torch
from torch import nn

from kneurons.errors import ModelError
from kneurons.features.sae import SparseAutoencoder
from kneurons.model.hooks import ForwardHook, HookPoint


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
