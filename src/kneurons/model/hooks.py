"""Forward hooks on module outputs: scale, mask, replace or record a neuron-bearing module's output.

One mechanism serves scoring (IG scales a module's output by alpha; activation scores reduce it)
and ablation (masks replace some output units by a fill value).

fair-esm detail that every hook author must know: ``MultiheadAttention`` multiplies the output of
``q_proj`` *in place* by the head scaling right after the module returns. Hence

* a hook that keeps the output for later must ``clone()`` it (or reduce it inside the hook);
* a hook that returns a replacement must return a fresh non-leaf tensor (``out * mask`` is fine;
  a leaf that requires grad, or a view of a tensor the caller keeps, is not).

**Hook points.** ``EsmClassifier.module(layer, type)`` returns a hook point: an object with
``out_features`` and ``register_forward_hook(hook)``. Whatever the backend's own layout, a hook
sees the module output time-first ``(T, B, n_neurons)`` (the batch at ``OUTPUT_BATCH_DIM``) and
returns a replacement in that layout or None; tensor inputs it receives are time-first too.
fair-esm's linears are time-first already and serve as their own hook points; batch-first
backends wrap theirs in :class:`HookPoint`. One layout means scoring, ablation and
characterisation never ask which backend computed a tensor.

**Stream points.** The residual stream has hook points too (``EsmClassifier.stream_point(l)``): a
:class:`StreamPoint` identity the backend passes the stream through where it enters layer ``l``
(and after the final norm, ``l = num_layers``); hooks see it time-first ``(T, B, E)``. The
features of an SAE attached there are read from it (``kneurons.features.sae.SaeHookPoint``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Self

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from kneurons.errors import ModelError

#: Where the batch is in a module output as hooks see it: time-first ``(T, B, n)``.
OUTPUT_BATCH_DIM = 1

#: ``fn(output) -> replacement or None``; None keeps the module's own output.
OutputFn = Callable[[torch.Tensor], "torch.Tensor | None"]


#: ``hook(module, inputs, output) -> replacement or None``, as for ``nn.Module.register_forward_hook``.
ForwardHook = Callable[[nn.Module, tuple, torch.Tensor], "torch.Tensor | None"]


class HookPoint:
    """A neuron-bearing module of a batch-first backend, seen time-first by forward hooks.

    ``module`` computes ``(B, T, n)`` tensors. Hooks registered here receive the output (and the
    tensor inputs) transposed to ``(T, B, n)`` views and may return a time-first replacement,
    which is transposed back before the model continues. With ``on_input`` the neurons are the
    module's *input* units (e.g. a gated hidden layer that exists only as the input of its down
    projection): the hook runs as a forward pre-hook and a replacement replaces that input.
    """

    def __init__(self, module: nn.Module, batch_first: bool = True, on_input: bool = False) -> None:
        self.module = module
        self.batch_first = batch_first
        self.on_input = on_input

    def _time_first(self, t: torch.Tensor) -> torch.Tensor:
        return t.transpose(0, 1) if self.batch_first and t.dim() >= 3 else t

    @property
    def out_features(self) -> int:
        """Neurons at this point."""
        return int(self.module.in_features if self.on_input else self.module.out_features)

    @property
    def weight(self) -> torch.Tensor:
        """Weight of the linear whose outputs are the neurons (what the ``pretrained`` fill recomputes)."""
        return self._linear().weight

    @property
    def bias(self) -> torch.Tensor | None:
        """Bias of that linear (None when it has none)."""
        return self._linear().bias

    def _linear(self) -> nn.Module:
        if self.on_input:
            raise ModelError(
                f"the neurons at the input of {type(self.module).__name__} are not the output of one "
                f"linear layer, so they have no weight to recompute them from"
            )
        return self.module

    def register_forward_hook(self, hook: ForwardHook) -> RemovableHandle:
        """Register ``hook`` on the neurons' tensor, presented time-first; returns the removable handle."""
        tf = self._time_first

        def restore(new: torch.Tensor | None) -> torch.Tensor | None:
            return None if new is None else tf(new)

        if self.on_input:

            def pre_hook(mod: nn.Module, args: tuple) -> tuple | None:
                new = restore(hook(mod, (), tf(args[0])))
                return None if new is None else (new, *args[1:])

            return self.module.register_forward_pre_hook(pre_hook)

        def forward_hook(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
            seen = tuple(tf(t) if isinstance(t, torch.Tensor) else t for t in inputs)
            return restore(hook(mod, seen, tf(output)))

        return self.module.register_forward_hook(forward_hook)


class StreamPoint(nn.Module):
    """The residual stream at one place (entering a layer, or after the final norm), as a module.

    An identity: a backend calls it where the stream passes, so that forward hooks can read or
    replace the stream there (``Backend.stream_point``). It holds no parameters or buffers, and
    backends keep it outside the backbone's modules, so checkpoints do not see it.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.out_features = int(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The stream itself (hooks may replace it)."""
        return x


def _as_forward_hook(fn: OutputFn):
    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        return fn(output)

    return hook


@contextlib.contextmanager
def module_output_hook(module: nn.Module | HookPoint, fn: OutputFn) -> Iterator[RemovableHandle]:
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
    hooks: Mapping[nn.Module | HookPoint, OutputFn] | Iterable[tuple[nn.Module | HookPoint, OutputFn]],
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
        modules: Mapping[str, nn.Module | HookPoint],
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


def per_copy(output: torch.Tensor, copies: int, batch_dim: int = OUTPUT_BATCH_DIM) -> torch.Tensor:
    """View of a tensor whose batch holds ``copies`` copy-major copies, a copy axis before the batch.

    A hooked module output ``(T, copies * B, n)`` becomes ``(T, copies, B, n)``.
    """
    shape = output.shape
    return output.view(*shape[:batch_dim], copies, shape[batch_dim] // copies, *shape[batch_dim + 1 :])


def per_copy_units(units: torch.Tensor, ndim: int, batch_dim: int = OUTPUT_BATCH_DIM) -> torch.Tensor:
    """``(copies, n)`` per-copy unit values that broadcast against ``per_copy`` of an ``ndim``-d output."""
    copies, n = units.shape
    return units.view(*(1,) * batch_dim, copies, *(1,) * (ndim - batch_dim - 1), n)
