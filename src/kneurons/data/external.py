"""External test sets: proteins from another source, never used in training (torch-free).

An external set is a file the user names in ``evaluate.external`` (``name: path``): a UniProt TSV
export, a CSV with the same columns (``Entry``, ``EC number``, ``Sequence``) or a FASTA file with EC
numbers in the headers, read by the data stage's own readers. Its proteins get their labels through
the run's label policies (``labels`` section) except the minimum class size, which is a property of
a training set, with duplicates judged on full-length sequences (``EXTERNAL_POLICIES``); proteins
of classes the model does not have are dropped. Every dropped protein is listed with its reason
(``DROPPED_COLUMNS``, as ``data/dropped.tsv``).

Overlap with training is reported, never silently ignored, on full-length sequences (the set's as
read, the training proteins' from ``data/proteins.tsv``; only the model sees them cropped to
``labels.max_length``):

* ``identical_to_train``: the sequence equals a training protein's (always checked);
* ``label_conflict``: identical to a training protein of another label;
* ``identical_input_to_train``: what the model reads (the sequence cropped to ``labels.max_length``)
  equals a training protein's model input, although the full sequences may differ (a protein whose
  first 256 residues are a training protein's); ``input_label_conflict``: so, with another label,
  an input the model was trained to classify otherwise;
* ``identity_to_train``: with MMseqs2 (``split.mmseqs.executable``) on PATH, each protein's best
  identity to any training protein (``mmseqs easy-search`` with the split's ``coverage`` and
  ``cov_mode``; empty when no hit qualifies), and ``evaluate.max_identity`` drops the proteins
  above it (identical ones included).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kneurons.data.label_report import DROPPED_COLUMNS
from kneurons.data.labels import LabelPolicyError, label_proteins
from kneurons.data.local import read_proteins
from kneurons.data.policies import EXTERNAL_POLICIES
from kneurons.errors import ConfigError, InputError
from kneurons.schema import with_defaults

log = logging.getLogger(__name__)

#: Columns of ``external/<name>/proteins.tsv`` besides the labelled proteins' own.
OVERLAP_COLUMNS: tuple[str, ...] = (
    "identical_to_train",
    "label_conflict",
    "identical_input_to_train",
    "input_label_conflict",
    "identity_to_train",
    "nearest_train",
)


def missing_file_text(path: str | Path) -> str:
    """Why ``path`` cannot be read, for a message that follows the key naming it: it does not exist (a
    relative path with the absolute one it was looked for at: relative to the working directory) or
    is not a file."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a directory, not a file"
    if path.is_absolute():
        return f"{path} does not exist"
    return (
        f"{path} does not exist (a relative path is relative to the working directory; "
        f"looked for {path.resolve()})"
    )


def read_external(name: str, path: str | Path) -> pd.DataFrame:
    """The proteins of external set ``name``; one error naming the set's key and file when unreadable
    (ConfigError for a missing file, InputError for one that does not read)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"evaluate.external.{name}: {missing_file_text(path)}")
    try:
        return read_proteins(path)
    except InputError as exc:
        raise InputError(f"evaluate.external.{name}: {exc}") from None


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
            except (ConfigError, InputError) as exc:  # each names the set's key once
                problems.append(str(exc))
    return problems


def _dropped(accessions: Sequence[str], step: str, policy: Any, details: Sequence[str]) -> pd.DataFrame:
    """Rows of the dropped-proteins table (``DROPPED_COLUMNS``) for proteins one step removed."""
    return pd.DataFrame(
        {"accession": list(accessions), "step": step, "policy": str(policy), "detail": list(details)},
        columns=list(DROPPED_COLUMNS),
    )


def label_external(
    name: str,
    proteins: pd.DataFrame,
    labels_cfg: dict[str, Any],
    model_labels: Sequence[str],
    source: str,
) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """Labels of an external set's proteins by the run's policies (``EXTERNAL_POLICIES``: duplicates on
    full-length sequences), kept to the model's classes.

    Returns the labelled proteins (``accession, sequence, ec, label, ...``; sequences cropped to
    ``max_length`` for the model), a report (counts per policy step, proteins of unknown classes,
    class counts) and every dropped protein (``DROPPED_COLUMNS``: the policies' steps, then
    ``model_classes`` for a class the model does not have).
    """
    cfg = {**labels_cfg, "min_class_size": 1}
    try:
        result = label_proteins(proteins, cfg, source=source, min_classes=1, policies=EXTERNAL_POLICIES)
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
    lacking = labelled[~known]
    model_classes = ", ".join(model_labels)
    dropped = pd.concat(
        [
            result.dropped,
            _dropped(
                lacking["accession"],
                "model_classes",
                "drop",
                [f"class {lab} is not one of the model's ({model_classes})" for lab in lacking["label"]],
            ),
        ],
        ignore_index=True,
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
    return kept, report, dropped


@dataclass
class _Twins:
    """Per external protein: whether a training protein has the same sequence (``same``), whether
    one of those has another label (``conflict``), and the first of them (``nearest``, or "")."""

    same: pd.Series
    conflict: pd.Series
    nearest: pd.Series


def _same_sequence(
    accessions: pd.Series, train_seqs: pd.Series, train_labels: pd.Series, seqs: pd.Series, labels: pd.Series
) -> _Twins:
    """The training proteins (``accessions``, ``train_seqs``, ``train_labels``) whose sequence equals
    each of ``seqs`` (external proteins of ``labels``)."""
    same: dict[str, list[tuple[str, str]]] = {}
    for acc, seq, lab in zip(accessions, train_seqs, train_labels, strict=True):
        same.setdefault(seq, []).append((acc, lab))
    matches = [same.get(seq, []) for seq in seqs]
    index = seqs.index
    return _Twins(
        pd.Series([bool(m) for m in matches], index=index),
        pd.Series(
            [any(lab != str(own) for _, lab in m) for m, own in zip(matches, labels, strict=True)],
            index=index,
        ),
        pd.Series([m[0][0] if m else "" for m in matches], index=index),
    )


def overlap_with_train(
    proteins: pd.DataFrame,
    train: pd.DataFrame,
    max_identity: float | None = None,
    mmseqs: Mapping[str, Any] | None = None,
    threads: int = 1,
    full_length: Mapping[str, str] | None = None,
    train_input: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """Mark (and with ``max_identity`` drop) the external proteins that training already saw.

    ``train``: the training proteins (``accession``, full-length ``sequence``, ``label``);
    ``full_length``: the external proteins' full-length sequences by accession (default: their
    ``sequence``), compared in place of the cropped ones the model reads; ``train_input``: the
    training proteins' model inputs by accession (``data/split.tsv``'s cropped sequences; default:
    ``train``'s sequences), compared with the external proteins' ``sequence`` (their model input);
    ``mmseqs``: the split's MMseqs2 settings (``executable``, ``coverage``, ``cov_mode``; schema
    defaults when None).

    Adds ``OVERLAP_COLUMNS``; returns the proteins kept, a report (identical proteins and inputs,
    label conflicts, the identity distribution, the proteins dropped) and the dropped proteins
    (``DROPPED_COLUMNS``, step ``max_identity``: above it, identical, or of identical model input).
    Without MMseqs2 only identical sequences are found, and ``max_identity`` is a ConfigError (it
    cannot be honoured).
    """
    settings = with_defaults("split", {"mmseqs": mmseqs or {}})["mmseqs"]
    out = proteins.copy()
    query = out["accession"].map(full_length) if full_length is not None else out["sequence"]
    if query.isna().any():
        missing = out.loc[query.isna(), "accession"].tolist()
        raise ValueError(f"no full-length sequence for external protein(s) {missing[:5]}")
    labels = train["label"].astype(str)
    inputs = train["accession"].map(train_input) if train_input is not None else train["sequence"]
    if inputs.isna().any():
        missing = train.loc[inputs.isna(), "accession"].tolist()
        raise ValueError(f"no model input for training protein(s) {missing[:5]}")
    twin = _same_sequence(train["accession"], train["sequence"], labels, query, out["label"])
    out["identical_to_train"], out["label_conflict"] = twin.same, twin.conflict
    input_twin = _same_sequence(train["accession"], inputs, labels, out["sequence"], out["label"])
    out["identical_input_to_train"], out["input_label_conflict"] = input_twin.same, input_twin.conflict
    out["identity_to_train"] = np.nan
    out["nearest_train"] = twin.nearest.where(twin.same, input_twin.nearest)
    executable = settings["executable"]
    have_mmseqs = shutil.which(executable) is not None
    if have_mmseqs:
        from kneurons.data.mmseqs import best_hits

        hits = best_hits(
            pd.DataFrame({"accession": out["accession"], "sequence": query.to_numpy()}),
            train,
            executable,
            threads,
            coverage=settings["coverage"],
            cov_mode=settings["cov_mode"],
        ).set_index("query")
        out["identity_to_train"] = out["accession"].map(hits["fident"]).astype(float)
        nearest = out["accession"].map(hits["target"])
        out["nearest_train"] = out["nearest_train"].where(out["identical_to_train"], nearest.fillna(""))
        out.loc[out["identical_to_train"], "identity_to_train"] = 1.0
        # the search's nearest protein, else (no hit) the one whose model input is the same
        out["nearest_train"] = out["nearest_train"].mask(out["nearest_train"].eq(""), input_twin.nearest)
    elif max_identity is not None:
        raise ConfigError(
            f"evaluate.max_identity needs MMseqs2 ({executable!r}, split.mmseqs.executable) on PATH "
            "(or --sdm conda) to measure identity to training"
        )
    report: dict[str, Any] = {
        "identical_to_train": int(out["identical_to_train"].sum()),
        "label_conflict": int(out["label_conflict"].sum()),
        # the model reads them as a training protein, full sequences identical or not
        "identical_input_to_train": int(out["identical_input_to_train"].sum()),
        "input_label_conflict": int(out["input_label_conflict"].sum()),
        "mmseqs": have_mmseqs,
        "coverage": settings["coverage"],
        "cov_mode": settings["cov_mode"],
        "max_identity": max_identity,
    }
    if have_mmseqs:
        ident = out["identity_to_train"]
        report["with_hit"] = int(ident.notna().sum())
        report["at_least"] = {str(t): int((ident >= t).sum()) for t in (0.3, 0.5, 0.9)}
    dropped = _dropped([], "max_identity", max_identity, [])
    if max_identity is not None:
        too_close = (
            out["identical_to_train"]
            | out["identical_input_to_train"]
            | (out["identity_to_train"] > max_identity)
        )
        gone = out[too_close].assign(twin=input_twin.nearest[too_close])
        dropped = _dropped(
            gone["accession"],
            "max_identity",
            max_identity,
            [
                f"identical to training protein {r.nearest_train}"
                if r.identical_to_train
                else f"model input identical to training protein {r.twin}'s"
                if r.identical_input_to_train
                else f"identity {r.identity_to_train:.3f} to training protein {r.nearest_train}"
                for r in gone.itertuples()
            ],
        )
        out = out[~too_close].reset_index(drop=True)
        if out.empty:
            raise InputError(
                f"every external protein is more than {max_identity} identical to a training protein"
            )
    report["dropped_above_max_identity"] = len(dropped)
    if report["identical_to_train"] or report["identical_input_to_train"]:
        log.warning(
            "%d external proteins are identical to training proteins (%d of them with another label), "
            "%d give the model a training protein's input (%d with another label)%s",
            report["identical_to_train"],
            report["label_conflict"],
            report["identical_input_to_train"],
            report["input_label_conflict"],
            " (dropped)" if max_identity is not None else " (kept; set evaluate.max_identity to drop them)",
        )
    return out, report, dropped
