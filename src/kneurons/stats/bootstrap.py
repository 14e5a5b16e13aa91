"""The bootstrap's draws, shared by every statistic that resamples the test proteins, the random
seeds and the replicates (``kneurons.stats.random``, ``faithfulness``, ``compactness``), and its
p-value. Torch-free."""

from __future__ import annotations

import numpy as np


def protein_weights(rng: np.random.Generator, n_test: int, n_boot: int) -> np.ndarray:
    """Bootstrap resamples of the test proteins as weights ``(n_test, n_boot)``: column ``b`` holds
    how often each protein was drawn (with replacement, ``n_test`` draws) over ``n_test``, so
    ``correct @ weights`` is each resample's accuracy."""
    return rng.multinomial(n_test, np.full(n_test, 1 / n_test), size=n_boot).T / n_test


def replicate_picks(rng: np.random.Generator, n_replicates: int, n_boot: int) -> np.ndarray | None:
    """The replicates each bootstrap resample averages ``(n_boot, n_replicates)``, drawn with
    replacement; None (nothing drawn) for one replicate or no bootstrap."""
    if not n_boot or n_replicates < 2:
        return None
    return rng.integers(0, n_replicates, size=(n_boot, n_replicates))


def bootstrap_p(replicates: np.ndarray, alternative: str = "two-sided") -> float:
    """Bootstrap p-value of a zero effect, in ``[1/B, 1]``: two-sided ``2 min(P*(x <= 0), P*(x >= 0))``,
    or one-sided against an effect ``greater`` than zero, ``P*(x <= 0)`` (``less``: ``P*(x >= 0)``)."""
    n = len(replicates)
    if n == 0:
        return float("nan")
    below, above = np.count_nonzero(replicates <= 0), np.count_nonzero(replicates >= 0)
    if alternative == "two-sided":
        tail = 2 * min(below, above)
    elif alternative in ("greater", "less"):
        tail = below if alternative == "greater" else above
    else:
        raise ValueError(f"unknown alternative {alternative!r}")
    return float(min(1.0, max(tail, 1) / n))
