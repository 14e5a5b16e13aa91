"""Token-budget batching with length-sorted buckets: little padding, bounded memory.

``run_adaptive`` runs a step over such batches and halves a batch that runs out of memory
(long sequences on a small GPU), logging it, instead of failing the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from kneurons.errors import ModelError

log = logging.getLogger(__name__)
T = TypeVar("T")


def token_budget_batches(
    lengths: Sequence[int],
    token_budget: int,
    shuffle: bool = False,
    seed: int = 0,
    extra_tokens: int = 2,
    max_padding: float | None = None,
) -> list[list[int]]:
    """Group indices into batches whose padded size (batch x longest) stays within ``token_budget``.

    Indices are sorted by length so that each batch holds sequences of similar length.
    ``extra_tokens`` counts BOS/EOS. A sequence longer than the budget gets a batch of its own.
    ``max_padding`` also closes a batch before its padding would exceed that fraction of its real
    tokens: for batches that are run many times (integrated-gradient steps, ablation masks),
    where more, tighter batches cost less than fewer, padded ones.
    With ``shuffle`` the order of the batches (not their content) is permuted with ``seed``,
    so training sees varied lengths while padding stays low.
    """
    lengths = np.asarray(lengths, dtype=np.int64) + extra_tokens
    order = np.argsort(lengths, kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = real = 0
    for idx in order:
        n = int(lengths[idx])
        padded = max(longest, n) * (len(current) + 1)
        if current and (
            padded > token_budget or (max_padding is not None and padded > (1 + max_padding) * (real + n))
        ):
            batches.append(current)
            current, longest, real = [], 0, 0
        current.append(int(idx))
        longest = max(longest, n)
        real += n
    if current:
        batches.append(current)
    if shuffle:
        rng = np.random.default_rng(seed)
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an out-of-memory error of torch on CUDA (or another accelerator) or the CPU allocator."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc)
        return "out of memory" in text or "DefaultCPUAllocator: can't allocate memory" in text
    return False


def _release_cached_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_adaptive(
    fn: Callable[[list[int]], T],
    batches: Sequence[Sequence[int]],
    lengths: Sequence[int] | None = None,
    what: str = "batch",
    extra_tokens: int = 2,
) -> Iterator[tuple[list[int], T]]:
    """Run ``fn(indices)`` on each batch; on out-of-memory halve the batch and retry its halves.

    Yields ``(indices, fn(indices))`` for every piece that ran, in order, so callers scatter
    results by index; this is only right for steps whose per-sequence results do not depend
    on the batch they share (inference, per-sequence attributions), never for a training step.
    Each halving is logged as a warning. The padded size of the smallest batch that ran out
    of memory is remembered (with ``lengths``), and later batches at least that large are split
    before they run, so one long-sequence bucket does not fail again and again. A single
    sequence that does not fit raises :class:`~kneurons.errors.ModelError` with its length.
    """
    lengths_arr = None if lengths is None else np.asarray(lengths, dtype=np.int64) + extra_tokens
    limit: int | None = None  # padded tokens known to run out of memory

    def padded(idx: list[int]) -> int:
        return 0 if lengths_arr is None else len(idx) * int(lengths_arr[idx].max())

    for batch in batches:
        todo: list[list[int]] = [list(batch)]
        while todo:
            idx = todo.pop(0)
            if limit is not None and len(idx) > 1 and padded(idx) >= limit:
                half = len(idx) // 2
                todo[:0] = [idx[:half], idx[half:]]
                continue
            try:
                result = fn(idx)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                oom = True
            else:
                oom = False
            if not oom:
                yield idx, result
                continue
            # Outside the handler: the traceback (and the failed step's tensors) are gone now.
            _release_cached_memory()
            size = padded(idx)
            if len(idx) == 1:
                length = (
                    "" if lengths_arr is None else f" of {int(lengths_arr[idx[0]]) - extra_tokens} residues"
                )
                raise ModelError(
                    f"{what}: out of memory on a single sequence{length} (index {idx[0]}); "
                    "lower labels.max_length (or the token budget) or use a device with more memory"
                )
            if lengths_arr is not None:
                limit = size if limit is None else min(limit, size)
            log.warning(
                "%s: out of memory on %d sequences (%d padded tokens); halving the batch and retrying",
                what,
                len(idx),
                size,
            )
            half = len(idx) // 2
            todo[:0] = [idx[:half], idx[half:]]
