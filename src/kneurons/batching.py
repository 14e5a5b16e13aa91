"""Token-budget batching with length-sorted buckets: little padding, bounded memory."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def token_budget_batches(
    lengths: Sequence[int],
    token_budget: int,
    shuffle: bool = False,
    seed: int = 0,
    extra_tokens: int = 2,
) -> list[list[int]]:
    """Group indices into batches whose padded size (batch x longest) stays within ``token_budget``.

    Indices are sorted by length so that each batch holds sequences of similar length.
    ``extra_tokens`` counts BOS/EOS. A sequence longer than the budget gets a batch of its own.
    With ``shuffle`` the order of the batches (not their content) is permuted with ``seed``,
    so training sees varied lengths while padding stays low.
    """
    lengths = np.asarray(lengths, dtype=np.int64) + extra_tokens
    order = np.argsort(lengths, kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for idx in order:
        n = int(lengths[idx])
        if current and max(longest, n) * (len(current) + 1) > token_budget:
            batches.append(current)
            current, longest = [], 0
        current.append(int(idx))
        longest = max(longest, n)
    if current:
        batches.append(current)
    if shuffle:
        rng = np.random.default_rng(seed)
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
