"""The proteins a user brings, read as the run reads proteins: its readers, its residue policies.

A FASTA or TSV file (``kneurons.data.local``: a UniProt export or contract column names; the EC
column optional) is normalised by the same checks as every source (``normalise_proteins``: empty
records, characters that are no amino-acid code, duplicate accessions), then the run's label
policy for residues decides the rest: ``nonstandard`` (U, O, B, Z, X dropped, mapped to X or kept)
and ``long_sequences`` (cropped to the first ``max_length`` residues, as the run crops, or dropped).
A protein the run would have dropped is an error naming the file and the record: its model never
saw such a protein. Annotated sites (``active_site``, ``binding_site``, ``motif_sites``) become
1-based positions. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kneurons.data.annotations import site_positions
from kneurons.data.ec import parse_ec_list
from kneurons.data.labels import NON_ENZYME
from kneurons.data.local import read_sequences
from kneurons.data.normalise import NONSTANDARD_RESIDUES
from kneurons.errors import InputError
from kneurons.explain.run import RunSettings


@dataclass
class Protein:
    """One protein as the model reads it, and what reading it changed."""

    record: int  # 1-based position in the file
    accession: str
    sequence: str  # as the model reads it (mapped, cropped)
    length: int  # the residues in the file
    ec: str  # annotated EC numbers ("" when the file has none)
    annotated: list[str]  # the classes the annotation gives at the run's level (empty: unknown)
    sites: list[int] | None  # annotated 1-based positions within ``sequence`` (None: unannotated)
    notes: list[str] = field(default_factory=list)  # what the run's policies did to it


def _record(path: Path, i: int, accession: str) -> str:
    return f"{path}, record {i} (accession {accession})"


def apply_residue_policies(sequence: str, where: str, policy: RunSettings) -> tuple[str, list[str]]:
    """``sequence`` as the run would have kept it, and notes on what changed; InputError (naming
    ``where``) for a protein the run drops: non-standard residues under ``nonstandard: drop``, a
    sequence over ``max_length`` under ``long_sequences: drop``."""
    notes: list[str] = []
    odd = [(i + 1, c) for i, c in enumerate(sequence) if c in NONSTANDARD_RESIDUES]
    if odd:
        shown = ", ".join(f"{c} at {p}" for p, c in odd[:5]) + (" ..." if len(odd) > 5 else "")
        if policy.nonstandard == "drop":
            raise InputError(
                f"{where}: non-standard residue(s) {shown}; the run left such proteins out "
                "(labels.nonstandard: drop), so its model never read one: replace or remove them"
            )
        if policy.nonstandard == "to_x":
            mapped = sequence.translate(str.maketrans({c: "X" for c in "UOBZ"}))
            if mapped != sequence:
                notes.append(
                    f"U, O, B, Z read as X, as the run maps them (labels.nonstandard: to_x): {shown}"
                )
            sequence = mapped
        else:
            notes.append(
                f"non-standard residue(s) kept, as the run keeps them (labels.nonstandard: keep): {shown}"
            )
    if len(sequence) > policy.max_length:
        if policy.long_sequences == "drop":
            raise InputError(
                f"{where}: {len(sequence)} residues, more than the run's labels.max_length "
                f"{policy.max_length}; the run drops such proteins (labels.long_sequences: drop)"
            )
        notes.append(
            f"cropped to its first {policy.max_length} of {len(sequence)} residues, as the run crops "
            f"(labels.long_sequences: crop, labels.max_length {policy.max_length})"
        )
        sequence = sequence[: policy.max_length]
    return sequence, notes


def annotated_classes(ec: str, level: int, labels: Sequence[str]) -> list[str]:
    """The classes an EC cell gives at ``level`` (several for a multi-EC protein; ``non-enzyme``
    for none when the run has that class)."""
    numbers = parse_ec_list(ec)
    if not numbers:
        return [NON_ENZYME] if NON_ENZYME in labels else []
    return list(dict.fromkeys(p for e in numbers if (p := e.prefix(level)) is not None))


def read_explain_proteins(path: str | Path, policy: RunSettings) -> list[Protein]:
    """The proteins of ``path`` (FASTA or TSV, plain or gzip) as the run's model reads them.

    Errors name the file and the record (and the line, where the reader knows it).
    """
    path = Path(path)
    table = read_sequences(path)
    proteins = []
    for i, row in enumerate(table.itertuples(index=False), start=1):
        where = _record(path, i, row.accession)
        seq, notes = apply_residue_policies(row.sequence, where, policy)
        proteins.append(
            Protein(
                record=i,
                accession=str(row.accession),
                sequence=seq,
                length=len(row.sequence),
                ec=str(row.ec),
                annotated=annotated_classes(str(row.ec), policy.level, policy.labels),
                sites=None,
                notes=notes,
            )
        )
    # Sites are read on the file's sequences; those beyond a crop are left out, and said so.
    sites, _ = site_positions(table, source=str(path))
    for protein, pos in zip(proteins, sites, strict=True):
        if pos is None:
            continue
        kept = [p for p in pos if p <= len(protein.sequence)]
        if len(kept) < len(pos):
            protein.notes.append(f"{len(pos) - len(kept)} annotated site(s) beyond the crop are not shown")
        protein.sites = kept or None
    return proteins
