"""ExPASy ENZYME (``enzyme.dat``) as an EC <-> Swiss-Prot accession source.

The entries are parsed with Biopython's ``Bio.ExPASy.Enzyme`` parser; each entry's ``DR``
lines list the Swiss-Prot accessions annotated with its EC number. Deleted and transferred
entries have no ``DR`` lines and contribute nothing. Sequences come from a separate
TSV/FASTA file (``data.sequences``), since enzyme.dat holds none.
Download: https://ftp.expasy.org/databases/enzyme/enzyme.dat
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from Bio.ExPASy import Enzyme

from kneurons.data.ec import parse_ec
from kneurons.data.local import join_sequences, open_text, read_sequences
from kneurons.errors import InputError


class _CountingLines:
    """Iterate a text handle while remembering the current line number (for error messages)."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.lineno = 0
        self.release: str | None = None

    def __iter__(self) -> Iterator[str]:
        for line in self.handle:
            self.lineno += 1
            if self.release is None and line.startswith("CC") and "Release" in line:
                m = re.search(r"Release\s*:?\s*(.+)", line)
                self.release = m.group(1).strip() if m else None
            yield line


def read_enzyme_dat(path: str | Path) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Parse enzyme.dat into ``{accession: [EC, ...]}`` (file order) and parse statistics."""
    pairs: dict[str, list[str]] = {}
    entries = with_dr = 0
    with open_text(path) as fh:
        lines = _CountingLines(fh)
        try:
            for record in Enzyme.parse(lines):
                entries += 1
                ec_text = record["ID"].strip()
                try:
                    ec = str(parse_ec(ec_text))
                except ValueError as exc:
                    raise InputError(f"{path}, line {lines.lineno}: entry ID: {exc}") from None
                if record["DR"]:
                    with_dr += 1
                for accession, _name in record["DR"]:
                    ecs = pairs.setdefault(accession, [])
                    if ec not in ecs:
                        ecs.append(ec)
        except InputError:
            raise
        except (ValueError, AssertionError, TypeError, AttributeError, IndexError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{path}, line {lines.lineno}: malformed ENZYME record ({type(exc).__name__}: {exc})"
            ) from None
    if entries == 0:
        raise InputError(f"{path}: no ENZYME entries (empty file or not enzyme.dat)")
    if not pairs:
        raise InputError(f"{path}: {entries} ENZYME entries but no DR (Swiss-Prot) lines")
    stats = {"entries": entries, "entries_with_dr": with_dr, "release": lines.release}
    return pairs, stats


def expasy_proteins(enzyme_dat: str | Path, sequences: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The proteins table from enzyme.dat annotations and a sequences file, with statistics."""
    pairs, stats = read_enzyme_dat(enzyme_dat)
    df, join = join_sequences(pairs, read_sequences(sequences), str(enzyme_dat), str(sequences))
    return df, {
        "source": "expasy",
        "enzyme_dat": str(enzyme_dat),
        "sequences": str(sequences),
        **stats,
        **join,
    }
