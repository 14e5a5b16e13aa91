"""Planting: fine-tune only the rows of S (and the head), leaving every other weight bit-identical.

A neuron of S is an output unit of one module; what makes it is that module's weight row and bias
entry, so those are what training may change. Everything else of the backbone (the other rows, the
embeddings, every LayerNorm, the attention's rotary tables) must stay exactly the base model's.
Two mechanisms guarantee it, because either alone would not:

* the gradient of each neuron-bearing weight and bias is multiplied by the 0/1 mask of S's rows
  (a tensor hook), and the backbone's other parameters do not require gradients: the optimiser's
  moments of frozen rows stay 0, and gradient clipping measures S's gradients only;
* after every optimiser step the frozen rows are copied back from the base (``restore``), since an
  optimiser may move a parameter whose gradient is 0 (AdamW's decoupled weight decay shrinks every
  row of a matrix it steps).

``Planting.check`` then compares every backbone tensor of the model with the base's, bit for bit.
The neurons must be the output units of one linear layer each (fair-esm's and Hugging Face ESM-2's
every module; ESM C's gated ``fc1`` units are not, and are refused).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from kneurons.errors import ModelError
from kneurons.model.classifier import EsmClassifier


@dataclass
class Planting:
    """The trainable rows of a model's neuron-bearing parameters, and the base values of the rest.

    ``masks[name]``: ``(rows, 1 ...)`` 0/1 float, 1 at S's rows, for each backbone parameter that holds
    a row of S; ``frozen[name]``: that parameter's base values. ``units``: ``(layer, module, neuron)``.
    """

    units: list[tuple[int, str, int]]
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    frozen: dict[str, torch.Tensor] = field(default_factory=dict)
    handles: list = field(default_factory=list)

    def restore(self, model: EsmClassifier) -> None:
        """Copy the rows outside S back to their base values (after an optimiser step)."""
        params = dict(model.esm.named_parameters())
        with torch.no_grad():
            for name, mask in self.masks.items():
                p = params[name]
                p.copy_(torch.where(mask.to(p.device).bool(), p, self.frozen[name].to(p.device, p.dtype)))

    def remove(self) -> None:
        """Remove the gradient hooks (the model trains all of its trainable parameters again)."""
        for h in self.handles:
            h.remove()
        self.handles.clear()


def _linear(model: EsmClassifier, layer: int, module: str) -> nn.Module:
    """The linear whose output units are the neurons ``(layer, module)`` (it has ``weight`` and ``bias``)."""
    point = model.module(layer, module)
    try:
        point.weight  # noqa: B018 (a hook point without one linear raises here)
    except ModelError as exc:
        raise ModelError(f"cannot plant in layer {layer} {module}: {exc}") from exc
    return getattr(point, "module", point)


def plant_rows(model: EsmClassifier, units: Iterable[tuple[int, str, int]]) -> Planting:
    """Make only ``units``' rows of the backbone trainable (and the head, whole); return the ``Planting``.

    Every backbone parameter stops requiring gradients except the weights and biases holding a row
    of S, whose gradients are masked to S's rows. With no units only the head trains (the
    control: what the head alone learns from the base's features).
    """
    units = [(int(layer), str(m), int(i)) for layer, m, i in units]
    names = {id(p): n for n, p in model.esm.named_parameters()}
    rows: dict[str, list[int]] = {}
    for layer, m, i in units:
        lin = _linear(model, layer, m)
        if not 0 <= i < lin.weight.shape[0]:
            raise ModelError(
                f"planted unit ({layer}, {m}, {i}): the module has {lin.weight.shape[0]} neurons"
            )
        for p in (lin.weight, lin.bias):
            if p is not None:
                rows.setdefault(names[id(p)], []).append(i)
    for p in model.esm.parameters():
        p.requires_grad_(False)
    for p in model.head.parameters():
        p.requires_grad_(True)
    planting = Planting(units)
    params = dict(model.esm.named_parameters())
    for name, idx in rows.items():
        p = params[name]
        mask = torch.zeros(p.shape[0], *([1] * (p.dim() - 1)), device=p.device)
        mask[sorted(set(idx))] = 1.0
        planting.masks[name] = mask
        planting.frozen[name] = p.detach().clone()
        p.requires_grad_(True)
        planting.handles.append(p.register_hook(lambda g, mask=mask: g * mask.to(g.device, g.dtype)))
    return planting


def changed_tensors(model: nn.Module, base: nn.Module) -> dict[str, torch.Tensor]:
    """For every backbone tensor (parameters and buffers) of ``model`` that is not bit-identical to
    ``base``'s, the rows (first index) that differ; an empty dict when every tensor is identical."""
    mine = dict(model.esm.state_dict())
    theirs = dict(base.esm.state_dict())
    if mine.keys() != theirs.keys():
        raise ModelError("the model and its base have different backbone tensors")
    out = {}
    for name, t in mine.items():
        other = theirs[name].to(t.device)
        if t.shape != other.shape:
            raise ModelError(f"{name}: shape {tuple(t.shape)} in the model, {tuple(other.shape)} in the base")
        differs = t != other
        if differs.any():
            out[name] = differs.reshape(t.shape[0], -1).any(1).nonzero().flatten() if t.dim() else differs
    return out


def check_planted(model: EsmClassifier, base: EsmClassifier, units: Iterable[tuple[int, str, int]]) -> None:
    """Raise ModelError unless ``model``'s backbone equals ``base``'s bit for bit outside S's rows."""
    allowed: dict[str, set[int]] = {}
    names = {id(p): n for n, p in model.esm.named_parameters()}
    for layer, m, i in units:
        lin = _linear(model, int(layer), str(m))
        for p in (lin.weight, lin.bias):
            if p is not None:
                allowed.setdefault(names[id(p)], set()).add(int(i))
    for name, rows in changed_tensors(model, base).items():
        outside = sorted(set(rows.tolist()) - allowed.get(name, set()))
        if outside:
            raise ModelError(
                f"planting changed {name} outside the planted units (rows {outside[:5]}"
                f"{' ...' if len(outside) > 5 else ''}): the model is not its base plus S"
            )
