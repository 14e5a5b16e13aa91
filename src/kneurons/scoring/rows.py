"""Score-table rows from scores (torch-free); reading and writing the files is ``kneurons.tables``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.errors import InputError
from kneurons.tables import SCORE_COLUMNS


def frame(
    method: str, layer: int, module: str, scores: np.ndarray, label: str | None, seed: int | None
) -> pd.DataFrame:
    """Rows of one module's scores (one row per neuron) with the given ``label`` and ``seed`` (or NA)."""
    n = len(scores)
    return pd.DataFrame(
        {
            "method": method,
            "layer": np.full(n, layer, dtype=np.int64),
            "module": module,
            "neuron": np.arange(n, dtype=np.int64),
            "label": pd.array([label] * n, dtype="string"),
            "seed": pd.array([seed] * n, dtype="Int64"),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One score table from ``frame`` pieces, in ``SCORE_COLUMNS`` order with nullable ``label``/``seed``."""
    df = pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]
    df["label"] = df["label"].astype("string")
    df["seed"] = df["seed"].astype("Int64")
    return df


def scores_table(
    per_sequence: dict[str, np.ndarray],
    method: str,
    layer: int,
    labels: Sequence[str] | None = None,
    class_conditional: bool = False,
) -> pd.DataFrame:
    """Score table rows from per-sequence scores: the mean over all sequences (``label`` NA) and,
    with ``class_conditional``, the mean over each class's sequences (``label`` = the class)."""
    frames = []
    for t, values in per_sequence.items():
        if values.shape[0] == 0:
            raise InputError("no sequences to score")
        frames.append(frame(method, layer, t, values.mean(0), label=None, seed=None))
    if class_conditional:
        if labels is None:
            raise ValueError("class-conditional scores need the sequences' labels")
        labels = np.asarray(labels, dtype=object)
        for cls in sorted(set(labels)):
            sel = labels == cls
            for t, values in per_sequence.items():
                frames.append(frame(method, layer, t, values[sel].mean(0), label=str(cls), seed=None))
    return concat(frames)
