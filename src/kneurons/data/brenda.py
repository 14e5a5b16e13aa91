"""A local BRENDA flat file (``brenda_download.txt``) as an EC <-> UniProt accession source.

The user downloads the file under BRENDA's licence. Its layout: an entry starts with
``ID<TAB>1.1.1.1`` and ends with ``///``; field lines start with a code and a TAB
(``PR`` = protein), continuation lines start with whitespace. Protein lines look like
(``<TAB>`` is a tab character; the third line continues the second)::

    PR<TAB>#2# Homo sapiens P07327 and P00325 UniProt <12,28>
    PR<TAB>#5# Sulfolobus solfataricus P39462 UniProt (#5# strain DSM
    <TAB>1616 <77>) <77,102>

Accessions are the tokens right before the database word (``UniProt``, ``SwissProt``,
``TrEMBL``), joined by ``and``/``AND``/``,``. Comments ``(...)`` and references ``<...>``
are removed first. Proteins given by organism only (no accession) are counted and skipped.
Sequences come from a separate TSV/FASTA file (``data.sequences``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.data.ec import parse_ec
from kneurons.data.local import join_sequences, note_compression, read_lines, read_sequences
from kneurons.errors import InputError

_ACCESSION_RE = re.compile(
    r"^(?:[OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9](?:[A-Z][A-Z0-9]{2}[0-9]){1,2})(?:-\d+)?$"
)
_DB_WORDS = {"uniprot", "swissprot", "trembl", "uniprotkb"}
_CONNECTORS = {"and", ","}


def _strip_brackets(text: str) -> str:
    """Remove ``(...)`` comments (nested) and ``<...>`` / ``{...}`` annotations."""
    out, depth = [], 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return re.sub(r"<[^>]*>|\{[^}]*\}", " ", "".join(out))


def protein_accessions(pr_text: str) -> list[str]:
    """UniProt accessions named in one (joined) ``PR`` field."""
    text = _strip_brackets(pr_text).replace(",", " , ")
    tokens = text.split()
    found: list[str] = []
    for k, tok in enumerate(tokens):
        if tok.lower() not in _DB_WORDS:
            continue
        j, here = k - 1, []
        while j >= 0 and (tokens[j].lower() in _CONNECTORS or _ACCESSION_RE.match(tokens[j])):
            if _ACCESSION_RE.match(tokens[j]):
                here.append(tokens[j])
            j -= 1
        found.extend(a for a in reversed(here) if a not in found)
    return found


def read_brenda(path: str | Path) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Parse the BRENDA flat file into ``{accession: [EC, ...]}`` and parse statistics."""
    note_compression(path)
    pairs: dict[str, list[str]] = {}
    ec: str | None = None
    field: tuple[str, int, list[str]] | None = None  # (code, line, text parts)
    stats = {"entries": 0, "entries_skipped": 0, "protein_lines": 0, "protein_lines_with_accession": 0}
    skipped: list[str] = []
    any_line = False

    def flush() -> None:
        if field is None or field[0] != "PR" or ec is None:
            return
        stats["protein_lines"] += 1
        accs = protein_accessions(" ".join(field[2]))
        if accs:
            stats["protein_lines_with_accession"] += 1
        for a in accs:
            ecs = pairs.setdefault(a, [])
            if ec not in ecs:
                ecs.append(ec)

    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        any_line = True
        if line[0] in " \t":
            if field is not None:
                field[2].append(line.strip())
            continue
        flush()
        field = None
        if line.startswith("///"):
            ec = None
            continue
        code, sep, value = line.partition("\t")
        code = code.strip()
        if code == "ID":
            stats["entries"] += 1
            ec_text = value.split()[0] if value.split() else ""
            try:
                ec = str(parse_ec(ec_text))
            except ValueError:
                # BRENDA-internal numbers (e.g. 2.3.1.B1) and removed entries have no EC.
                ec = None
                stats["entries_skipped"] += 1
                skipped.append(ec_text)
            continue
        if code == "PR":
            if not sep:
                raise InputError(
                    f"{path}, line {lineno}: PR line without a TAB after the code: {line[:80]!r}"
                )
            if stats["entries"] == 0:
                raise InputError(
                    f"{path}, line {lineno}: PR line before the first ID line (not a BRENDA file?)"
                )
            field = ("PR", lineno, [value])
        elif sep:
            field = (code, lineno, [value])
    flush()
    if not any_line:
        raise InputError(f"{path}: empty file")
    if stats["entries"] == 0:
        raise InputError(f"{path}: no 'ID<TAB>EC' lines (not a BRENDA flat file?)")
    if not pairs:
        raise InputError(
            f"{path}: {stats['protein_lines']} protein (PR) lines but none names a UniProt accession"
        )
    stats["skipped_ids_examples"] = skipped[:20]
    return pairs, stats


def brenda_proteins(path: str | Path, sequences: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The proteins table from BRENDA protein lines and a sequences file, with statistics."""
    pairs, stats = read_brenda(path)
    df, join = join_sequences(pairs, read_sequences(sequences), str(path), str(sequences))
    return df, {"source": "brenda", "brenda": str(path), "sequences": str(sequences), **stats, **join}
