"""The default size of the workflow's own SAEs (``sae.n_features``, ``sae.k`` null) and the grid of
directions kept of claim 6's bases (``units.directions``), torch-free: the training
(``kneurons.features.train``), the bases job (``kneurons.jobs.bases``) and the cost plan
(``kneurons.plan``) read the same numbers."""

from __future__ import annotations

from collections.abc import Sequence

from kneurons.errors import InputError

#: Default features per stream dimension (F = 8 d: 512 features on the 64-dim demo model).
DEFAULT_EXPANSION = 8
#: Default k: a quarter of the stream's width, at most this many (16 on the demo model; 64 on
#: ESM-2 650M, InterProt's smaller setting).
MAX_DEFAULT_K = 64


def default_sizes(d: int) -> tuple[int, int]:
    """``(F, k)`` for a ``d``-dim stream: ``8 d`` features, ``k = d // 4`` capped at ``MAX_DEFAULT_K``."""
    return DEFAULT_EXPANSION * d, max(1, min(d // 4, MAX_DEFAULT_K))


def direction_counts(width: int, counts: Sequence[int] | None = None) -> list[int]:
    """The grid of directions kept: ``counts`` (those up to ``width``, sorted), or by default the
    powers of two up to the stream's width ``width`` and the width itself (1, 2, 4, ..., 64 for 64)."""
    if counts:
        out = sorted({int(k) for k in counts if 1 <= int(k) <= width})
        if not out:
            raise InputError(f"units.directions {list(counts)}: none lies in 1..{width} (the stream's width)")
        return out
    out = []
    k = 1
    while k < width:
        out.append(k)
        k *= 2
    return [*out, width]
