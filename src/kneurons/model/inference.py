"""The one batched inference loop: every stage that runs the model over sequences goes through it.

``run_batches`` forms length-sorted token-budget batches (``token_budget_batches``), tokenises
each with the model's own tokenizer, copies the tokens to the device (pinned memory on CUDA),
runs the caller's ``step`` under bf16 autocast on CUDA, and on out-of-memory halves the batch
and retries (``run_adaptive``). It yields ``(Batch, result)`` per piece that ran, so callers
scatter per-sequence results by ``batch.index``.

Only per-sequence steps may use the halving (inference, per-sequence attributions): a
sequence's result must not depend on its batch partners. Gradients are the step's business
(``torch.no_grad()`` or ``torch.enable_grad()`` inside ``step``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import torch

from kneurons.model.batching import run_adaptive, token_budget_batches
from kneurons.model.runtime import autocast, to_device

T = TypeVar("T")


class Tokenizer(Protocol):
    """What the loop needs of a model: its tokenizer (BOS/EOS added, right padding)."""

    def tokenize(self, sequences: Sequence[str]) -> torch.Tensor: ...


@dataclass
class Batch:
    """One batch: row indices into the caller's sequences, and their tokens ``(B, T)`` on the device."""

    index: np.ndarray
    tokens: torch.Tensor

    def take(self, values: np.ndarray | Sequence, device: torch.device | None = None) -> torch.Tensor:
        """``values[index]`` as a tensor on the tokens' device (e.g. the gold classes of the batch)."""
        arr = np.asarray(values)[self.index]
        return to_device(torch.as_tensor(arr), device or self.tokens.device)


def plan_batches(
    sequences: Sequence[str],
    token_budget: int,
    copies: int = 1,
    max_padding: float | None = None,
) -> list[list[int]]:
    """The loop's batches: ``token_budget_batches`` with the budget divided among ``copies`` of each batch.

    A step that repeats its batch ``copies`` times (alpha steps, several masks per pass) keeps
    its padded tokens within ``token_budget`` this way.
    """
    lengths = [len(s) for s in sequences]
    return token_budget_batches(lengths, max(1, token_budget // max(1, copies)), max_padding=max_padding)


def run_batches(
    model: Tokenizer,
    sequences: Sequence[str],
    step: Callable[[Batch], T],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    batches: Sequence[Sequence[int]] | None = None,
    copies: int = 1,
    max_padding: float | None = None,
    what: str = "batch",
    use_autocast: bool = True,
) -> Iterator[tuple[Batch, T]]:
    """Run ``step(batch)`` over ``sequences`` in token-budget batches; yields ``(batch, result)``.

    ``batches`` overrides the plan (lists of indices); otherwise ``plan_batches(sequences,
    token_budget, copies, max_padding)``. ``use_autocast=False`` leaves precision to the step.
    """
    device = torch.device(device)
    lengths = [len(s) for s in sequences]
    plan = batches if batches is not None else plan_batches(sequences, token_budget, copies, max_padding)

    def run(idx: list[int]) -> tuple[Batch, T]:
        tokens = to_device(model.tokenize([sequences[i] for i in idx]), device)
        batch = Batch(index=np.asarray(idx, dtype=np.int64), tokens=tokens)
        ctx = autocast(device, bf16) if use_autocast else contextlib.nullcontext()
        with ctx:
            return batch, step(batch)

    for _idx, (batch, result) in run_adaptive(run, plan, lengths, what):
        yield batch, result
