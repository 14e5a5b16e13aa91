"""Local inputs: a UniProt TSV export and FASTA files with EC numbers in the headers.

These are first-class inputs (compute nodes of clusters are often offline).

* **TSV** (plain or gzip): a UniProt export (``Entry``, ``EC number``, ``Sequence`` required;
  ``Length``, ``Protein names``, ``Organism``, ``Active site``, ``Binding site`` and the other
  per-residue feature columns of ``kneurons.data.annotations.FEATURE_COLUMNS`` carried when
  present), or a table that already uses the contract names (``accession``, ``ec``,
  ``sequence``). Other columns are ignored. Tab- or comma-separated (the delimiter comes from the
  header line, whatever the file's name: ``DELIMITER_RULE``), one header line; fields may be
  quoted the way spreadsheet programs save them (``"..."``, ``""`` for a quote inside, the
  csv module's rules; one record per line), and empty trailing columns are ignored.
* **FASTA** (plain or gzip): the accession is the UniProt one in ``>sp|P12345|NAME_HUMAN ...``
  (or ``tr|``), otherwise the first word of the header (``>P12345 ...``). EC numbers follow
  ``EC=`` anywhere in the header: ``EC=1.1.1.1``, ``EC=1.1.1.1;2.3.4.5`` or
  ``EC=1.1.1.1; 2.3.4.5``; a header without ``EC=`` is a non-enzyme. For UniProt headers
  the protein name (text before ``OS=``) and organism (``OS=``) are kept.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import logging
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.data import OPTIONAL_COLUMNS, PROTEIN_COLUMNS
from kneurons.data.annotations import FEATURE_COLUMNS
from kneurons.data.normalise import NORMALISED, VALID_RESIDUES, normalise_proteins
from kneurons.errors import InputError

log = logging.getLogger(__name__)

#: UniProt TSV headers (REST ``format=tsv``) -> contract column names.
UNIPROT_HEADERS: dict[str, str] = {
    "Entry": "accession",
    "EC number": "ec",
    "Sequence": "sequence",
    "Length": "length",
    "Protein names": "protein_name",
    "Organism": "organism",
    "Active site": "active_site",
    "Binding site": "binding_site",
    # the other per-residue feature columns (Site, Motif, Region, Domain [FT], ..., Helix): concepts
    **{c.header: c.column for c in FEATURE_COLUMNS},
}
_CONTRACT = set(PROTEIN_COLUMNS) | set(OPTIONAL_COLUMNS)
_SEQ_LINE_RE = re.compile(f"[^{''.join(sorted(VALID_RESIDUES))}*]")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _check_not_utf16(path: Path, start: bytes) -> None:
    # Spreadsheet programs on Windows save "Unicode text" as UTF-16; say so instead of
    # reporting an undecodable byte.
    if start[:2] in _UTF16_BOMS:
        raise InputError(
            f"{path}: UTF-16 text (byte-order mark {start[:2].hex(' ').upper()}); save the file as UTF-8"
        )


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed UTF-8 text file (detected by its magic bytes, not its name).

    A UTF-8 byte-order mark is dropped and Windows (CRLF) line endings read as ``\\n``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    note_compression(path)
    gz = _is_gzip(path)
    try:
        with (gzip.open if gz else open)(path, "rb") as raw:
            _check_not_utf16(path, raw.read(2))
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    return gzip.open(path, "rt", encoding="utf-8-sig") if gz else open(path, encoding="utf-8-sig")


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` (1-based, line ending removed) of a plain or gzip file.

    Lines are decoded one at a time so that a non-UTF-8 byte, like a corrupt or truncated
    gzip stream, becomes an InputError naming the file and line. Windows line endings
    (CRLF) and a UTF-8 byte-order mark are accepted: the lines read the same without them.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    lineno = 0
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if lineno == 1:
                    _check_not_utf16(path, raw)
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"{path}, line {lineno}: not UTF-8 text ({exc.reason})") from None
                yield lineno, line.rstrip("\r\n")
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"{path}, after line {lineno}: corrupt or truncated gzip file ({exc})") from None


def sniff_format(path: str | Path) -> str:
    """``fasta`` when the first non-empty line starts with ``>``, else ``tsv``."""
    for _, line in read_lines(path):
        if line.strip():
            return "fasta" if line.lstrip().startswith(">") else "tsv"
    raise InputError(f"{path}: empty file")


#: The delimiters a table may use, by name (sniffed from its header line), in the order they are tried.
DELIMITERS: dict[str, str] = {"\t": "tab", ",": "comma"}
#: How a table's delimiter is chosen (``sniff_delimiter``), in the words of messages and docs/data.md.
DELIMITER_RULE = (
    "a tab when the header line holds one, else a comma when it holds one, else a tab "
    "(no other delimiter is tried)"
)
#: Characters people use as delimiters that are never read as one (named in the error about a header).
_OTHER_DELIMITERS = {";": "semicolon", "|": "vertical bar"}


def header_line(path: str | Path) -> str:
    """The first non-empty line of a file (its header, for a table)."""
    for _, line in read_lines(path):
        if line.strip():
            return line
    raise InputError(f"{path}: empty file")


def sniff_delimiter(header: str) -> str:
    """A table's delimiter, from its header line whatever the file's name (``DELIMITER_RULE``): a tab
    when the line holds one, else a comma when it holds one, else a tab (a one-column header)."""
    return "\t" if "\t" in header or "," not in header else ","


def delimiter_text(line: str, delimiter: str, sniffed: bool) -> str:
    """How a header ``line`` was split, for an error about it: the delimiter used, the rule that chose
    it (``sniffed``) or that it was asked for, and a delimiter the line seems to use that is never read."""
    name = DELIMITERS.get(delimiter, repr(delimiter))
    if not sniffed:
        return f"read as {name}-separated (as asked)"
    text = f"read as {name}-separated (sniffed from the header line: {DELIMITER_RULE})"
    unread = [f"{n} ({c!r})" for c, n in _OTHER_DELIMITERS.items() if c in line and delimiter not in line]
    if unread:
        text += (
            f"; the line holds a {' and a '.join(unread)}, not read as a delimiter: "
            "save the file tab- or comma-separated"
        )
    return text


def split_tsv_line(line: str, where_: str, delimiter: str = "\t") -> list[str]:
    """The fields of one tab-separated (or ``delimiter``-separated) line; quoted fields follow the
    csv module's rules.

    A line without ``"`` is split on the delimiter as it is (the common, fast case); otherwise a
    field that starts with ``"`` ends at the matching ``"``, and ``""`` inside it is one quote. A
    quoted field must close on its line (``where_`` names the line in the error).
    """
    if '"' not in line:
        return line.split(delimiter)
    try:
        return next(csv.reader([line], delimiter=delimiter, quotechar='"', strict=True))
    except csv.Error as exc:
        raise InputError(f"{where_}: unbalanced quotes ({exc}); a quoted field ends on its line") from None


def _drop_trailing_empty(fields: list[str], width: int) -> list[str]:
    # Spreadsheet programs save empty trailing columns as extra tabs; they carry nothing.
    while len(fields) > width and not fields[-1].strip():
        fields = fields[:-1]
    return fields


def read_tsv_rows(path: str | Path, delimiter: str = "\t") -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows and their line numbers of a tab-separated file (blank lines skipped);
    ``delimiter=","`` reads a CSV file the same way.

    Fields may be quoted (``split_tsv_line``); empty columns after the last named one are
    dropped. A row whose field count differs from the header's is an InputError naming the line.
    """
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        fields = split_tsv_line(line, f"{path}, line {lineno}", delimiter)
        if header is None:
            header = [f.strip() for f in _drop_trailing_empty(fields, 1)]
            continue
        fields = _drop_trailing_empty(fields, len(header))
        if len(fields) != len(header):
            sep = "tab" if delimiter == "\t" else repr(delimiter)
            raise InputError(
                f"{path}, line {lineno}: expected {len(header)} {sep}-separated fields "
                f"({', '.join(header)}), found {len(fields)}"
            )
        rows.append(fields)
        lines.append(lineno)
    if header is None:
        raise InputError(f"{path}: empty file")
    return header, rows, lines


def header_hints(header: list[str], wanted: list[str]) -> list[str]:
    """Why header names come close to the ``wanted`` column names without matching them:
    quotes left around a name, another case, or a near miss (one hint per wanted name)."""
    hints = []
    for want in wanted:
        for have in header:
            bare = have.strip().strip("\"'").strip()
            if have != want and bare == want:
                hints.append(f"{have!r} is {want!r} with quotes or spaces around it")
            elif bare.casefold() == want.casefold() and bare != want:
                hints.append(f"{have!r} differs from {want!r} in case (names are case-sensitive)")
            else:
                continue
            break
        else:
            close = difflib.get_close_matches(want, header, n=1, cutoff=0.75)
            if close:
                hints.append(f"{close[0]!r} is close to {want!r} (a typing error?)")
    return hints


def read_uniprot_tsv(path: str | Path, require_ec: bool = True, delimiter: str | None = None) -> pd.DataFrame:
    """Read a UniProt TSV export (or a contract-named table) into the normalised proteins table.

    With ``require_ec=False`` (sequence files for the ExPASy/BRENDA sources) a missing EC
    column is allowed and filled with empty strings. ``delimiter``: ``"\\t"`` or ``","`` (the same
    columns as CSV); None sniffs it from the header line, whatever the file's name (CLEAN's New-392
    and Price-149 ship tab-separated files named ``.csv``).
    """
    sniffed = delimiter is None
    line = header_line(path)
    delimiter = sniff_delimiter(line) if delimiter is None else delimiter
    header, rows, lines = read_tsv_rows(path, delimiter)
    mapped = [UNIPROT_HEADERS.get(h, h if h in _CONTRACT else None) for h in header]
    dupes = {m for m in mapped if m and mapped.count(m) > 1}
    if dupes:
        raise InputError(f"{path}, line 1: column(s) given twice: {', '.join(sorted(dupes))}")
    keep = [i for i, m in enumerate(mapped) if m]
    df = pd.DataFrame([[r[i] for i in keep] for r in rows], columns=[mapped[i] for i in keep], dtype=str)
    if not require_ec and "ec" not in df.columns:
        df["ec"] = ""
    required = [c for c in PROTEIN_COLUMNS if c not in df.columns]
    if required:
        want = {v: k for k, v in UNIPROT_HEADERS.items()}
        names = ", ".join(f"{want[c]!r} (or {c!r})" for c in required)
        hints = header_hints(header, [want[c] for c in required] + required)
        why = f"; {'; '.join(hints)}" if hints else ""
        raise InputError(
            f"{path}, line 1: missing required column(s) {names}; the header has: {', '.join(header)}{why}; "
            f"{delimiter_text(line, delimiter, sniffed)}; the header line with its separators shown: {line!r}"
        )
    if not rows:
        raise InputError(f"{path}: no proteins (the file has a header but no rows)")
    return normalise_proteins(df, str(path), lines)


_UNIPROT_ID_RE = re.compile(r"^(?:sp|tr)\|([^|\s]+)\|(\S*)\s*(.*)$")
_EC_FIELD_RE = re.compile(r"\bEC[=:]\s*([^\s;]+(?:\s*;\s*[^\s;=]+(?=\s|;|$))*)")


def parse_fasta_header(header: str) -> dict[str, str]:
    """Accession, EC numbers (``; ``-joined, unvalidated) and, for UniProt headers, protein
    name and organism of one FASTA header (without the ``>``)."""
    header = header.strip()
    m = _UNIPROT_ID_RE.match(header)
    out: dict[str, str] = {}
    if m:
        out["accession"], desc = m.group(1), m.group(3)
        name = re.split(r"\s(?:OS|OX|GN|PE|SV|EC)=", " " + desc, maxsplit=1)[0].strip()
        if name:
            out["protein_name"] = name
        os_m = re.search(r"\bOS=(.+?)(?=\s(?:OX|GN|PE|SV|EC)=|$)", desc)
        if os_m:
            out["organism"] = os_m.group(1).strip()
    else:
        parts = header.split(None, 1)
        out["accession"] = parts[0] if parts else ""
        desc = parts[1] if len(parts) > 1 else ""
    ecs = [e.strip() for m in _EC_FIELD_RE.finditer(desc) for e in re.split(r"[;,]", m.group(1)) if e.strip()]
    out["ec"] = "; ".join(ecs)
    return out


def read_fasta(path: str | Path) -> pd.DataFrame:
    """Read a FASTA file with EC numbers in the headers into the normalised proteins table."""
    records: list[dict[str, str]] = []
    header_lines: list[int] = []
    chunks: list[str] = []

    def close() -> None:
        if records:
            if not chunks:
                raise InputError(f"{path}, line {header_lines[-1]}: header without sequence")
            records[-1]["sequence"] = "".join(chunks)

    for lineno, line in read_lines(path):
        s = line.strip()
        if not s:
            continue
        if s.startswith(">"):
            close()
            chunks = []
            rec = parse_fasta_header(s[1:])
            if not rec["accession"] or "=" in rec["accession"]:
                raise InputError(f"{path}, line {lineno}: header without an identifier")
            records.append(rec)
            header_lines.append(lineno)
            continue
        if not records:
            raise InputError(f"{path}, line {lineno}: sequence data before the first '>' header (not FASTA?)")
        bad = _SEQ_LINE_RE.search(s.upper())
        if bad:
            raise InputError(
                f"{path}, line {lineno} (accession {records[-1]['accession']}): invalid character "
                f"{bad.group()!r} in the sequence (allowed: the 20 standard amino acids and U, O, B, Z, X)"
            )
        chunks.append(s)
    if not records:
        raise InputError(f"{path}: empty file (no FASTA records)")
    close()
    df = pd.DataFrame(records).fillna("")
    return normalise_proteins(df, str(path), header_lines)


def note_compression(path: str | Path) -> None:
    """Log one line when the name and the content disagree on gzip (the content decides)."""
    path = Path(path)
    if not path.exists():
        return
    gz = _is_gzip(path)
    if path.suffix == ".gz" and not gz:
        log.warning("%s: named .gz but not gzip-compressed; read as plain text", path)
    elif gz and path.suffix != ".gz":
        log.info("%s: gzip-compressed (without a .gz name); decompressed while reading", path)


def read_proteins(path: str | Path, fmt: str = "auto") -> pd.DataFrame:
    """Read a proteins file: ``tsv`` (a table: UniProt export or contract names, tab- or
    comma-separated as its header line shows, whatever the file's name), ``fasta``, or ``auto``
    (FASTA by its first line, else a table)."""
    note_compression(path)
    if fmt == "auto":
        fmt = sniff_format(path)
    if fmt == "fasta":
        return read_fasta(path)
    if fmt == "tsv":
        return read_uniprot_tsv(path)
    raise ValueError(f"unknown format {fmt!r}")


def source_report(path: str | Path, fmt: str, proteins: pd.DataFrame) -> dict[str, Any]:
    """What reading ``path`` gave: the file, its format and compression, the proteins, and how
    many of them normalising rewrote (``normalise_proteins``' counts: lower case, final ``*``,
    ``EC`` prefixes)."""
    return {
        "file": str(path),
        "format": fmt,
        "gzip": _is_gzip(Path(path)),
        "proteins": len(proteins),
        "normalised": dict(proteins.attrs.get(NORMALISED, {})),
    }


def read_sequences(path: str | Path) -> pd.DataFrame:
    """Sequences for the ExPASy/BRENDA sources: a TSV (EC column optional) or FASTA file."""
    note_compression(path)
    if sniff_format(path) == "fasta":
        return read_fasta(path)
    return read_uniprot_tsv(path, require_ec=False)


def join_sequences(
    pairs: dict[str, list[str]], sequences: pd.DataFrame, what: str, sequences_path: str
) -> tuple[pd.DataFrame, dict]:
    """Build the proteins table from ``{accession: [EC, ...]}`` and a sequences table.

    EC numbers come from ``pairs`` (the ExPASy/BRENDA annotation), sequences and carried
    columns from ``sequences``. Accessions without a sequence are counted and listed (first 20).
    """
    seq = sequences.set_index("accession")
    # Accessions may carry an isoform suffix in one file but not the other; match exactly.
    found = [a for a in pairs if a in seq.index]
    missing = [a for a in pairs if a not in seq.index]
    if not found:
        raise InputError(
            f"{sequences_path}: none of the {len(pairs)} accessions from {what} has a sequence here "
            f"(e.g. {', '.join(list(pairs)[:3])})"
        )
    carried = [c for c in OPTIONAL_COLUMNS if c in seq.columns]
    df = pd.DataFrame(
        {
            "accession": found,
            "ec": ["; ".join(pairs[a]) for a in found],
            "sequence": seq.loc[found, "sequence"].to_numpy(),
            **{c: seq.loc[found, c].to_numpy() for c in carried},
        }
    )
    stats = {
        "accessions": len(pairs),
        "with_sequence": len(found),
        "without_sequence": len(missing),
        "without_sequence_examples": missing[:20],
    }
    return normalise_proteins(df, what), stats
