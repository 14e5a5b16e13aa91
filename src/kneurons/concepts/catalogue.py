"""The concepts of a run: what a residue can be, from the annotation columns of the split, with every
annotation instance kept.

A **concept** is a UniProt feature type (``kneurons.data.annotations.FEATURE_COLUMNS``: "Helix",
"Binding site") or one group of it, as InterPLM groups them (Simon & Zou, Nature Methods 2025;
``interplm/concept/extract_uniprotkb_annotations.py``): binding sites by ligand ("Binding site:
ATP"), the others by note ("Domain: Protein kinase"; a repeat's number dropped, so "EF-hand 1" and
"EF-hand 2" are one concept). An **instance** is one feature of one protein (a domain, a binding site
of one ligand, a disulfide bond's two cysteines): recall counts instances. On synthetic data the
planted motifs (``motif_sites``) are concepts too, one per class ("Planted motif: EC 1", each
contiguous run of planted residues an instance) and all classes together ("Planted motif"): the
ground truth. Catalytic concepts: active sites, binding sites and the planted motifs.

A concept is scored when at least ``min_proteins`` proteins carry it in the validation part and as
many in the test part (the threshold is chosen on one, the F1 reported on the other).

Each scored concept has two **controls** (NeuronEval, ICML 2025: a metric must fail on labels that
carry no information): ``within``, its positions shuffled within each protein (a random permutation
of the protein's residues), and ``across``, its annotation moved to a random protein of the part
(positions kept, those past the new protein's end dropped). The same shuffles, redrawn, make each
unit-concept pair's null distribution (``kneurons.concepts.alignment``). Torch-free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kneurons.data.annotations import FEATURE_COLUMNS, ParseStats, column_instances, parse_position_list

#: The column of the synthetic generator's planted motif positions, and its concepts' name.
MOTIF_COLUMN = "motif_sites"
PLANTED = "Planted motif"
#: The annotation columns that make catalytic concepts.
CATALYTIC_COLUMNS = frozenset({*(c.column for c in FEATURE_COLUMNS if c.catalytic), MOTIF_COLUMN})
#: The controls of every concept (module docstring), in table order.
CONTROLS: tuple[str, ...] = ("within", "across")
#: The two parts of the split a concept is measured on: the threshold on one, the F1 on the other.
PARTS: tuple[str, ...] = ("val", "test")

#: Columns of ``concepts/concepts.tsv`` that describe a concept (the job adds its results).
CONCEPT_COLUMNS = ["concept", "column", "group", "catalytic", "control", "source"]

_LABELS = {c.column: c.label for c in FEATURE_COLUMNS} | {MOTIF_COLUMN: PLANTED}
_EC_CLASS = re.compile(r"^\s*(\d+)\.")


@dataclass(frozen=True)
class Concept:
    """One concept: its name, the column it comes from, its group (``""``: the whole feature
    type), whether it is catalytic, and for a control its kind and the concept it shuffles."""

    name: str
    column: str
    group: str
    catalytic: bool
    control: str = ""
    source: str = ""


@dataclass
class PartTracks:
    """One part's proteins as residue tracks: the residues of all proteins laid end to end
    (``offsets``: where each protein starts), and per concept its (residue, instance) pairs.

    ``pairs[c]`` is an ``(n, 2)`` int64 array: a residue (flat index over the part) and the
    instance (numbered from 0 within the concept) it belongs to; a residue in two instances of one
    concept (overlapping features) appears twice.
    """

    lengths: np.ndarray
    pairs: list[np.ndarray] = field(default_factory=list)

    @property
    def offsets(self) -> np.ndarray:
        """Flat index of each protein's first residue, and the total residues last."""
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    @property
    def n_residues(self) -> int:
        """Residues of the part."""
        return int(self.lengths.sum())

    def protein_of(self, residues: np.ndarray) -> np.ndarray:
        """The protein (row of the part) of each flat residue index."""
        return np.searchsorted(self.offsets, residues, side="right") - 1

    def n_instances(self, c: int) -> int:
        """Instances of concept ``c`` in the part."""
        return len(np.unique(self.pairs[c][:, 1]))

    def n_proteins(self, c: int) -> int:
        """Proteins of the part that carry concept ``c``."""
        return len(np.unique(self.protein_of(self.pairs[c][:, 0])))


@dataclass
class Catalogue:
    """The scored concepts (real ones, then their controls), each part's tracks, the concepts that
    were found but carried by too few proteins, and what the parser skipped."""

    concepts: list[Concept]
    tracks: dict[str, PartTracks]
    too_rare: pd.DataFrame
    stats: ParseStats
    columns: list[str]

    def table(self) -> pd.DataFrame:
        """One row per scored concept: ``CONCEPT_COLUMNS`` and its proteins, instances and residues
        in each part."""
        rows = []
        for c, concept in enumerate(self.concepts):
            row = {k: getattr(concept, "name" if k == "concept" else k) for k in CONCEPT_COLUMNS}
            for part in PARTS:
                t = self.tracks[part]
                row[f"proteins_{part}"] = t.n_proteins(c)
                row[f"instances_{part}"] = t.n_instances(c)
                row[f"residues_{part}"] = len(np.unique(t.pairs[c][:, 0]))
            rows.append(row)
        return pd.DataFrame(rows)

    def real(self) -> list[int]:
        """Indices of the concepts that are not controls."""
        return [i for i, c in enumerate(self.concepts) if not c.control]


def annotated_columns(rows: pd.DataFrame) -> list[str]:
    """The concept columns of ``rows`` that hold at least one value, in table order."""
    names = [*(c.column for c in FEATURE_COLUMNS), MOTIF_COLUMN]
    return [c for c in names if c in rows.columns and rows[c].astype(str).str.strip().ne("").any()]


def _runs(positions: Sequence[int]) -> list[list[int]]:
    """Consecutive positions as runs: ``[3, 4, 5, 9, 10] -> [[3, 4, 5], [9, 10]]``."""
    runs: list[list[int]] = []
    for p in positions:
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def _ec_class(ec: object) -> str:
    m = _EC_CLASS.match(str(ec or ""))
    return f"EC {m.group(1)}" if m else ""


def protein_instances(
    rows: pd.DataFrame, columns: Sequence[str], source: str, stats: ParseStats
) -> list[list[tuple[str, str, list[int]]]]:
    """Per protein of ``rows``, its annotation instances ``(column, group, 1-based residues)``.

    UniProt columns through ``column_instances``; ``motif_sites`` as runs of consecutive planted
    residues, grouped by the protein's EC class (its ``ec``'s first number). ``rows`` keep
    split.tsv's index, so errors name the file's line (the header is line 1).
    """
    lengths = rows["sequence"].astype(str).str.len().to_numpy()
    by_column = {c.column: c for c in FEATURE_COLUMNS}
    out: list[list[tuple[str, str, list[int]]]] = []
    ecs = rows["ec"].tolist() if "ec" in rows.columns else [""] * len(rows)
    for i, (length, ec) in enumerate(zip(lengths, ecs, strict=True)):
        found: list[tuple[str, str, list[int]]] = []
        line = int(rows.index[i]) + 2
        for col in columns:
            value = rows[col].iloc[i]
            where = f"{source} line {line}, column {col}"
            if col == MOTIF_COLUMN:
                group = _ec_class(ec)
                positions = parse_position_list(value, length=int(length), source=where)
                found += [(col, group, run) for run in _runs(positions)]
            else:
                inst = column_instances(value, by_column[col], int(length), where, stats)
                found += [(col, group, pos) for group, pos in inst]
        out.append(found)
    return out


def concept_name(column: str, group: str) -> str:
    """``Binding site: ATP`` for a group, ``Binding site`` for the whole feature type."""
    label = _LABELS[column]
    return f"{label}: {group}" if group else label


def _part_pairs(
    instances: list[list[tuple[str, str, list[int]]]], lengths: np.ndarray, meta: dict[str, tuple[str, str]]
) -> dict[str, list[tuple[int, int]]]:
    """Concept name -> (flat residue, instance) pairs of one part: every instance counts for its
    group's concept and for its whole feature type's. ``meta`` collects each name's (column, group)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    pairs: dict[str, list[tuple[int, int]]] = {}
    counter: dict[str, int] = {}
    for p, found in enumerate(instances):
        for column, group, positions in found:
            names = {concept_name(column, ""): (column, "")}
            if group:
                names[concept_name(column, group)] = (column, group)
            meta.update(names)
            for name in names:
                k = counter.get(name, 0)
                counter[name] = k + 1
                pairs.setdefault(name, []).extend((int(offsets[p]) + pos - 1, k) for pos in positions)
    return pairs


def _as_array(pairs: list[tuple[int, int]]) -> np.ndarray:
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def shuffle_within(pairs: np.ndarray, tracks: PartTracks, rng: np.random.Generator) -> np.ndarray:
    """``pairs`` with each protein's residues permuted at random (a concept's positions shuffled
    within each protein; its instances and their sizes kept). Only the proteins that carry the
    concept are drawn, all at once: residues sorted by (protein, random key) give each protein's
    residues in a random order."""
    offsets = tracks.offsets
    proteins = np.unique(tracks.protein_of(pairs[:, 0]))
    lengths = tracks.lengths[proteins]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    residues = np.repeat(offsets[proteins] - starts, lengths) + np.arange(int(lengths.sum()))
    order = np.lexsort((rng.random(len(residues)), np.repeat(proteins, lengths)))
    moved = np.empty(tracks.n_residues, dtype=np.int64)
    moved[residues[order]] = residues  # each residue's new place: a permutation within its protein
    out = pairs.copy()
    out[:, 0] = moved[pairs[:, 0]]
    return out


def move_across(pairs: np.ndarray, tracks: PartTracks, rng: np.random.Generator) -> np.ndarray:
    """``pairs`` moved to random proteins: the annotation of protein ``p`` goes to protein
    ``sigma(p)`` of a random permutation of the part, at the same positions; positions past the new
    protein's end are dropped (and an instance left without residues with them)."""
    offsets = tracks.offsets
    sigma = rng.permutation(len(tracks.lengths))
    proteins = tracks.protein_of(pairs[:, 0])
    within = pairs[:, 0] - offsets[proteins]
    target = sigma[proteins]
    keep = within < tracks.lengths[target]
    out = np.stack([offsets[target] + within, pairs[:, 1]], axis=1)
    return out[keep]


#: The control shuffles by name.
SHUFFLES = {"within": shuffle_within, "across": move_across}


def build_catalogue(
    parts: Mapping[str, pd.DataFrame], min_proteins: int, seed: int = 0, source: str = "split.tsv"
) -> Catalogue:
    """The scored concepts of the validation and test parts (``parts["val"]``, ``parts["test"]``:
    rows of split.tsv) and their tracks, with the two controls of each.

    A concept carried by fewer than ``min_proteins`` proteins in either part is not scored (listed
    in ``too_rare`` with its counts). Controls are drawn from ``numpy.random.default_rng(seed)``.
    """
    stats = ParseStats()
    columns = sorted(
        {c for part in PARTS for c in annotated_columns(parts[part])},
        key=[*(c.column for c in FEATURE_COLUMNS), MOTIF_COLUMN].index,
    )
    lengths = {
        part: parts[part]["sequence"].astype(str).str.len().to_numpy().astype(np.int64) for part in PARTS
    }
    meta: dict[str, tuple[str, str]] = {}
    found = {
        part: _part_pairs(protein_instances(parts[part], columns, source, stats), lengths[part], meta)
        for part in PARTS
    }
    tracks = {part: PartTracks(lengths[part]) for part in PARTS}
    concepts: list[Concept] = []
    rare = []
    for name in sorted(meta, key=lambda n: (columns.index(meta[n][0]), meta[n][1] != "", n)):
        column, group = meta[name]
        counts = {}
        for part in PARTS:
            arr = _as_array(found[part].get(name, []))
            counts[part] = len(np.unique(tracks[part].protein_of(arr[:, 0]))) if len(arr) else 0
        if min(counts.values()) < min_proteins:
            rare.append(
                {"concept": name, "column": column, **{f"proteins_{k}": v for k, v in counts.items()}}
            )
            continue
        concepts.append(Concept(name, column, group, column in CATALYTIC_COLUMNS))
        for part in PARTS:
            tracks[part].pairs.append(_as_array(found[part][name]))
    rng = np.random.default_rng(seed)
    real = list(concepts)
    for control in CONTROLS:
        for c, concept in enumerate(real):
            concepts.append(
                Concept(
                    f"{concept.name} [{control}]",
                    concept.column,
                    concept.group,
                    concept.catalytic,
                    control,
                    concept.name,
                )
            )
            for part in PARTS:
                tracks[part].pairs.append(SHUFFLES[control](tracks[part].pairs[c], tracks[part], rng))
    too_rare = pd.DataFrame(rare, columns=["concept", "column", *(f"proteins_{p}" for p in PARTS)])
    return Catalogue(concepts, tracks, too_rare, stats, columns)
