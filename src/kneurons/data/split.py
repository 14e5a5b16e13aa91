"""Train/validation/test splits: stratified random, or homology-aware with MMseqs2 clusters.

Both methods put every class into every split (a class that cannot be spread that way is an
error, not a silent gap in the test set). The homology split assigns whole clusters, so no
test protein shares a cluster with a training protein. :func:`leakage_report` measures what
is left: class counts per split, clusters shared across splits, and (with MMseqs2, run by
:mod:`kneurons.data.mmseqs`) the highest sequence identity of any test protein to any
training protein.

Homology is a property of whole proteins: clusters and identities are computed on the full-length
sequences (``data/proteins.tsv``, ``full_length_sequences``), while the split table keeps the
sequences the model reads, cropped to ``labels.max_length`` by the label policies. Clustering the
crops merges and splits clusters by their first residues only (the Swiss-Prot sample's 7,389
labelled proteins: 6,915 clusters of their 256-residue crops, 7,139 of the full sequences).
"""

from __future__ import annotations

import logging
import math
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kneurons.data.mmseqs import MMSEQS_INSTALL_HINT, max_identity_vs_train, mmseqs_clusters
from kneurons.errors import InputError
from kneurons.schema import with_defaults

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def full_length_sequences(df: pd.DataFrame, proteins: pd.DataFrame, what: str = "proteins") -> pd.DataFrame:
    """A copy of ``df`` whose ``sequence`` is each protein's full-length one from ``proteins`` (the
    proteins table, as read; by accession), for homology: clusters, identities and overlaps compare
    whole proteins, whatever crop the model reads. InputError naming ``what`` when ``proteins``
    lacks one of ``df``'s accessions (not this run's table?)."""
    full = proteins.drop_duplicates("accession").set_index("accession")["sequence"]
    missing = sorted(set(df["accession"]) - set(full.index))
    if missing:
        raise InputError(f"{what} missing from the proteins table: {missing[:5]} (not this run's?)")
    return df.assign(sequence=df["accession"].map(full).to_numpy())


def _check_fractions(fractions: dict[str, float]) -> dict[str, float]:
    fr = {s: float(fractions.get(s, 0.0)) for s in SPLITS}
    unknown = set(fractions) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split name(s) {sorted(unknown)}; expected {SPLITS}")
    if any(v <= 0 for v in fr.values()) or abs(sum(fr.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must be positive and sum to 1, got {fr}")
    return fr


def allocate(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Split ``n`` items into per-split counts close to ``n * fraction``, at least 1 each.

    Largest-remainder rounding; the minimum of one item per split is taken from the
    largest split. Requires ``n >= len(SPLITS)``.
    """
    raw = {s: n * fractions[s] for s in SPLITS}
    counts = {s: math.floor(v) for s, v in raw.items()}
    for s in sorted(SPLITS, key=lambda s: raw[s] - counts[s], reverse=True)[: n - sum(counts.values())]:
        counts[s] += 1
    for s in SPLITS:
        if counts[s] == 0:
            donor = max(SPLITS, key=lambda t: counts[t])
            counts[donor] -= 1
            counts[s] += 1
    return counts


def _class_too_small(label: str, n: int, what: str = "proteins") -> InputError:
    return InputError(
        f"class {label!r} has {n} {what}; a train/val/test split needs at least {len(SPLITS)} "
        "(one per split). Raise labels.min_class_size so such classes are dropped, or use a "
        "coarser labels.level"
    )


def _stratified_quota(counts: pd.Series, total: int) -> dict[str, int]:
    """Per-label sizes summing to ``total``: proportional shares, largest remainders, at least one
    per label while the total allows, never more than a label has."""
    share = counts / counts.sum() * total
    quota = np.floor(share).astype(int)
    if total >= len(counts):  # every class represented when the budget allows
        quota = quota.clip(lower=1)
    quota = quota.clip(upper=counts)
    left = total - int(quota.sum())
    order = (share - np.floor(share)).sort_values(ascending=False, kind="stable").index
    while left > 0:
        moved = False
        for label in order:
            if left > 0 and quota[label] < counts[label]:
                quota[label] += 1
                left -= 1
                moved = True
        if not moved:
            break
    while left < 0:  # the at-least-one rule overshot: take from the largest quotas
        label = quota.idxmax()
        quota[label] -= 1
        left += 1
    return {str(k): int(v) for k, v in quota.items()}


def stratified_subset(
    df: pd.DataFrame, max_rows: int | None, seed: int = 0, label_col: str = "label"
) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``df``, stratified by ``label_col``, drawn with ``seed``, in order.

    Each label gets a share proportional to its size (largest remainders, at least one per label
    while the budget allows). ``max_rows=None``, or a frame no larger, returns ``df`` unchanged.
    """
    if max_rows is None or len(df) <= max_rows:
        return df
    labels = df[label_col].astype(str)
    quota = _stratified_quota(labels.value_counts().sort_index(), int(max_rows))
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label, positions in labels.groupby(labels, sort=True).indices.items():
        keep.extend(rng.choice(positions, size=quota[str(label)], replace=False).tolist())
    return df.iloc[sorted(keep)]


def stratified_split(labels_df: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """Stratified random split: each class is shuffled (seeded) and cut by ``fractions``.

    Returns a copy of ``labels_df`` (same row order) with a ``split`` column in
    {train, val, test}. Every class gets at least one protein in every split.

    Raises:
        InputError: a class has fewer than three proteins.
    """
    fr = _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    split = np.empty(len(labels_df), dtype=object)
    labels = labels_df["label"].astype(str).to_numpy()
    for lab in sorted(set(labels)):
        idx = np.flatnonzero(labels == lab)
        if len(idx) < len(SPLITS):
            raise _class_too_small(lab, len(idx))
        idx = rng.permutation(idx)
        counts = allocate(len(idx), fr)
        start = 0
        for s in SPLITS:
            split[idx[start : start + counts[s]]] = s
            start += counts[s]
    out = labels_df.copy()
    out["split"] = split
    return out


def homology_split(
    labels_df: pd.DataFrame,
    fractions: dict[str, float],
    seed: int,
    clusters: dict[str, str],
) -> pd.DataFrame:
    """Assign whole clusters to splits, stratified by each cluster's dominant class.

    Clusters are visited from the largest down (ties in seeded random order); each goes to
    the split whose share of its dominant class is furthest below target (relative
    deficit), so large clusters land in train first and every split receives clusters of
    every class that has at least three clusters.

    Returns a copy of ``labels_df`` with columns ``cluster`` (representative accession) and
    ``split``.

    Raises:
        InputError: a class ends up missing from a split (too few clusters).
    """
    fr = _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    df = labels_df.copy()
    df["cluster"] = df["accession"].map(clusters)
    if df["cluster"].isna().any():
        raise ValueError("clusters do not cover every accession")
    members: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(df["cluster"]):
        members[c].append(i)
    labels = df["label"].astype(str).to_numpy()
    totals = Counter(labels)
    target = {(lab, s): totals[lab] * fr[s] for lab in totals for s in SPLITS}
    current: Counter[tuple[str, str]] = Counter()

    names = list(members)
    order = rng.permutation(len(names))
    # Largest first; the seeded permutation breaks ties between equal sizes.
    ranked = sorted(order, key=lambda k: -len(members[names[k]]))
    assignment: dict[str, str] = {}
    for k in ranked:
        c = names[k]
        labs = Counter(labels[i] for i in members[c])
        dominant = min(labs, key=lambda lab: (-labs[lab], lab))

        # Relative deficit of the dominant class per split; ties go to the larger target.
        best = max(
            SPLITS,
            key=lambda s, d=dominant: ((target[(d, s)] - current[(d, s)]) / target[(d, s)], target[(d, s)]),
        )
        assignment[c] = best
        for lab, n in labs.items():
            current[(lab, best)] += n
    df["split"] = df["cluster"].map(assignment)

    missing = [(lab, s) for lab in sorted(totals) for s in SPLITS if current[(lab, s)] == 0]
    if missing:
        detail = ", ".join(f"{lab!r} not in {s}" for lab, s in missing[:10])
        n_clu = Counter(
            min(Counter(labels[i] for i in m).items(), key=lambda x: (-x[1], x[0]))[0]
            for m in members.values()
        )
        worst = ", ".join(f"{lab!r}: {n_clu.get(lab, 0)} clusters" for lab in sorted({m[0] for m in missing}))
        raise InputError(
            f"homology split cannot put every class in every split ({detail}); clusters per class: "
            f"{worst}. Raise labels.min_class_size, lower split.mmseqs.min_seq_id, "
            "or use split.method: stratified"
        )
    return df


# --------------------------------------------------------------------------------------------
# Leakage


def leakage_report(
    split_df: pd.DataFrame,
    method: str,
    mmseqs_cfg: dict[str, Any] | None = None,
    threads: int = 1,
    workdir: str | Path | None = None,
    compute_identity: bool = True,
    proteins: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Class counts per split, clusters shared between splits and max test-vs-train identity.

    ``proteins``: the proteins table, whose full-length sequences the identity search compares
    (``full_length_sequences``; the split's own, cropped ones when None); ``sequences`` in the report
    says which, with the number of split proteins the model reads cropped. Identity needs MMseqs2;
    where it is absent (a stratified split on a machine without it), the report says so instead of
    failing.
    """
    mmseqs_cfg = mmseqs_cfg or {}
    counts = (
        split_df.groupby(["label", "split"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(SPLITS), fill_value=0)
    )
    report: dict[str, Any] = {
        "method": method,
        "proteins": {s: int((split_df["split"] == s).sum()) for s in SPLITS},
        "class_counts": {str(lab): {s: int(row[s]) for s in SPLITS} for lab, row in counts.iterrows()},
    }
    searched = split_df
    if proteins is not None:
        searched = full_length_sequences(split_df, proteins, "split proteins")
        cropped = int((searched["sequence"].str.len() > split_df["sequence"].str.len()).sum())
        report["sequences"] = {
            "compared": "full length (data/proteins.tsv)",
            "cropped_for_the_model": cropped,
        }
    else:
        report["sequences"] = {"compared": "as in the split (the model's input)"}
    if "cluster" in split_df.columns:
        by_split = {s: set(split_df.loc[split_df["split"] == s, "cluster"]) for s in SPLITS}
        report["clusters"] = {s: len(v) for s, v in by_split.items()}
        report["shared_clusters"] = {
            "test_train": len(by_split["test"] & by_split["train"]),
            "val_train": len(by_split["val"] & by_split["train"]),
            "test_val": len(by_split["test"] & by_split["val"]),
        }
        report["mmseqs"] = dict(mmseqs_cfg)
    executable = mmseqs_cfg.get("executable", "mmseqs")
    if not compute_identity:
        report["identity"] = {"computed": False, "reason": "disabled (split.identity: false)"}
    elif shutil.which(executable) is None:
        report["identity"] = {
            "computed": False,
            "reason": f"MMseqs2 ({executable!r}) not found, so test-vs-train identity was not computed; "
            + MMSEQS_INSTALL_HINT,
        }
    else:
        cov = {"coverage": mmseqs_cfg.get("coverage", 0.8), "cov_mode": mmseqs_cfg.get("cov_mode", 0)}
        report["identity"] = {
            "computed": True,
            "tool": "mmseqs easy-search (default sensitivity), identity = fident, "
            "same coverage as clustering",
            **max_identity_vs_train(searched, executable, threads, workdir, **cov),
        }
    return report


def split_labels(
    labels_df: pd.DataFrame,
    split_cfg: dict[str, Any],
    seed: int,
    threads: int = 1,
    workdir: str | Path | None = None,
    proteins: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Split by the ``split`` config section: ``stratified`` or ``homology`` (MMseqs2 clusters of the
    full-length sequences of ``proteins``, the proteins table; of ``labels_df``'s own when None). The
    split keeps ``labels_df``'s columns, its sequences those the model reads."""
    fractions = split_cfg["fractions"]
    if split_cfg["method"] == "stratified":
        return stratified_split(labels_df, fractions, seed)
    mm = with_defaults("split", split_cfg)["mmseqs"]
    whole = labels_df if proteins is None else full_length_sequences(labels_df, proteins, "labelled proteins")
    clusters = mmseqs_clusters(
        whole, mm["min_seq_id"], mm["coverage"], mm["cov_mode"], mm["executable"], threads, workdir
    )
    log.info("MMseqs2: %d clusters for %d proteins", len(set(clusters.values())), len(labels_df))
    return homology_split(labels_df, fractions, seed, clusters)
