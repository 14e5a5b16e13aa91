"""Fills: what a masked unit outputs, and the forward hooks that put it there.

* ``zero`` (the paper's reading): the unit outputs 0.
* ``mean``: the unit outputs its dataset-mean activation, measured over the non-padding
  tokens of the scoring set (``mean_activations``).
* ``pretrained``: the unit outputs what its pre-fine-tuning weights give *on the input it
  receives*, ``W_pre[i] . x + b_pre[i]`` (a per-neuron rollback of fine-tuning). This needs no
  second forward pass, composes with the batched evaluation of the engine, and is defined for
  every unit of every layer; it is refused for a model fine-tuned from random initialisation
  (there is no pre-fine-tuning output to give). The reference is the pretrained backbone, or,
  for a model planted in a base model (``kneurons.planted``), that base checkpoint
  (``kneurons.model.reference``, which checks its sha256 against the one the model records).
  Neurons only: an SAE feature has no weights to roll back.
* ``resample``: the unit outputs the activation it has on another protein of the scoring set, the
  donor drawn per evaluated protein with the run's seed, positions aligned from the start
  (``kneurons.ablation.resample``). Its values depend on the batch: the engine computes them per
  batch (``donor_activations``) and passes them to ``fill_hooks``.

``zero``, ``mean`` and ``resample`` apply to SAE features too (``mean``: a feature's mean over the
scoring set's tokens, zeros included), the SAE's error term kept as for every feature edit.

``make_fill`` is the one place that builds a fill of ``ablate.fills`` for a job (ablation and
class suppression alike).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kneurons.ablation.masks import layout_of
from kneurons.errors import ConfigError, InputError, ModelError
from kneurons.model.classifier import MODULE_TYPES, EsmClassifier
from kneurons.model.hooks import module_output_hooks, per_copy, per_copy_units
from kneurons.model.inference import Batch, run_batches
from kneurons.model.reference import fine_tuned_from, reference_loader, reference_rows
from kneurons.ranking import Block, NeuronLayout
from kneurons.vocabulary import FEATURE_FILLS, FILLS

__all__ = [
    "FEATURE_FILLS",
    "FILLS",
    "Fill",
    "fill_hooks",
    "make_fill",
    "mean_activations",
]

log = logging.getLogger(__name__)


@dataclass
class Fill:
    """What a masked unit outputs: ``zero``, ``mean`` (per-unit values), ``pretrained`` (reference
    rows) or ``resample`` (the unit's values on a donor protein of ``donors``, drawn with ``seed``)."""

    kind: str = "zero"
    means: dict[Block, torch.Tensor] = field(default_factory=dict)
    reference: dict[Block, tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)
    donors: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FILLS:
            raise ValueError(f"unknown fill {self.kind!r}; one of {', '.join(FILLS)}")

    @classmethod
    def from_reference(cls, reference: nn.Module, layout: NeuronLayout) -> Fill:
        """``pretrained`` fill from a reference (bare backbone or classifier) of the same architecture."""
        return cls(kind="pretrained", reference=reference_rows(reference, layout.blocks, layout.sizes))

    def to(self, device: torch.device) -> Fill:
        """A copy with every tensor on ``device``."""
        return Fill(
            kind=self.kind,
            means={b: v.to(device) for b, v in self.means.items()},
            reference={
                b: (w.to(device), None if bias is None else bias.to(device))
                for b, (w, bias) in self.reference.items()
            },
            donors=self.donors,
            seed=self.seed,
        )

    @property
    def per_batch(self) -> bool:
        """True when the fill's values depend on the evaluated batch (``resample``: its donors)."""
        return self.kind == "resample"

    def check(self, blocks: Sequence[Block]) -> None:
        """Raise when a fill value is missing for one of ``blocks``."""
        if self.kind == "resample" and blocks and not self.donors:
            raise ModelError("fill 'resample': no donor proteins (the scoring set) to take activations from")
        store = self.means if self.kind == "mean" else self.reference if self.kind == "pretrained" else None
        if store is not None:
            missing = [b for b in blocks if b not in store]
            if missing:
                raise ModelError(f"fill {self.kind!r}: no values for module(s) {missing[:3]}")


@torch.no_grad()
def mean_activations(
    model: EsmClassifier,
    sequences: Sequence[str],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    modules: Sequence[str] = MODULE_TYPES,
) -> dict[Block, torch.Tensor]:
    """Mean output of every unit over the non-padding tokens (BOS/EOS included) of ``sequences``
    (of a unit that exists at fewer tokens, over those: ``EsmClassifier.unit_mask``).

    The ``mean`` fill value. Computed in fp32 so that it does not depend on the device's autocast.
    ``modules``: the neuron modules (the default) or ``("sae",)``: the features of the attached SAEs
    (zeros included: a feature that does not fire on a token counts as 0 there).
    """
    if len(sequences) == 0:
        raise InputError("mean fill: the scoring set is empty")
    device = torch.device(device)
    model = model.to(device).eval()
    layout = layout_of(model, modules)
    sums = {
        b: torch.zeros(n, dtype=torch.float64, device=device)
        for b, n in zip(layout.blocks, layout.sizes, strict=False)
    }
    counts = dict.fromkeys(layout.blocks, 0)

    def step(batch: Batch) -> tuple[dict[Block, torch.Tensor], dict[Block, int]]:
        batch_sums: dict[Block, torch.Tensor] = {}
        valid = {b: model.unit_mask(batch.tokens, *b).double() for b in layout.blocks}

        def reduce(block: Block) -> Callable[[torch.Tensor], None]:
            def fn(out: torch.Tensor) -> None:
                batch_sums[block] = (out.double() * valid[block]).sum(tuple(range(out.dim() - 1)))

            return fn

        with module_output_hooks([(model.module(*b), reduce(b)) for b in layout.blocks]):
            model(batch.tokens)
        return batch_sums, {b: int(v.sum().item()) for b, v in valid.items()}

    for _batch, (batch_sums, tokens) in run_batches(
        model, sequences, step, token_budget, device, use_autocast=False, what="mean fill"
    ):
        for b, s in batch_sums.items():
            sums[b] += s
            counts[b] += tokens[b]
    return {b: (s / counts[b]).float() for b, s in sums.items()}


def make_fill(
    kind: str,
    model: EsmClassifier,
    info: Mapping[str, Any],
    model_cfg: Mapping[str, Any] | None = None,
    scoring_sequences: Sequence[str] | None = None,
    reference: nn.Module | Callable[[], nn.Module] | None = None,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    source: str = "checkpoint",
    modules: Sequence[str] = MODULE_TYPES,
    seed: int = 0,
) -> Fill:
    """The fill ``kind`` (one of ``ablate.fills``) for ``model``, loaded with checkpoint info ``info``.

    ``mean`` measures the mean activations of the units ``modules`` (neurons, or ``("sae",)``: the
    attached SAEs' features) on ``scoring_sequences``; ``resample`` takes its donors from them, drawn
    with ``seed``. ``pretrained`` (neurons only) needs a model fine-tuned from a reference
    (pretrained weights, or a base checkpoint: ``kneurons.model.reference.fine_tuned_from``) and
    that reference: a module, or a function that loads it (called only here, so a random-init model
    never triggers a download); by default ``reference_loader(info, model_cfg)``, the pretrained
    weights.
    """
    if kind == "zero":
        return Fill()
    if kind in ("mean", "resample") and not scoring_sequences:
        raise InputError(f"ablate.fills {kind!r}: no scoring sequences to take the fill's values from")
    if kind == "mean":
        log.info("measuring mean activations on %d scoring sequences", len(scoring_sequences))
        means = mean_activations(model, scoring_sequences, token_budget, device, modules)
        return Fill(kind="mean", means=means)
    if kind == "resample":
        return Fill(kind="resample", donors=tuple(str(s) for s in scoring_sequences), seed=int(seed))
    if kind == "pretrained":
        if tuple(modules) != tuple(MODULE_TYPES):
            raise InputError(
                "ablate.fills 'pretrained' rolls neurons back to their pre-fine-tuning weights; "
                "SAE features have no weights to roll back (use zero, mean or resample for them)"
            )
        if fine_tuned_from(info) == "random init":
            raise ConfigError(
                f"ablate.fills: 'pretrained' fills a neuron with the output of its pre-fine-tuning weights, "
                f"but {source} was fine-tuned from random initialisation (model.pretrained: false); "
                f"use fill 'zero', 'mean' or 'resample'"
            )
        if reference is None:
            reference = reference_loader(info, model_cfg, source)
        ref = reference() if not isinstance(reference, nn.Module) else reference
        return Fill.from_reference(ref, layout_of(model))
    raise ValueError(f"unknown fill {kind!r}; one of {', '.join(FILLS)}")


@contextlib.contextmanager
def fill_hooks(
    model: EsmClassifier,
    filled: dict[Block, torch.Tensor],
    fill: Fill,
    batch_values: Mapping[Block, torch.Tensor] | None = None,
) -> Iterator[None]:
    """Fill the masked units of each module; ``filled[b]`` is ``(copies, n)`` bool, copy-major batch.

    ``batch_values``: the ``resample`` fill's values for the batch being run, per block ``(T, B, n)``
    time-first (``kneurons.ablation.resample.donor_activations``); every copy takes them.
    The hook needs the module *input* for the ``pretrained`` fill, hence a plain forward hook
    rather than ``kneurons.model.hooks.module_output_hooks`` (which passes the output only).
    """
    handles = []
    if fill.per_batch and filled and batch_values is None:
        raise ModelError(f"fill {fill.kind!r} needs its values for the batch (donor_activations)")

    def make(block: Block, m: torch.Tensor) -> Callable:
        copies = m.shape[0]
        if fill.kind == "mean":
            value = fill.means[block]
        elif fill.kind == "resample":
            value = batch_values[block].unsqueeze(1)  # (T, 1, B, n): the same donors for every copy
        elif fill.kind == "pretrained":
            weight, bias = fill.reference[block]

        def hook(_mod: nn.Module, inputs: tuple, out: torch.Tensor) -> torch.Tensor:
            y = per_copy(out, copies)
            sel = per_copy_units(m, out.dim())
            if fill.kind == "zero":
                new = y.masked_fill(sel, 0.0)
            elif fill.kind in ("mean", "resample"):
                new = torch.where(sel, value.to(y.dtype), y)
            else:
                x = inputs[0]
                ref = F.linear(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))
                new = torch.where(sel, ref.view_as(y).to(y.dtype), y)
            return new.view(out.shape)

        return hook

    try:
        for block, m in filled.items():
            handles.append(model.module(*block).register_forward_hook(make(block, m)))
        yield
    finally:
        for h in handles:
            h.remove()
