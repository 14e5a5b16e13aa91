"""The label policies: each narrows the proteins being labelled and says what it dropped.

The steps run in this order; a protein leaves at the first step that drops it, and the
label report counts it there:

1. ``non_enzymes``: proteins without an EC number are dropped, or labelled ``non-enzyme``.
2. ``multi_ec`` = ``drop``: proteins annotated with several EC numbers are dropped.
3. ``incomplete`` / ``preliminary``: each EC number must define the label at ``level``
   (``3.4.-.-`` defines level 1 and 2; ``4.2.2.n1`` defines level 1 to 3). ``drop`` discards
   every incomplete (preliminary) number; ``keep`` keeps it where it defines the label.
   A protein left without a usable number is dropped.
4. ``multi_ec`` = ``first`` / ``agree``: the first usable number gives the label; with ``agree``
   (the default) the protein is kept only when every number that defines the label's level gives the
   same one (``agree_at_level``).
5. ``nonstandard``: sequences with U, O, B, Z or X are dropped, mapped (U/O/B/Z -> X) or kept.
6. ``long_sequences``: sequences longer than ``max_length`` are cropped (first residues) or dropped.
7. ``duplicates``: identical sequences; ``drop`` keeps one copy when the copies agree on the
   label and drops all copies when they disagree; ``keep_first`` keeps the first copy.
8. ``min_class_size``: classes with fewer proteins are dropped.

An external test set runs ``EXTERNAL_POLICIES``: steps 6 and 7 swapped, so that its duplicates are
judged on full-length sequences (two proteins sharing their first ``max_length`` residues are two
proteins) and the crop only fits them to the model.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kneurons.data.ec import ECNumber, level_labels
from kneurons.data.normalise import NONSTANDARD_RESIDUES

log = logging.getLogger(__name__)

NON_ENZYME = "non-enzyme"


@dataclass
class Labelling:
    """The proteins being labelled: what each policy reads and narrows.

    ``keep`` marks the proteins still in; ``labels`` their class (``None`` until
    ``multi_ec_resolve``, except non-enzymes kept as a class); ``usable`` the labels their EC
    numbers give at the level (set by ``incomplete``); ``seqs`` the sequences as the policies
    change them (mapped residues, crops).
    """

    ec_lists: list[list[ECNumber]]
    seqs: list[str]
    keep: np.ndarray
    labels: list[str | None]
    usable: list[list[str]]
    number_counts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def start(cls, ec_lists: list[list[ECNumber]], seqs: list[str]) -> Labelling:
        n = len(ec_lists)
        return cls(ec_lists, list(seqs), np.ones(n, dtype=bool), [None] * n, [[] for _ in range(n)])

    @property
    def n(self) -> int:
        """Proteins still in."""
        return int(self.keep.sum())


Step = dict[str, Any]
Policy = Callable[[Labelling, dict[str, Any]], tuple[Labelling, Step | None]]


def _step(step: str, policy: Any, before: int, after: int, **extra: Any) -> Step:
    log.info("labels: %s (%s): %d -> %d proteins %s", step, policy, before, after, extra or "")
    return {"step": step, "policy": policy, "dropped": before - after, "remaining": after, **extra}


def non_enzymes(t: Labelling, cfg: dict[str, Any]) -> tuple[Labelling, Step]:
    """Proteins without an EC number: dropped, or labelled ``non-enzyme`` (``class``)."""
    before, n_non = t.n, 0
    for i, ecs in enumerate(t.ec_lists):
        if not ecs:
            n_non += 1
            if cfg["non_enzymes"] == "class":
                t.labels[i] = NON_ENZYME
            else:
                t.keep[i] = False
    return t, _step("non_enzymes", cfg["non_enzymes"], before, t.n, affected=n_non)


def _multi_ec_proteins(t: Labelling) -> int:
    # Only non-enzymes can have left before the multi-EC steps, so this counts the input's.
    return sum(len(ecs) > 1 for ecs in t.ec_lists)


def multi_ec_drop(t: Labelling, cfg: dict[str, Any]) -> tuple[Labelling, Step | None]:
    """``multi_ec: drop``: proteins annotated with several EC numbers leave (no step otherwise).

    Judged on the annotation: a second activity is a second activity, whatever its number's
    completeness.
    """
    if cfg["multi_ec"] != "drop":
        return t, None
    before = t.n
    for i, ecs in enumerate(t.ec_lists):
        if t.keep[i] and len(ecs) > 1:
            t.keep[i] = False
    return t, _step("multi_ec", "drop", before, t.n, affected=_multi_ec_proteins(t))


def _usable_numbers(t: Labelling, cfg: dict[str, Any]) -> list[list[str]]:
    """Fill ``t.usable`` and ``t.number_counts`` (numbers of each kind, and the discarded ones) for
    the enzymes still in; returns per protein the kinds of its discarded numbers."""
    bad: list[list[str]] = [[] for _ in t.ec_lists]
    for i, ecs in enumerate(t.ec_lists):
        if not t.keep[i] or not ecs:
            continue
        for e in ecs:
            lab = e.prefix(cfg["level"])
            kind = "incomplete" if e.incomplete else "preliminary" if e.preliminary else "complete"
            ok = kind == "complete" or (cfg[kind] == "keep" and lab is not None)
            t.number_counts[kind] += 1
            if ok:
                t.usable[i].append(lab)  # type: ignore[arg-type]
            else:
                t.number_counts[f"{kind}_discarded"] += 1
                bad[i].append(kind)
    return bad


def incomplete(t: Labelling, cfg: dict[str, Any]) -> tuple[Labelling, Step]:
    """Incomplete numbers (``3.4.-.-``) that do not define the label at ``level`` (or all, with
    ``drop``) are discarded; a protein left without a usable number because of one leaves here.

    Judges the preliminary numbers too (``usable``), so that ``preliminary`` counts the same proteins.
    """
    before = t.n
    bad = _usable_numbers(t, cfg)
    for i, kinds in enumerate(bad):
        if kinds and not t.usable[i] and "incomplete" in kinds:
            t.keep[i] = False
    counts = t.number_counts
    return t, _step(
        "incomplete",
        cfg["incomplete"],
        before,
        t.n,
        numbers=counts["incomplete"],
        numbers_discarded=counts["incomplete_discarded"],
    )


def preliminary(t: Labelling, cfg: dict[str, Any]) -> tuple[Labelling, Step]:
    """Preliminary numbers (``4.2.2.n1``), likewise: the enzymes left without a usable number leave."""
    before = t.n
    for i, ecs in enumerate(t.ec_lists):
        if t.keep[i] and ecs and not t.usable[i]:
            t.keep[i] = False
    counts = t.number_counts
    return t, _step(
        "preliminary",
        cfg["preliminary"],
        before,
        t.n,
        numbers=counts["preliminary"],
        numbers_discarded=counts["preliminary_discarded"],
    )


def agree_at_level(ecs: list[ECNumber], level: int) -> bool:
    """Whether a protein's EC numbers agree at ``level`` (``multi_ec: agree``): they state one label
    there. Judged on the annotation, as ``drop`` is: a number the ``incomplete`` / ``preliminary``
    policies keep from giving the label is still an activity of that class (``2.5.1.27; 3.2.2.n1``
    is a transferase and a hydrolase, whichever number may label it)."""
    return len(level_labels(ecs, level)) <= 1


def multi_ec_resolve(t: Labelling, cfg: dict[str, Any]) -> tuple[Labelling, Step | None]:
    """Label the enzymes: the first usable number gives the label; with ``agree`` a protein whose
    numbers state different labels at the level leaves (``agree_at_level``). A step only for
    ``first`` / ``agree``."""
    before, resolved = t.n, 0
    for i in range(len(t.ec_lists)):
        if not t.keep[i] or t.labels[i] == NON_ENZYME:
            continue
        labs = t.usable[i]
        if (
            len(t.ec_lists[i]) > 1
            and cfg["multi_ec"] == "agree"
            and not agree_at_level(t.ec_lists[i], cfg["level"])
        ):
            t.keep[i] = False
            continue
        if len(t.ec_lists[i]) > 1:
            resolved += 1
        t.labels[i] = labs[0]
    if cfg["multi_ec"] == "drop":
        return t, None
    return t, _step("multi_ec", cfg["multi_ec"], before, t.n, affected=_multi_ec_proteins(t), kept=resolved)


def nonstandard(t: Labelling, cfg: dict[str, Any]) -> tuple[Labelling, Step]:
    """Sequences with U, O, B, Z or X: dropped, mapped (U/O/B/Z -> X, ``to_x``) or kept."""
    before, n_nonstd = t.n, 0
    nonstd_chars = set(NONSTANDARD_RESIDUES)
    to_x = str.maketrans({c: "X" for c in "UOBZ"})
    for i, s in enumerate(t.seqs):
        if t.keep[i] and nonstd_chars.intersection(s):
            n_nonstd += 1
            if cfg["nonstandard"] == "drop":
                t.keep[i] = False
            elif cfg["nonstandard"] == "to_x":
                t.seqs[i] = s.translate(to_x)
    return t, _step("nonstandard", cfg["nonstandard"], before, t.n, affected=n_nonstd)


def long_sequences(t: Labelling, cfg: dict[str, Any]) -> tuple[Labelling, Step]:
    """Sequences longer than ``max_length``: cropped to their first residues, or dropped."""
    before, n_long, max_len = t.n, 0, cfg["max_length"]
    for i, s in enumerate(t.seqs):
        if t.keep[i] and len(s) > max_len:
            n_long += 1
            if cfg["long_sequences"] == "drop":
                t.keep[i] = False
            else:
                t.seqs[i] = s[:max_len]
    cropped = n_long if cfg["long_sequences"] == "crop" else 0
    return t, _step(
        "long_sequences",
        cfg["long_sequences"],
        before,
        t.n,
        affected=n_long,
        max_length=max_len,
        cropped=cropped,
    )


def duplicates(t: Labelling, cfg: dict[str, Any]) -> tuple[Labelling, Step]:
    """Identical (final) sequences: ``drop`` keeps one copy when the copies agree on the label and
    none when they disagree; ``keep_first`` keeps the first copy; ``keep`` keeps all."""
    before = t.n
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(t.seqs):
        if t.keep[i]:
            groups.setdefault(s, []).append(i)
    dup_groups = [g for g in groups.values() if len(g) > 1]
    conflicting = 0
    if cfg["duplicates"] != "keep":
        for g in dup_groups:
            agree = len({t.labels[i] for i in g}) == 1
            if cfg["duplicates"] == "drop" and not agree:
                conflicting += 1
                t.keep[g] = False
            else:
                t.keep[g[1:]] = False
    return t, _step(
        "duplicates",
        cfg["duplicates"],
        before,
        t.n,
        groups=len(dup_groups),
        proteins_in_groups=sum(len(g) for g in dup_groups),
        conflicting_groups=conflicting,
    )


def min_class_size(t: Labelling, cfg: dict[str, Any]) -> tuple[Labelling, Step]:
    """Classes with fewer than ``min_class_size`` proteins leave."""
    before = t.n
    sizes = Counter(t.labels[i] for i in np.flatnonzero(t.keep))
    small = {lab: n for lab, n in sizes.items() if n < cfg["min_class_size"]}
    for i in np.flatnonzero(t.keep):
        if t.labels[i] in small:
            t.keep[i] = False
    return t, _step(
        "min_class_size", cfg["min_class_size"], before, t.n, classes_dropped=dict(sorted(small.items()))
    )


#: The label policies in the order they run (the module docstring's). ``multi_ec`` is one
#: policy in two places: ``drop`` judges the annotation before the numbers are checked,
#: ``first`` / ``agree`` need the usable numbers, so they run after ``preliminary``.
POLICIES: tuple[Policy, ...] = (
    non_enzymes,
    multi_ec_drop,
    incomplete,
    preliminary,
    multi_ec_resolve,
    nonstandard,
    long_sequences,
    duplicates,
    min_class_size,
)


#: The policies of an external test set: ``POLICIES`` with ``duplicates`` (on full-length
#: sequences) before ``long_sequences`` (the crop).
EXTERNAL_POLICIES: tuple[Policy, ...] = tuple(
    {long_sequences: duplicates, duplicates: long_sequences}.get(p, p) for p in POLICIES
)
