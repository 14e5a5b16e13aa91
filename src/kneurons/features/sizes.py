"""The default size of the workflow's own SAEs (``sae.n_features``, ``sae.k`` null), torch-free: the
training (``kneurons.features.train``) and the cost plan (``kneurons.plan``) read the same numbers."""

from __future__ import annotations

#: Default features per stream dimension (F = 8 d: 512 features on the 64-dim demo model).
DEFAULT_EXPANSION = 8
#: Default k: a quarter of the stream's width, at most this many (16 on the demo model; 64 on
#: ESM-2 650M, InterProt's smaller setting).
MAX_DEFAULT_K = 64


def default_sizes(d: int) -> tuple[int, int]:
    """``(F, k)`` for a ``d``-dim stream: ``8 d`` features, ``k = d // 4`` capped at ``MAX_DEFAULT_K``."""
    return DEFAULT_EXPANSION * d, max(1, min(d // 4, MAX_DEFAULT_K))
