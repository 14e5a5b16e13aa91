"""Multiple-testing correction, the one Benjamini-Hochberg of the workflow (torch-free)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps


def bh_qvalues(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values; NaN p-values stay NaN and do not count as tests."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = sps.false_discovery_control(p[ok], method="bh")
    return q
