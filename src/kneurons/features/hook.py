"""The features of an attached SAE as units: ``SaeHookPoint``, what ``EsmClassifier.module(layer, "sae")``
returns, and how it applies the SAE's input point (``kneurons.features.sae.InputPoint``).

``SaeHookPoint`` has the interface of ``kneurons.model.hooks.HookPoint`` (``out_features``,
``register_forward_hook(hook)``, ``weight``/``bias``), so scoring, ablation and characterisation
treat features as any other units. Underneath, one forward hook on the layer's stream point
encodes the SAE's input once per pass, hands the features ``f`` ``(T, B, F)`` to the registered
hooks in order (each sees the previous one's replacement, as hooks on one module chain), and
applies the edit ``h + ((f' - f) c W_dec) s`` only when some hook returned a replacement. TopK is
never re-run on edited features, and with no replacement the stream is not touched at all.

The input point, applied when encoding and when editing:

* **positions**: the features of tokens outside the SAE's input tokens (BOS and EOS for a
  residues-only SAE) read 0 and an edit there changes nothing, whatever a hook returns, so every
  fill, mask or scale treats them alike: they are absent;
* **update**: an SAE on the block's update reads ``x = h[l] - h[l-1]`` (``h[0]`` at layer 0) and
  its edit goes into the update: the stream entering ``l`` becomes ``h[l-1] + x'``, computed as
  ``h[l] + (x' - x)`` so that keeping every feature leaves the stream bit for bit. ``h[l-1]`` is
  the stream that entered block ``l - 1`` in the very same pass (``StreamContext.stream_before``);
  a pass that starts at layer ``l`` cannot give it and is refused (``EsmClassifier.unit_start``
  says where such features' passes start);
* **rescaled embeddings**: a property of the model's run, set on the classifier when the SAE is
  attached (``EsmClassifier.attach_sae``), not of this hook.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, Self

import torch
from torch import nn

from kneurons.errors import ModelError
from kneurons.model.hooks import ForwardHook, HookPoint

if TYPE_CHECKING:
    from kneurons.features.sae import SaeCode, SparseAutoencoder

#: What ``SaeHookPoint.replacing`` puts in place of the SAE's input at its tokens.
REPLACEMENTS: tuple[str, ...] = ("reconstruction", "zero")


class StreamContext(Protocol):
    """What a hook point needs of the model beyond the stream it sees (the classifier provides it)."""

    def sae_positions(self, positions: str, h: torch.Tensor) -> torch.Tensor | None:
        """``(T, rows, 1)`` True at the tokens ``positions`` of the batch the stream ``h`` (time-first,
        ``rows`` = copies x batch) belongs to; None when every token counts."""

    def stream_before(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """The stream (time-first) that entered block ``layer - 1`` in the pass now at ``layer``."""


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
    """The features of ``sae`` on ``stream`` (a stream point: an identity module or its ``HookPoint``);
    ``context`` (the classifier) gives what the SAE's input point needs (module docstring)."""

    _ids = itertools.count()

    def __init__(
        self, stream: nn.Module | HookPoint, sae: SparseAutoencoder, context: StreamContext | None = None
    ) -> None:
        self.stream = stream
        self.sae = sae
        self.context = context
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

    # -- the input point --------------------------------------------------------------------
    def _context(self) -> StreamContext:
        if self.context is None:
            raise ModelError(
                f"{self.sae.source}: the SAE reads {self.sae.input_point.describe()}, which needs the model "
                f"it is attached to (EsmClassifier.attach_sae)"
            )
        return self.context

    def positions(self, h: torch.Tensor) -> torch.Tensor | None:
        """``(T, B, 1)`` True at the SAE's input tokens of the stream ``h``; None: every token."""
        point = self.sae.input_point
        if point.positions == "tokens":
            return None
        return self._context().sae_positions(point.positions, h)

    def read(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(x, base)``: the SAE's input ``x`` from the stream ``h`` entering its layer, and what ``h``
        is beyond it (``h = base + x``; None: ``x`` is the stream itself)."""
        if not self.sae.input_point.update or self.sae.layer == 0:
            return h, None
        before = self._context().stream_before(self.sae.layer, h)
        return h - before, before

    def encode(self, h: torch.Tensor) -> tuple[SaeCode, torch.Tensor, torch.Tensor | None]:
        """``(code, f, keep)``: the SAE's code of its input in ``h``, the features as hooks see them
        (0 outside its input tokens) and those tokens (None: all)."""
        x, _ = self.read(h)
        code = self.sae.code(x)
        keep = self.positions(h)
        return code, (code.f if keep is None else code.f * keep), keep

    # -- hooks --------------------------------------------------------------------------------
    def register_forward_hook(self, hook: ForwardHook) -> SaeHookHandle:
        """Register ``hook(point, (h,), f) -> replacement or None`` on the features ``f`` ``(T, B, F)``.

        ``h`` is the stream entering the SAE's layer, time-first ``(T, B, E)``.
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
        code, seen, keep = self.encode(h)
        f, edited = seen, False
        for hook in list(self._hooks.values()):
            new = hook(module, (h,), f)
            if new is not None:
                f, edited = new, True
        if not edited:
            return None
        if keep is None:
            return h + self.sae.edit_delta(code, f)
        # relative to what the hooks saw (0 outside the input tokens), and nothing added there
        return h + self.sae.change_delta(code, f - seen) * keep

    @contextlib.contextmanager
    def replacing(self, what: str) -> Iterator[None]:
        """Within the block, the SAE's input at its tokens is replaced by its ``reconstruction``
        (the SAE's error term dropped) or by ``zero`` (an update: the block adds nothing there):
        what the loss recovered compares (``kneurons.features.quality``). Other tokens keep the stream.
        """
        if what not in REPLACEMENTS:
            raise ValueError(f"unknown replacement {what!r}; one of {', '.join(REPLACEMENTS)}")

        def replace(_module: nn.Module, _inputs: tuple, h: torch.Tensor) -> torch.Tensor:
            x, base = self.read(h)
            new = self.sae.decode(self.sae.code(x)) if what == "reconstruction" else torch.zeros_like(x)
            if base is not None:
                new = base + new
            keep = self.positions(h)
            return new if keep is None else torch.where(keep, new, h)

        handle = self.stream.register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()
