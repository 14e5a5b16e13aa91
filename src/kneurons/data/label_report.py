"""What the labels stage tells its user: facts about the input, and why each dropped protein left.

``input_summary`` is the ``input`` block of ``label_report.json`` (the data before any policy);
``drop_details`` says, for the proteins one policy step removed, why each one left, in the words
of ``data/dropped.tsv`` (``accession, step, policy, detail``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from kneurons.data.ec import ECNumber, level_labels
from kneurons.data.normalise import NONSTANDARD_RESIDUES

#: Columns of ``data/dropped.tsv``.
DROPPED_COLUMNS = ("accession", "step", "policy", "detail")


class LabelState(Protocol):
    """The parts of ``labels.Labelling`` the details read."""

    ec_lists: list[list[ECNumber]]
    seqs: list[str]
    labels: list[str | None]
    usable: list[list[str]]


def input_summary(ec_lists: list[list[ECNumber]], seqs: pd.Series) -> dict[str, Any]:
    """Facts about the input before any policy (what the data README states)."""
    level1_numbers: Counter[str] = Counter()
    level1_proteins: Counter[str] = Counter()
    for ecs in ec_lists:
        level1_numbers.update(e.ec_class for e in ecs)
        level1_proteins.update({e.ec_class for e in ecs})
    lengths = seqs.str.len()
    enzymes = [e for e in ec_lists if e]
    return {
        "proteins": len(ec_lists),
        "enzymes": len(enzymes),
        "non_enzymes": len(ec_lists) - len(enzymes),
        "ec_numbers": sum(len(e) for e in ec_lists),
        "multi_ec_proteins": sum(len(e) > 1 for e in ec_lists),
        "incomplete_numbers": sum(x.incomplete for e in ec_lists for x in e),
        "preliminary_numbers": sum(x.preliminary for e in ec_lists for x in e),
        "proteins_with_incomplete": sum(any(x.incomplete for x in e) for e in ec_lists),
        "proteins_with_preliminary": sum(any(x.preliminary for x in e) for e in ec_lists),
        # Each annotated EC number counted under its level-1 class (as the data README counts).
        "ec_level1_numbers": dict(sorted(level1_numbers.items())),
        # Each enzyme counted once per distinct level-1 class it carries.
        "ec_level1_proteins": dict(sorted(level1_proteins.items())),
        "nonstandard_proteins": int(seqs.str.contains(f"[{''.join(sorted(NONSTANDARD_RESIDUES))}]").sum()),
        "length": {
            "min": int(lengths.min()),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
    }


def _ecs(t: LabelState, i: int) -> str:
    return "; ".join(map(str, t.ec_lists[i]))


def _no_usable_number(t: LabelState, i: int, cfg: dict[str, Any]) -> str:
    return f"no EC number defines the level-{cfg['level']} label under the policies: {_ecs(t, i)}"


def _multi_ec(t: LabelState, i: int, cfg: dict[str, Any]) -> str:
    if cfg["multi_ec"] == "agree":
        labels = sorted(level_labels(t.ec_lists[i], cfg["level"]))
        return f"EC numbers give different level-{cfg['level']} labels {labels}: {_ecs(t, i)}"
    return f"{len(t.ec_lists[i])} EC numbers: {_ecs(t, i)}"


def _nonstandard(t: LabelState, i: int, cfg: dict[str, Any]) -> str:
    found = "".join(sorted(set(t.seqs[i]) & NONSTANDARD_RESIDUES))
    return f"non-standard residue(s) {found}"


def _long(t: LabelState, i: int, cfg: dict[str, Any]) -> str:
    return f"length {len(t.seqs[i])} > max_length {cfg['max_length']}"


def _min_class_size(t: LabelState, i: int, cfg: dict[str, Any]) -> str:
    return f"class {t.labels[i]} has fewer than {cfg['min_class_size']} proteins"


Detail = Callable[[LabelState, int, dict[str, Any]], str]
_DETAILS: dict[str, Detail] = {
    "non_enzymes": lambda t, i, cfg: "no EC number",
    "multi_ec": _multi_ec,
    "incomplete": _no_usable_number,
    "preliminary": _no_usable_number,
    "nonstandard": _nonstandard,
    "long_sequences": _long,
    "min_class_size": _min_class_size,
}


def _duplicate_details(
    t: LabelState, removed: Sequence[int], before: np.ndarray, accessions: Sequence[str]
) -> list[str]:
    # The copies are the proteins with the same sequence that were still in before the step.
    copies: dict[str, list[int]] = {}
    for j in np.flatnonzero(before):
        copies.setdefault(t.seqs[j], []).append(int(j))
    out = []
    for i in removed:
        group = copies[t.seqs[i]]
        labels = sorted({str(t.labels[j]) for j in group})
        others = ", ".join(accessions[j] for j in group if j != i)
        why = f"labels disagree: {labels}" if len(labels) > 1 else f"label {labels[0]}"
        out.append(f"same sequence as {others} ({why})")
    return out


def drop_details(
    step: dict[str, Any],
    t: LabelState,
    cfg: dict[str, Any],
    before: np.ndarray,
    after: np.ndarray,
    accessions: Sequence[str],
) -> pd.DataFrame:
    """The ``dropped.tsv`` rows of one policy step: the proteins in ``before`` but not ``after``."""
    removed = [int(i) for i in np.flatnonzero(before & ~after)]
    if step["step"] == "duplicates":
        details = _duplicate_details(t, removed, before, accessions)
    else:
        details = [_DETAILS[step["step"]](t, i, cfg) for i in removed]
    return pd.DataFrame(
        {
            "accession": [accessions[i] for i in removed],
            "step": step["step"],
            "policy": str(step["policy"]),
            "detail": details,
        },
        columns=list(DROPPED_COLUMNS),
    )
