"""External test sets: proteins from another source, never used in training (torch-free).

An external set is a file the user names in ``evaluate.external`` (``name: path``): a UniProt TSV
export, a CSV with the same columns (``Entry``, ``EC number``, ``Sequence``) or a FASTA file with EC
numbers in the headers, read by the data stage's own readers. Its proteins get their labels through
the run's label policies (``labels`` section) except the minimum class size, which is a property of
a training set; proteins of classes the model does not have are dropped and counted.

Overlap with training is reported, never silently ignored:

* ``identical_to_train``: the sequence equals a training protein's (always checked);
* ``identity_to_train``: with MMseqs2 on PATH, each protein's best identity to any training
  protein (``mmseqs easy-search``, the split's coverage criterion; empty when no hit qualifies),
  and ``evaluate.max_identity`` drops the proteins above it (identical ones included).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kneurons.data.labels import LabelPolicyError, label_proteins
from kneurons.data.local import read_proteins
from kneurons.errors import ConfigError, InputError

log = logging.getLogger(__name__)

#: Columns of ``external/<name>/proteins.tsv`` besides the labelled proteins' own.
OVERLAP_COLUMNS: tuple[str, ...] = ("identical_to_train", "identity_to_train", "nearest_train")


def read_external(name: str, path: str | Path) -> pd.DataFrame:
    """The proteins of external set ``name``; one InputError naming the set and file when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"evaluate.external.{name}: {path} does not exist")
    try:
        return read_proteins(path)
    except InputError as exc:
        raise InputError(f"external set {name!r}: {exc}") from None


def external_set_problems(sets: dict[str, str], data_source: str) -> list[str]:
    """What is wrong with ``evaluate.external`` (config validation, so that a malformed file stops
    the run before any model work): set names unusable in paths, files that do not read, and
    ``synthetic`` without synthetic training data (whose planted motifs it reuses)."""
    problems: list[str] = []
    for name, path in sets.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            problems.append(
                f"evaluate.external.{name}: a set name may hold letters, digits, '_', '.' and '-'"
            )
        elif path == "synthetic":
            if data_source != "synthetic":
                problems.append(
                    f"evaluate.external.{name}: 'synthetic' reuses the training data's planted motifs, "
                    f"so it needs data.source synthetic (it is {data_source!r})"
                )
        else:
            try:
                read_external(name, path)
            except (ConfigError, InputError) as exc:
                problems.append(f"evaluate.external.{name}: {exc}")
    return problems


def label_external(
    name: str,
    proteins: pd.DataFrame,
    labels_cfg: dict[str, Any],
    model_labels: Sequence[str],
    source: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Labels of an external set's proteins by the run's policies, kept to the model's classes.

    Returns the labelled proteins (``accession, sequence, ec, label, ...``) and a report (counts per
    policy step, proteins of unknown classes, class counts).
    """
    cfg = {**labels_cfg, "min_class_size": 1}
    try:
        result = label_proteins(proteins, cfg, source=source, min_classes=1)
    except LabelPolicyError as exc:
        raise InputError(f"external set {name!r}: {exc}") from None
    labelled, steps = result.labels, result.report["steps"]
    known = labelled["label"].isin(set(model_labels))
    unknown = labelled.loc[~known, "label"].value_counts().sort_index()
    kept = labelled[known].reset_index(drop=True)
    if kept.empty:
        raise InputError(
            f"external set {name!r} ({source}): none of its {len(labelled)} labelled proteins is of a "
            f"class the model knows ({', '.join(model_labels)}); found {dict(unknown)}"
        )
    report = {
        "name": name,
        "file": source,
        "read": len(proteins),
        "labelled": len(labelled),
        "policy_steps": steps,
        "unknown_class": {str(k): int(v) for k, v in unknown.items()},
        "kept": len(kept),
        "class_counts": {str(k): int(v) for k, v in kept["label"].value_counts().sort_index().items()},
    }
    return kept, report


def overlap_with_train(
    proteins: pd.DataFrame,
    train: pd.DataFrame,
    max_identity: float | None = None,
    mmseqs: str = "mmseqs",
    threads: int = 1,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Mark (and with ``max_identity`` drop) the external proteins that training already saw.

    Adds ``OVERLAP_COLUMNS``; the report counts identical proteins, the identity distribution and
    the dropped proteins. Without MMseqs2 only identical sequences are found, and ``max_identity``
    is a ConfigError (it cannot be honoured).
    """
    out = proteins.copy()
    train_seqs = dict(zip(train["sequence"], train["accession"], strict=False))
    out["identical_to_train"] = out["sequence"].isin(train_seqs)
    out["identity_to_train"] = np.nan
    out["nearest_train"] = out["sequence"].map(train_seqs).fillna("")
    have_mmseqs = shutil.which(mmseqs) is not None
    if have_mmseqs:
        from kneurons.data.mmseqs import best_hits

        hits = best_hits(out, train, mmseqs, threads).set_index("query")
        out["identity_to_train"] = out["accession"].map(hits["fident"]).astype(float)
        nearest = out["accession"].map(hits["target"])
        out["nearest_train"] = out["nearest_train"].where(out["identical_to_train"], nearest.fillna(""))
        out.loc[out["identical_to_train"], "identity_to_train"] = 1.0
    elif max_identity is not None:
        raise ConfigError(
            "evaluate.max_identity needs MMseqs2 on PATH (or --sdm conda) to measure identity to training"
        )
    report: dict[str, Any] = {
        "identical_to_train": int(out["identical_to_train"].sum()),
        "mmseqs": have_mmseqs,
        "max_identity": max_identity,
    }
    if have_mmseqs:
        ident = out["identity_to_train"]
        report["with_hit"] = int(ident.notna().sum())
        report["at_least"] = {str(t): int((ident >= t).sum()) for t in (0.3, 0.5, 0.9)}
    dropped = 0
    if max_identity is not None:
        too_close = out["identical_to_train"] | (out["identity_to_train"] > max_identity)
        dropped = int(too_close.sum())
        out = out[~too_close].reset_index(drop=True)
        if out.empty:
            raise InputError(
                f"every external protein is more than {max_identity} identical to a training protein"
            )
    report["dropped_above_max_identity"] = dropped
    if report["identical_to_train"]:
        log.warning(
            "%d external proteins are identical to training proteins%s",
            report["identical_to_train"],
            " (dropped)" if max_identity is not None else " (kept; set evaluate.max_identity to drop them)",
        )
    return out, report
