"""Residue-level annotations: UniProt feature text and synthetic motif sites as 1-based positions.

UniProt's TSV export writes each feature column (``Active site`` = ``ft_act_site``,
``Binding site`` = ``ft_binding``) as one string of ``"; "``-joined features, each a key and a
location followed by qualifiers, e.g.::

    ACT_SITE 95; /note="Proton acceptor"; /evidence="ECO:0000255|PROSITE-ProRule:PRU10001"
    BINDING 120..125; /ligand="NAD(+)"; /ligand_id="ChEBI:CHEBI:57540"; BINDING 187; /ligand="NAD(+)"

Locations are ``N`` or ``A..B`` (inclusive); fuzzy ends (``<1``, ``>300``) keep their number
and unknown ends (``?``, ``?12``) make the feature's extent unknown, so it is skipped and
counted. Qualifier values are quoted and may contain ``;``, so quoted text is blanked before
the features are located. The normalised tables carry this text in ``active_site`` and
``binding_site``; the synthetic generator writes planted positions to ``motif_sites``
(``"3;4;5"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from kneurons.errors import InputError

#: Columns of the normalised tables that carry residue annotations, and how each is written.
SITE_COLUMNS: dict[str, str] = {
    "active_site": "uniprot",
    "binding_site": "uniprot",
    "motif_sites": "positions",
}

#: UniProt feature keys whose locations are residue sites (the keys of the columns above and a few
#: close relatives that users may export into the same columns).
FEATURE_KEYS: tuple[str, ...] = ("ACT_SITE", "BINDING", "SITE", "METAL", "NP_BIND", "CA_BIND", "DNA_BIND")

_QUOTED = re.compile(r'"[^"]*"')
_END = r"(?:[<>]?\d+|\?\d*)"
_FEATURE = re.compile(rf"(?:^|;)\s*(?P<key>[A-Z_]+)\s+(?P<start>{_END})(?:\.\.(?P<stop>{_END}))?\s*(?=;|$)")
_QUALIFIER = re.compile(r"^\s*/\w+=")


@dataclass
class ParseStats:
    """What the parser skipped, so a stage can report it instead of hiding it."""

    features: int = 0
    unknown_location: int = 0
    beyond_sequence: int = 0
    skipped_keys: dict[str, int] = field(default_factory=dict)


def _end(token: str) -> int | None:
    token = token.lstrip("<>")
    return None if token.startswith("?") else int(token)


def parse_uniprot_sites(
    text: object,
    keys: Iterable[str] | None = FEATURE_KEYS,
    length: int | None = None,
    source: str = "feature text",
    stats: ParseStats | None = None,
) -> list[int]:
    """Sorted unique 1-based residue positions of the features in one UniProt feature string.

    ``keys`` restricts the feature keys (``None`` accepts any key). Ranges expand inclusively;
    features with an unknown end (``?``) are skipped; positions beyond ``length`` (a cropped
    sequence) are dropped. Both are counted in ``stats``. Empty or missing text gives ``[]``.
    Raises InputError naming ``source`` when the text holds no recognisable feature.
    """
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return []
    raw = str(text).strip()
    if not raw:
        return []
    stats = stats if stats is not None else ParseStats()
    wanted = None if keys is None else {k.upper() for k in keys}
    blanked = _QUOTED.sub('""', raw)
    positions: set[int] = set()
    found = 0
    for part in blanked.split(";"):
        part = part.strip()
        if not part or _QUALIFIER.match(part):
            continue
        m = _FEATURE.match(";" + part)
        if m is None:
            raise InputError(f"{source}: cannot parse UniProt feature {part!r} in {raw[:120]!r}")
        found += 1
        key = m.group("key")
        if wanted is not None and key not in wanted:
            stats.skipped_keys[key] = stats.skipped_keys.get(key, 0) + 1
            continue
        stats.features += 1
        start = _end(m.group("start"))
        stop = _end(m.group("stop")) if m.group("stop") else start
        if start is None or stop is None:
            stats.unknown_location += 1
            continue
        if stop < start or start < 1:
            raise InputError(f"{source}: invalid location {m.group(0).strip(';').strip()!r}")
        for pos in range(start, stop + 1):
            if length is not None and pos > length:
                stats.beyond_sequence += 1
                continue
            positions.add(pos)
    if not found:
        raise InputError(f"{source}: no UniProt feature (e.g. 'ACT_SITE 95') in {raw[:120]!r}")
    return sorted(positions)


def parse_position_list(text: object, length: int | None = None, source: str = "positions") -> list[int]:
    """Sorted unique 1-based positions from ``"3;4;5"`` (``,`` and spaces also separate)."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return []
    out: set[int] = set()
    for tok in re.split(r"[;,\s]+", str(text).strip()):
        if not tok:
            continue
        if not tok.isdigit() or int(tok) < 1:
            raise InputError(f"{source}: {tok!r} is not a 1-based residue position")
        pos = int(tok)
        if length is None or pos <= length:
            out.add(pos)
    return sorted(out)


def annotation_columns(df: pd.DataFrame) -> list[str]:
    """The site columns of ``df`` that hold at least one non-empty value."""
    cols = []
    for col in SITE_COLUMNS:
        if col in df.columns:
            values = df[col].dropna().astype(str).str.strip()
            if (values != "").any():
                cols.append(col)
    return cols


def site_positions(
    df: pd.DataFrame,
    columns: Iterable[str] | None = None,
    source: str = "table",
) -> tuple[list[list[int] | None], ParseStats]:
    """Per protein, the union of annotated 1-based positions over ``columns`` (default: all present).

    A protein without any annotated position gets ``None`` (unannotated, not "no site"): a
    missing annotation in Swiss-Prot does not mean the residue is not a site, so such proteins
    must be left out of site statistics rather than counted as negatives.
    Row numbers in error messages count the header as line 1.
    """
    columns = list(columns) if columns is not None else annotation_columns(df)
    unknown = [c for c in columns if c not in SITE_COLUMNS]
    if unknown:
        raise InputError(f"{source}: unknown site column(s) {unknown}; known: {list(SITE_COLUMNS)}")
    stats = ParseStats()
    lengths = df["sequence"].str.len().tolist() if "sequence" in df.columns else [None] * len(df)
    result: list[list[int] | None] = []
    for i, (row, length) in enumerate(zip(df.itertuples(index=False), lengths, strict=False)):
        pos: set[int] = set()
        for col in columns:
            if col not in df.columns:
                continue
            value = getattr(row, col)
            where = f"{source} line {i + 2}, column {col}"
            if SITE_COLUMNS[col] == "uniprot":
                pos.update(parse_uniprot_sites(value, length=length, source=where, stats=stats))
            else:
                pos.update(parse_position_list(value, length=length, source=where))
        result.append(sorted(pos) if pos else None)
    return result, stats
