"""EC label extraction: from the proteins table to class labels, with every policy counted.

The steps run in this order; a protein leaves at the first step that drops it, and the
label report counts it there:

1. ``non_enzymes``: proteins without an EC number are dropped, or labelled ``non-enzyme``.
2. ``multi_ec`` = ``drop``: proteins annotated with several EC numbers are dropped.
3. ``incomplete`` / ``preliminary``: each EC number must define the label at ``level``
   (``3.4.-.-`` defines level 1 and 2; ``4.2.2.n1`` defines level 1 to 3). ``drop`` discards
   every incomplete (preliminary) number; ``keep`` keeps it where it defines the label.
   A protein left without a usable number is dropped.
4. ``multi_ec`` = ``first`` / ``agree``: the first usable number gives the label, or the
   protein is kept only when all its usable numbers give the same label.
5. ``nonstandard``: sequences with U, O, B, Z or X are dropped, mapped (U/O/B/Z -> X) or kept.
6. ``long_sequences``: sequences longer than ``max_length`` are cropped (first residues) or dropped.
7. ``duplicates``: identical sequences; ``drop`` keeps one copy when the copies agree on the
   label and drops all copies when they disagree; ``keep_first`` keeps the first copy.
8. ``min_class_size``: classes with fewer proteins are dropped.

``ec`` in the output keeps the protein's annotated EC numbers; ``label`` is the class.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from kneurons.config import validate_config
from kneurons.data import OPTIONAL_COLUMNS
from kneurons.data.ec import EC_CLASS_NAMES, ECNumber, parse_ec_list, read_enzclass
from kneurons.data.normalise import NONSTANDARD_RESIDUES, normalise_proteins
from kneurons.errors import InputError

log = logging.getLogger(__name__)

NON_ENZYME = "non-enzyme"


def labels_config(labels_cfg: dict[str, Any] | None) -> dict[str, Any]:
    """``labels_cfg`` with the schema defaults filled in (and validated)."""
    return validate_config({"labels": dict(labels_cfg or {})})["labels"]


def class_names(labels: list[str], enzclass: str | None = None) -> dict[str, str]:
    """Names of labels: level-1 names are built in, deeper ones come from enzclass.txt when
    given (ExPASy's hierarchy stops at level 3, so level-4 labels have no name)."""
    table = dict(EC_CLASS_NAMES)
    if enzclass:
        table.update(read_enzclass(enzclass))
    table[NON_ENZYME] = "Non-enzyme"
    return {lab: table.get(lab, "") for lab in labels}


def _input_summary(ec_lists: list[list[ECNumber]], seqs: pd.Series) -> dict[str, Any]:
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


def extract_labels(
    proteins: pd.DataFrame,
    labels_cfg: dict[str, Any] | None,
    enzclass: str | None = None,
    source: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Turn a proteins table into labelled proteins, the class table and the label report.

    Args:
        proteins: the normalised proteins table (``accession, ec, sequence`` + optional columns).
        labels_cfg: the ``labels`` config section (missing keys take the schema defaults).
        enzclass: path of ExPASy's enzclass.txt for class names (level-1 names are built in).
        source: file name used in error messages.

    Returns:
        ``(labels_df, classes_df, report)``: ``labels_df`` has ``accession, sequence, ec, label``
        + the optional columns present; ``classes_df`` has ``label_index, label, name, n`` with
        ``label_index`` following the sorted label order; ``report`` counts every policy.

    Raises:
        InputError: invalid EC strings or sequences, or no protein / fewer than two classes
        left after the policies (the message carries the step counts).
    """
    cfg = labels_config(labels_cfg)
    level = cfg["level"]
    df = normalise_proteins(proteins, source)
    ec_lists = [parse_ec_list(s) for s in df["ec"]]
    report: dict[str, Any] = {
        "level": level,
        "policies": {k: v for k, v in cfg.items() if k != "level"},
        "input": _input_summary(ec_lists, df["sequence"]),
        "steps": [],
    }
    steps: list[dict[str, Any]] = report["steps"]

    def record(step: str, policy: Any, before: int, after: int, **extra: Any) -> None:
        steps.append({"step": step, "policy": policy, "dropped": before - after, "remaining": after, **extra})
        log.info("labels: %s (%s): %d -> %d proteins %s", step, policy, before, after, extra or "")

    keep = np.ones(len(df), dtype=bool)
    labels: list[str | None] = [None] * len(df)

    # 1. non-enzymes
    n_before = int(keep.sum())
    n_non = 0
    for i, ecs in enumerate(ec_lists):
        if not ecs:
            n_non += 1
            if cfg["non_enzymes"] == "class":
                labels[i] = NON_ENZYME
            else:
                keep[i] = False
    record("non_enzymes", cfg["non_enzymes"], n_before, int(keep.sum()), affected=n_non)

    # 2. multi-EC drop (judged on the annotation: a second activity is a second activity,
    #    whatever its number's completeness)
    n_before = int(keep.sum())
    n_multi = sum(1 for i, ecs in enumerate(ec_lists) if keep[i] and len(ecs) > 1)
    if cfg["multi_ec"] == "drop":
        for i, ecs in enumerate(ec_lists):
            if keep[i] and len(ecs) > 1:
                keep[i] = False
        record("multi_ec", "drop", n_before, int(keep.sum()), affected=n_multi)

    # 3. incomplete / preliminary numbers
    n_before = int(keep.sum())
    usable: list[list[str]] = [[] for _ in ec_lists]
    counts: Counter[str] = Counter()
    dropped_by: Counter[str] = Counter()
    for i, ecs in enumerate(ec_lists):
        if not keep[i] or not ecs:
            continue
        bad_kinds = []
        for e in ecs:
            lab = e.prefix(level)
            if e.incomplete:
                kind, ok = "incomplete", cfg["incomplete"] == "keep" and lab is not None
            elif e.preliminary:
                kind, ok = "preliminary", cfg["preliminary"] == "keep" and lab is not None
            else:
                kind, ok = "complete", True
            counts[kind] += 1
            if ok:
                usable[i].append(lab)  # type: ignore[arg-type]
            else:
                counts[f"{kind}_discarded"] += 1
                bad_kinds.append(kind)
        if not usable[i]:
            keep[i] = False
            dropped_by["incomplete" if "incomplete" in bad_kinds else "preliminary"] += 1
    n_mid = n_before - dropped_by["incomplete"]
    for kind, before, after in (("incomplete", n_before, n_mid), ("preliminary", n_mid, int(keep.sum()))):
        record(
            kind,
            cfg[kind],
            before,
            after,
            numbers=counts[kind],
            numbers_discarded=counts[f"{kind}_discarded"],
        )

    # 4. multi-EC first / agree
    n_before = int(keep.sum())
    resolved = 0
    for i in range(len(df)):
        if not keep[i] or labels[i] == NON_ENZYME:
            continue
        labs = usable[i]
        if len(ec_lists[i]) > 1 and cfg["multi_ec"] == "agree" and len(set(labs)) > 1:
            keep[i] = False
            continue
        if len(ec_lists[i]) > 1:
            resolved += 1
        labels[i] = labs[0]
    if cfg["multi_ec"] != "drop":
        record("multi_ec", cfg["multi_ec"], n_before, int(keep.sum()), affected=n_multi, kept=resolved)

    seqs = df["sequence"].tolist()

    # 5. non-standard residues
    n_before = int(keep.sum())
    nonstd_chars = set(NONSTANDARD_RESIDUES)
    n_nonstd = 0
    to_x = str.maketrans({c: "X" for c in "UOBZ"})
    for i, s in enumerate(seqs):
        if keep[i] and nonstd_chars.intersection(s):
            n_nonstd += 1
            if cfg["nonstandard"] == "drop":
                keep[i] = False
            elif cfg["nonstandard"] == "to_x":
                seqs[i] = s.translate(to_x)
    record("nonstandard", cfg["nonstandard"], n_before, int(keep.sum()), affected=n_nonstd)

    # 6. long sequences
    n_before = int(keep.sum())
    max_len = cfg["max_length"]
    n_long = 0
    for i, s in enumerate(seqs):
        if keep[i] and len(s) > max_len:
            n_long += 1
            if cfg["long_sequences"] == "drop":
                keep[i] = False
            else:
                seqs[i] = s[:max_len]
    record(
        "long_sequences",
        cfg["long_sequences"],
        n_before,
        int(keep.sum()),
        affected=n_long,
        max_length=max_len,
        cropped=n_long if cfg["long_sequences"] == "crop" else 0,
    )

    # 7. duplicates (identical final sequences)
    n_before = int(keep.sum())
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(seqs):
        if keep[i]:
            groups.setdefault(s, []).append(i)
    dup_groups = [g for g in groups.values() if len(g) > 1]
    conflicting = 0
    if cfg["duplicates"] != "keep":
        for g in dup_groups:
            agree = len({labels[i] for i in g}) == 1
            if cfg["duplicates"] == "drop" and not agree:
                conflicting += 1
                for i in g:
                    keep[i] = False
            else:
                for i in g[1:]:
                    keep[i] = False
    record(
        "duplicates",
        cfg["duplicates"],
        n_before,
        int(keep.sum()),
        groups=len(dup_groups),
        proteins_in_groups=sum(len(g) for g in dup_groups),
        conflicting_groups=conflicting,
    )

    # 8. minimum class size
    n_before = int(keep.sum())
    sizes = Counter(labels[i] for i in range(len(df)) if keep[i])
    small = {lab: n for lab, n in sizes.items() if n < cfg["min_class_size"]}
    for i in range(len(df)):
        if keep[i] and labels[i] in small:
            keep[i] = False
    record(
        "min_class_size",
        cfg["min_class_size"],
        n_before,
        int(keep.sum()),
        classes_dropped=dict(sorted(small.items())),
    )

    idx = np.flatnonzero(keep)
    report["dropped"] = {s["step"]: s["dropped"] for s in steps}
    summary = "; ".join(f"{s['step']}: -{s['dropped']}" for s in steps)
    if len(idx) == 0:
        raise InputError(
            f"{source or 'proteins'}: no protein left after the label policies ({summary}); "
            "check the labels section of the config"
        )
    out_cols = ["accession", "sequence", "ec", "label", *(c for c in OPTIONAL_COLUMNS if c in df.columns)]
    out = df.iloc[idx].copy()
    out["sequence"] = [seqs[i] for i in idx]
    out["label"] = [labels[i] for i in idx]
    out = out[out_cols].reset_index(drop=True)

    final = Counter(out["label"])
    if len(final) < 2:
        raise InputError(
            f"{source or 'proteins'}: only {len(final)} class left after the label policies "
            f"({dict(final)}; {summary}); a classifier needs at least two"
        )
    ordered = sorted(final)
    names = class_names(ordered, enzclass)
    classes = pd.DataFrame(
        {
            "label_index": range(len(ordered)),
            "label": ordered,
            "name": [names[lab] for lab in ordered],
            "n": [final[lab] for lab in ordered],
        }
    )
    report["output"] = {
        "proteins": len(out),
        "classes": len(ordered),
        "class_counts": {lab: final[lab] for lab in ordered},
    }
    return out, classes, report
