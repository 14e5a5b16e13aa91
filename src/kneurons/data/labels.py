"""EC label extraction: from the proteins table to class labels, with every policy counted.

The label policies (``kneurons.data.policies``) run in order over the proteins; here they are
applied to a proteins table, and their counts become the label report, the dropped-protein table
and the class table. ``ec`` in the output keeps the protein's annotated EC numbers; ``label`` is
the class. An external test set runs ``EXTERNAL_POLICIES`` (duplicates judged before the crop).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kneurons.data import OPTIONAL_COLUMNS
from kneurons.data.ec import EC_CLASS_NAMES, parse_ec_list, read_enzclass
from kneurons.data.label_report import DROPPED_COLUMNS, drop_details, input_summary
from kneurons.data.normalise import normalise_proteins
from kneurons.data.policies import NON_ENZYME, POLICIES, Labelling, Policy, Step
from kneurons.errors import LabelPolicyError
from kneurons.schema import with_defaults

log = logging.getLogger(__name__)


def labels_config(labels_cfg: dict[str, Any] | None) -> dict[str, Any]:
    """``labels_cfg`` with the schema defaults filled in (``validate_config`` checks a workflow's)."""
    return with_defaults("labels", labels_cfg)


def class_names(labels: list[str], enzclass: str | None = None) -> dict[str, str]:
    """Names of labels: level-1 names are built in, deeper ones come from enzclass.txt when
    given (ExPASy's hierarchy stops at level 3, so level-4 labels have no name)."""
    table = dict(EC_CLASS_NAMES)
    if enzclass:
        table.update(read_enzclass(enzclass))
    table[NON_ENZYME] = "Non-enzyme"
    return {lab: table.get(lab, "") for lab in labels}


def _classes(final: Counter[str], enzclass: str | None) -> pd.DataFrame:
    ordered = sorted(final)
    names = class_names(ordered, enzclass)
    return pd.DataFrame(
        {
            "label_index": range(len(ordered)),
            "label": ordered,
            "name": [names[lab] for lab in ordered],
            "n": [final[lab] for lab in ordered],
        }
    )


@dataclass
class LabelResult:
    """What the labels stage writes: labelled proteins, class table, label report, dropped proteins."""

    labels: pd.DataFrame
    classes: pd.DataFrame
    report: dict[str, Any]
    dropped: pd.DataFrame


def _run_policies(
    df: pd.DataFrame, cfg: dict[str, Any], policies: Sequence[Policy] = POLICIES
) -> tuple[Labelling, list[Step], pd.DataFrame]:
    """Every policy in order: the labelling, the report steps, and the dropped proteins."""
    table = Labelling.start([parse_ec_list(s) for s in df["ec"]], df["sequence"].tolist())
    steps: list[Step] = []
    dropped = [pd.DataFrame(columns=list(DROPPED_COLUMNS))]
    accessions = df["accession"].tolist()
    for policy in policies:
        before = table.keep.copy()
        table, step = policy(table, cfg)
        if step is not None:
            steps.append(step)
            dropped.append(drop_details(step, table, cfg, before, table.keep, accessions))
    return table, steps, pd.concat(dropped, ignore_index=True)


def label_proteins(
    proteins: pd.DataFrame,
    labels_cfg: dict[str, Any] | None,
    enzclass: str | None = None,
    source: str | None = None,
    origin: str | None = None,
    min_classes: int = 2,
    policies: Sequence[Policy] = POLICIES,
) -> LabelResult:
    """Turn a proteins table into labelled proteins, the class table, the label report and the
    table of dropped proteins (``accession, step, policy, detail``).

    Args:
        proteins: the normalised proteins table (``accession, ec, sequence`` + optional columns).
        labels_cfg: the ``labels`` config section (missing keys take the schema defaults).
        enzclass: path of ExPASy's enzclass.txt for class names (level-1 names are built in).
        source: the file ``proteins`` was read from, named in errors about its rows.
        origin: the user's input file the proteins came from, named when the policies leave
            too little (defaults to ``source``).
        min_classes: fewest classes the result may have (a classifier needs two; an external
            test set may hold one).
        policies: the steps in their order (``POLICIES``; ``EXTERNAL_POLICIES`` for an external set).

    Returns:
        ``labels``: ``accession, sequence, ec, label`` + the optional columns present; ``classes``:
        ``label_index, label, name, n`` (``label_index`` in sorted label order); ``report``.

    Raises:
        InputError: invalid EC strings or sequences.
        LabelPolicyError: no protein or fewer than two classes left after the policies (the
            message carries each step's count; the error holds the dropped proteins).
    """
    cfg = labels_config(labels_cfg)
    df = normalise_proteins(proteins, source)
    report: dict[str, Any] = {
        "level": cfg["level"],
        "policies": {k: v for k, v in cfg.items() if k != "level"},
        "input": input_summary([parse_ec_list(s) for s in df["ec"]], df["sequence"]),
    }
    table, steps, dropped = _run_policies(df, cfg, policies)
    report["steps"] = steps
    idx = np.flatnonzero(table.keep)
    report["dropped"] = {s["step"]: s["dropped"] for s in steps}
    summary = "; ".join(f"{s['step']}: -{s['dropped']}" for s in steps if s["dropped"])
    where_ = origin or source or "proteins"
    if len(idx) == 0:
        raise LabelPolicyError(
            f"{where_}: no protein left after the label policies ({summary}); "
            "check the labels section of the config",
            dropped,
        )
    out_cols = ["accession", "sequence", "ec", "label", *(c for c in OPTIONAL_COLUMNS if c in df.columns)]
    out = df.iloc[idx].copy()
    out["sequence"] = [table.seqs[i] for i in idx]
    out["label"] = [table.labels[i] for i in idx]
    out = out[out_cols].reset_index(drop=True)

    final = Counter(out["label"])
    if len(final) < min_classes:
        raise LabelPolicyError(
            f"{where_}: only {len(final)} class left after the label policies "
            f"({dict(final)}; {summary}); a classifier needs at least two",
            dropped,
        )
    report["output"] = {
        "proteins": len(out),
        "classes": len(final),
        "class_counts": {lab: final[lab] for lab in sorted(final)},
    }
    return LabelResult(out, _classes(final, enzclass), report, dropped)


def extract_labels(
    proteins: pd.DataFrame,
    labels_cfg: dict[str, Any] | None,
    enzclass: str | None = None,
    source: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """``label_proteins`` without the dropped table: ``(labels_df, classes_df, report)``."""
    result = label_proteins(proteins, labels_cfg, enzclass, source)
    return result.labels, result.classes, result.report
