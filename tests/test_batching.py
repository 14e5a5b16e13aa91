"""Length-sorted token-budget batches: every index once, the budget kept, padding bounded on request."""

from __future__ import annotations

import numpy as np
import pytest

from kneurons.model.batching import token_budget_batches

LENGTHS = np.random.default_rng(0).lognormal(np.log(80), 0.7, size=300).astype(int) + 1


def _padded(batches, lengths, extra=2):
    return sum(len(b) * (max(lengths[i] for i in b) + extra) for b in batches)


@pytest.mark.parametrize("max_padding", [None, 0.0, 0.1, 0.5])
def test_every_index_once_within_budget(max_padding):
    budget = 2000
    batches = token_budget_batches(LENGTHS, budget, max_padding=max_padding)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    for b in batches:
        assert len(b) == 1 or len(b) * (max(LENGTHS[i] for i in b) + 2) <= budget


@pytest.mark.parametrize("max_padding", [0.0, 0.1, 0.5])
def test_max_padding_bounds_each_batch(max_padding):
    batches = token_budget_batches(LENGTHS, 10**6, max_padding=max_padding)
    for b in batches:
        real = sum(LENGTHS[i] + 2 for i in b)
        assert len(b) * (max(LENGTHS[i] for i in b) + 2) <= (1 + max_padding) * real + 1e-9
    # Without the bound one huge batch holds everything, padded to the longest sequence.
    loose = token_budget_batches(LENGTHS, 10**6)
    assert len(loose) == 1
    assert _padded(batches, LENGTHS) < 0.5 * _padded(loose, LENGTHS)
