"""The scoring subset: which sequences a method scores, and its fingerprint (torch-free)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pandas as pd

from kneurons.data.split import stratified_subset
from kneurons.errors import InputError


def select_scoring_set(
    split_df: pd.DataFrame,
    classes_df: pd.DataFrame,
    split: str = "train",
    max_sequences: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The scoring subset: rows of ``split`` (never ``test``), at most ``max_sequences``, stratified by label.

    Each class gets a share proportional to its size (largest remainders, at least one per
    class while the budget allows), drawn with ``seed``. Returns ``accession, sequence, label,
    label_index`` in the split file's order; ``label_index`` comes from ``classes_df``.
    """
    if split == "test":
        raise InputError("scoring must not use the test split (it is reserved for ablation evaluation)")
    for col in ("accession", "sequence", "label", "split"):
        if col not in split_df.columns:
            raise InputError(
                f"split table lacks column {col!r} (has: {', '.join(map(str, split_df.columns))})"
            )
    index_of = dict(zip(classes_df["label"].astype(str), classes_df["label_index"].astype(int), strict=True))
    df = split_df[split_df["split"] == split].copy()
    if df.empty:
        raise InputError(f"split table has no rows in split {split!r}")
    df["label"] = df["label"].astype(str)
    unknown = sorted(set(df["label"]) - set(index_of))
    if unknown:
        raise InputError(f"labels {unknown[:5]} of the split table are missing from classes.tsv")
    df["label_index"] = df["label"].map(index_of).astype(int)
    df = stratified_subset(df, max_sequences, seed)
    return df[["accession", "sequence", "label", "label_index"]].reset_index(drop=True)


def subset_hash(accessions: Sequence[str]) -> str:
    """sha256 of the accessions joined by newlines, in order (identifies the scoring subset)."""
    return hashlib.sha256("\n".join(map(str, accessions)).encode()).hexdigest()
