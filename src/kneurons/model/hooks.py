"""Forward hooks on module outputs: scale, mask, replace or record a neuron-bearing module's output.

One mechanism serves scoring (IG scales a module's output by alpha; activation scores reduce it)
and ablation (masks replace some output units by a fill value).

fair-esm detail that every hook author must know: ``MultiheadAttention`` multiplies the output of
``q_proj`` *in place* by the head scaling right after the module returns. Hence

* a hook that keeps the output for later must ``clone()`` it (or reduce it inside the hook);
* a hook that returns a replacement must return a fresh non-leaf tensor (``out * mask`` is fine;
  a leaf that requires grad, or a view of a tensor the caller keeps, is not).

Outputs are time-first ``(T, B, n_neurons)`` inside fair-esm layers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Self

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

#: ``fn(output) -> replacement or None``; None keeps the module's own output.
OutputFn = Callable[[torch.Tensor], "torch.Tensor | None"]


def _as_forward_hook(fn: OutputFn):
    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        return fn(output)

    return hook


@contextlib.contextmanager
def module_output_hook(module: nn.Module, fn: OutputFn) -> Iterator[RemovableHandle]:
    """Apply ``fn`` to ``module``'s output on every forward call inside the ``with`` block.

    ``fn`` receives the output tensor and returns a replacement, or None to keep it. The hook
    is removed when the block exits, also on error, so a model is never left modified.
    """
    handle = module.register_forward_hook(_as_forward_hook(fn))
    try:
        yield handle
    finally:
        handle.remove()


@contextlib.contextmanager
def module_output_hooks(
    hooks: Mapping[nn.Module, OutputFn] | Iterable[tuple[nn.Module, OutputFn]],
) -> Iterator[list[RemovableHandle]]:
    """Several ``module_output_hook``s at once (e.g. one mask per module); all removed on exit."""
    items = list(hooks.items()) if isinstance(hooks, Mapping) else list(hooks)
    handles: list[RemovableHandle] = []
    try:
        for module, fn in items:
            handles.append(module.register_forward_hook(_as_forward_hook(fn)))
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def scale_fn(alpha: torch.Tensor | float) -> OutputFn:
    """``output * alpha``; a tensor ``alpha`` broadcasts against ``(T, B, n)`` (e.g. shape ``(1, B, 1)``)."""

    def fn(output: torch.Tensor) -> torch.Tensor:
        return output * alpha

    return fn


def mask_fn(keep: torch.Tensor, fill: torch.Tensor | float = 0.0) -> OutputFn:
    """Keep the units where ``keep`` is 1 and put ``fill`` elsewhere.

    ``keep`` has shape ``(n_neurons,)`` (0/1 or bool); ``fill`` is a scalar or a ``(n_neurons,)``
    vector (e.g. the dataset mean activation). Applied at every token, BOS/EOS/padding included
    (padding never reaches a pooled output, so this matches scores that exclude padding).
    """

    def fn(output: torch.Tensor) -> torch.Tensor:
        k = keep.to(device=output.device, dtype=output.dtype)
        f = fill.to(device=output.device, dtype=output.dtype) if isinstance(fill, torch.Tensor) else fill
        return output * k + (1 - k) * f

    return fn


class OutputRecorder:
    """Collect (a function of) module outputs during forward passes.

    ``reduce(output) -> tensor`` is applied inside the hook, before fair-esm's in-place scaling
    of ``q_proj`` outputs can touch the tensor; the default stores a detached clone.
    Use as ``with OutputRecorder({"q0": m.module(0, "q_proj")}) as rec: model(tokens)``, then
    ``rec.outputs["q0"]`` is a list with one entry per forward call.
    """

    def __init__(
        self,
        modules: Mapping[str, nn.Module],
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.modules = dict(modules)
        self.reduce = reduce or (lambda out: out.detach().clone())
        self.outputs: dict[str, list[torch.Tensor]] = {name: [] for name in self.modules}
        self._stack = contextlib.ExitStack()

    def _recorder(self, name: str) -> OutputFn:
        def fn(output: torch.Tensor) -> None:
            self.outputs[name].append(self.reduce(output))

        return fn

    def __enter__(self) -> Self:
        self._stack.enter_context(
            module_output_hooks([(mod, self._recorder(name)) for name, mod in self.modules.items()])
        )
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()


def per_copy(output: torch.Tensor, copies: int, batch_dim: int) -> torch.Tensor:
    """View of a module output whose batch holds ``copies`` copy-major copies, a copy axis before the batch.

    Fair-esm's ``(T, copies * B, n)`` becomes ``(T, copies, B, n)``; ``batch_dim`` is the
    model's (``EsmClassifier.batch_dim``), so hooks need not know the backend's layout.
    """
    shape = output.shape
    return output.view(*shape[:batch_dim], copies, shape[batch_dim] // copies, *shape[batch_dim + 1 :])


def per_copy_units(units: torch.Tensor, ndim: int, batch_dim: int) -> torch.Tensor:
    """``(copies, n)`` per-copy unit values that broadcast against ``per_copy`` of an ``ndim``-d output."""
    copies, n = units.shape
    return units.view(*(1,) * batch_dim, copies, *(1,) * (ndim - batch_dim - 1), n)
