"""Checks shared by every source: the normalised proteins table and its sequences.

Every reader ends in :func:`normalise_proteins`, so whatever the source, ``proteins.tsv`` has
valid EC strings, valid sequences and unique accessions, or the run stops with one
:class:`~kneurons.errors.InputError` naming the file, line and value.
"""

from __future__ import annotations

import re

import pandas as pd

from kneurons.data import OPTIONAL_COLUMNS, PROTEIN_COLUMNS
from kneurons.data.ec import format_ec_list, parse_ec_list
from kneurons.errors import InputError

#: The 20 standard amino acids.
STANDARD_RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWY")
#: Non-standard residue codes ESM-2 has tokens for (selenocysteine, pyrrolysine, ambiguous, unknown).
NONSTANDARD_RESIDUES = frozenset("UOBZX")
VALID_RESIDUES = STANDARD_RESIDUES | NONSTANDARD_RESIDUES
_INVALID_RE = re.compile(f"[^{''.join(sorted(VALID_RESIDUES))}]")
_EC_PREFIX_RE = re.compile(r"(?:^|[;,])\s*EC\b", re.IGNORECASE)
#: What ``normalise_proteins`` rewrote, counted per protein in ``DataFrame.attrs[NORMALISED]``.
NORMALISED = "normalised"


def where(source: str | None, line: int | None = None, accession: str | None = None) -> str:
    """Human-readable location for error messages: ``file, line N (accession X)``."""
    bits = [source or "<proteins table>"]
    if line is not None:
        bits.append(f"line {line}")
    loc = ", ".join(bits)
    return f"{loc} (accession {accession})" if accession else loc


def check_sequence(seq: str, location: str) -> str:
    """Upper-case ``seq``, strip one terminal ``*`` (FASTA stop), and reject anything that is
    not an amino-acid code ESM-2 knows (20 standard + U, O, B, Z, X)."""
    s = seq.strip().upper()
    s = s.removesuffix("*")
    if not s:
        raise InputError(f"{location}: empty sequence")
    bad = _INVALID_RE.search(s)
    if bad:
        raise InputError(
            f"{location}: invalid character {bad.group()!r} at residue {bad.start() + 1} of the sequence "
            "(allowed: the 20 standard amino acids and U, O, B, Z, X)"
        )
    return s


def normalise_proteins(
    df: pd.DataFrame, source: str | None = None, line_numbers: list[int] | None = None
) -> pd.DataFrame:
    """Validate and normalise a proteins table to the contract columns.

    ``df`` must have ``accession, ec, sequence`` (+ any of ``OPTIONAL_COLUMNS``); other columns
    are dropped. EC cells are re-joined canonically with ``; `` (an ``EC``, ``EC:`` or ``EC ``
    prefix removed); sequences are upper-cased and lose one final ``*`` (a stop), whatever the
    format. ``attrs[NORMALISED]`` of the result counts the proteins each rewrite changed:
    ``lower_case_sequences``, ``final_stop_removed``, ``ec_prefix_removed``.
    ``line_numbers`` (one per row) make errors name the input line; without them the row's
    position in a TSV with a header (row + 2) is used.
    """
    missing = [c for c in PROTEIN_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"{where(source)}: missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, df.columns))}"
        )
    if len(df) == 0:
        raise InputError(f"{where(source)}: no proteins (the table has a header but no rows)")
    if line_numbers is None:
        line_numbers = list(range(2, len(df) + 2))
    cols = [*PROTEIN_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in df.columns)]
    out = df[cols].copy()
    for c in cols:
        out[c] = out[c].fillna("").astype(str)
    first_seen: dict[str, int] = {}
    ecs, seqs = [], []
    counts = dict.fromkeys(("lower_case_sequences", "final_stop_removed", "ec_prefix_removed"), 0)
    for acc, ec, seq, line in zip(out["accession"], out["ec"], out["sequence"], line_numbers, strict=False):
        acc = acc.strip()
        if not acc:
            raise InputError(f"{where(source, line)}: empty accession")
        if acc in first_seen:
            raise InputError(
                f"{where(source, line)}: duplicate accession {acc!r} (first at line {first_seen[acc]})"
            )
        first_seen[acc] = line
        try:
            ecs.append(format_ec_list(parse_ec_list(ec)))
        except ValueError as exc:
            raise InputError(f"{where(source, line, acc)}: {exc}") from None
        seqs.append(check_sequence(seq, where(source, line, acc)))
        counts["lower_case_sequences"] += seq != seq.upper()
        counts["final_stop_removed"] += seq.rstrip().endswith("*")
        counts["ec_prefix_removed"] += bool(_EC_PREFIX_RE.search(ec))
    out["accession"] = list(first_seen)
    out["ec"] = ecs
    out["sequence"] = seqs
    out = out.reset_index(drop=True)
    out.attrs[NORMALISED] = counts
    return out
