"""Hook points: every backend's module outputs reach hooks time-first, and replacements land back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kneurons.errors import ModelError
from kneurons.model.hooks import HookPoint, OutputRecorder, mask_fn, module_output_hook, per_copy


def _linear(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(6, 5)


def test_batch_first_output_is_seen_time_first_and_replacement_is_restored():
    lin = _linear()
    x = torch.randn(3, 4, 6)  # (B, T, E)
    keep = torch.tensor([1, 0, 1, 1, 0])
    seen = {}

    def fn(out: torch.Tensor) -> torch.Tensor:
        seen["shape"] = tuple(out.shape)
        return mask_fn(keep)(out)

    with module_output_hook(HookPoint(lin, batch_first=True), fn):
        got = lin(x)
    assert seen["shape"] == (4, 3, 5)
    # The same mask applied by hand in the module's own layout.
    torch.testing.assert_close(got, lin(x) * keep, rtol=0, atol=0)


def test_hook_point_matches_a_time_first_module():
    """A time-first hook on the transposed input gives the transposed result (per-copy fills too)."""
    lin = _linear(1)
    x = torch.randn(4, 7, 6)  # (copies * B, T, E) with copies=2, B=2
    mask = torch.tensor([[True, False, False, True, False], [False, True, False, False, True]])

    def hook(_m, _inputs, out):
        y = per_copy(out, 2)
        return y.masked_fill(mask.view(1, 2, 1, 5), 0.0).view(out.shape)

    h = HookPoint(lin, batch_first=True).register_forward_hook(hook)
    try:
        batch_first = lin(x)
    finally:
        h.remove()
    h = lin.register_forward_hook(hook)
    try:
        time_first = lin(x.transpose(0, 1).contiguous())
    finally:
        h.remove()
    # The matmul itself may round differently in the two layouts; the masked units are exact zeros.
    torch.testing.assert_close(batch_first, time_first.transpose(0, 1), rtol=0, atol=1e-6)
    for c in range(2):
        assert bool((batch_first.view(2, 2, 7, 5)[c][..., mask[c]] == 0).all())


def test_hooks_receive_time_first_inputs():
    """The pretrained fill recomputes a module from its input: input and output must share a layout."""
    lin = _linear(2)
    x = torch.randn(2, 3, 6)

    def hook(mod, inputs, out):
        torch.testing.assert_close(torch.nn.functional.linear(inputs[0], mod.weight, mod.bias), out)
        assert inputs[0].shape == (3, 2, 6)

    h = HookPoint(lin).register_forward_hook(hook)
    try:
        lin(x)
    finally:
        h.remove()


def test_on_input_point_hooks_the_input_units():
    """``on_input``: neurons are the input units of a module (a gated layer before its down projection)."""
    down = _linear(3)
    hidden = torch.randn(2, 3, 6)  # (B, T, hidden)
    point = HookPoint(down, batch_first=True, on_input=True)
    assert point.out_features == 6
    with OutputRecorder({"g": point}) as rec:
        down(hidden)
    torch.testing.assert_close(rec.outputs["g"][0], hidden.transpose(0, 1))

    keep = torch.tensor([1, 1, 0, 1, 0, 1])
    with module_output_hook(point, mask_fn(keep)):
        got = down(hidden)
    zeroed = down.weight * keep  # zeroing input unit i = zeroing column i of the weight
    torch.testing.assert_close(got, torch.nn.functional.linear(hidden, zeroed, down.bias))
    with pytest.raises(ModelError, match="no weight"):
        _ = point.weight


def test_hook_points_are_removed_after_the_block():
    lin = _linear()
    x = torch.randn(2, 3, 6)
    with module_output_hook(HookPoint(lin), lambda out: out * 0):
        assert lin(x).abs().sum() == 0
    assert lin(x).abs().sum() > 0
