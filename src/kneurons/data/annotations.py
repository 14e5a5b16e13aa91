"""Residue-level annotations: UniProt feature text and synthetic motif sites as 1-based positions.

UniProt's TSV export writes each feature column (``Active site`` = ``ft_act_site``,
``Binding site`` = ``ft_binding``) as one string of ``"; "``-joined features, each a key and a
location followed by qualifiers, e.g.::

    ACT_SITE 95; /note="Proton acceptor"; /evidence="ECO:0000255|PROSITE-ProRule:PRU10001"
    BINDING 120..125; /ligand="NAD(+)"; /ligand_id="ChEBI:CHEBI:57540"; BINDING 187; /ligand="NAD(+)"

Locations are ``N`` or ``A..B`` (inclusive); fuzzy ends (``<1``, ``>300``) keep their number
and unknown ends (``?``, ``?12``) make the feature's extent unknown, so it is skipped and
counted. Qualifier values are quoted and may contain ``;``, so quoted text is masked before
the features are located (``parse_uniprot_features`` keeps each feature's qualifiers). The
normalised tables carry this text in ``active_site`` and ``binding_site``, and in one column per
further feature type of ``FEATURE_COLUMNS`` (domain, region, helix, ...: the concepts of
``kneurons.concepts``); the synthetic generator writes planted positions to ``motif_sites``
(``"3;4;5"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
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


@dataclass(frozen=True)
class FeatureColumn:
    """One UniProt feature type as a column of the normalised tables, and how its features make concepts.

    ``column``: the normalised tables' name; ``header``: the column's header in UniProt's TSV
    export; ``field``: its UniProt REST return field; ``key``: the feature key its text uses;
    ``label``: the concept's name for people; ``group_by``: the qualifier whose value names a
    sub-concept (``ligand`` for binding sites, ``note`` for domains; None: the feature type is one
    concept); ``paired``: ``A..B`` names two bonded residues, not a range (disulfide bonds);
    ``catalytic``: a catalytic concept (active and binding sites).
    """

    column: str
    header: str
    field: str
    key: str
    label: str
    group_by: str | None
    paired: bool = False
    catalytic: bool = False


#: The per-residue UniProt feature types the workflow reads (REST fields and TSV headers as UniProt
#: writes them, https://www.uniprot.org/help/return_fields; the TSV names the feature-table domain
#: column "Domain [FT]", "Domain [CC]" being the comment). Grouping as InterPLM (Simon & Zou 2025,
#: interplm/concept/uniprotkb_concept_constants.py): binding sites by ligand, the others by note.
FEATURE_COLUMNS: tuple[FeatureColumn, ...] = (
    FeatureColumn(
        "active_site", "Active site", "ft_act_site", "ACT_SITE", "Active site", "note", catalytic=True
    ),
    FeatureColumn(
        "binding_site", "Binding site", "ft_binding", "BINDING", "Binding site", "ligand", catalytic=True
    ),
    FeatureColumn("site", "Site", "ft_site", "SITE", "Site", "note"),
    FeatureColumn("motif", "Motif", "ft_motif", "MOTIF", "Motif", "note"),
    FeatureColumn("region", "Region", "ft_region", "REGION", "Region", "note"),
    FeatureColumn("domain", "Domain [FT]", "ft_domain", "DOMAIN", "Domain", "note"),
    FeatureColumn("zinc_finger", "Zinc finger", "ft_zn_fing", "ZN_FING", "Zinc finger", "note"),
    FeatureColumn("dna_binding", "DNA binding", "ft_dna_bind", "DNA_BIND", "DNA binding", "note"),
    FeatureColumn(
        "disulfide_bond", "Disulfide bond", "ft_disulfid", "DISULFID", "Disulfide bond", None, paired=True
    ),
    FeatureColumn(
        "modified_residue", "Modified residue", "ft_mod_res", "MOD_RES", "Modified residue", "note"
    ),
    FeatureColumn("signal_peptide", "Signal peptide", "ft_signal", "SIGNAL", "Signal peptide", None),
    FeatureColumn("transmembrane", "Transmembrane", "ft_transmem", "TRANSMEM", "Transmembrane", "note"),
    FeatureColumn("helix", "Helix", "ft_helix", "HELIX", "Helix", None),
    FeatureColumn("beta_strand", "Beta strand", "ft_strand", "STRAND", "Beta strand", None),
    FeatureColumn("turn", "Turn", "ft_turn", "TURN", "Turn", None),
)
#: ``FEATURE_COLUMNS`` by their column name.
FEATURE_COLUMN: dict[str, FeatureColumn] = {c.column: c for c in FEATURE_COLUMNS}

_QUOTED = re.compile(r'"[^"]*"')
_END = r"(?:[<>]?\d+|\?\d*)"
_FEATURE = re.compile(rf"(?:^|;)\s*(?P<key>[A-Z_]+)\s+(?P<start>{_END})(?:\.\.(?P<stop>{_END}))?\s*(?=;|$)")
_QUALIFIER = re.compile(r"^\s*/\w+=")
_QUALIFIER_VALUE = re.compile(r"^\s*/(?P<name>\w+)=(?P<value>.*)$", re.S)
#: A repeat's number at the end of its note ("C2H2-type 2", "WD 3"): copies of one kind are one concept.
_REPEAT_NUMBER = re.compile(r"\s+\d+$")


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


def _missing(text: object) -> bool:
    return text is None or (isinstance(text, float) and pd.isna(text)) or not str(text).strip()


@dataclass
class Feature:
    """One feature of a UniProt feature string: its key, its location (``None`` for an unknown end),
    the location as written (for messages) and its qualifiers (``/ligand="ATP"`` -> ``ligand: ATP``;
    the first value of a qualifier given twice)."""

    key: str
    start: int | None
    stop: int | None
    written: str
    qualifiers: dict[str, str] = field(default_factory=dict)


def _segments(raw: str) -> Iterator[tuple[str, str]]:
    """Each ``;``-separated part of ``raw`` and the same part with quoted text masked, so that a
    ``;`` (or a feature key) inside a quoted qualifier value splits and matches nothing."""
    masked = _QUOTED.sub(lambda m: '"' + "_" * (len(m.group()) - 2) + '"', raw)
    start = 0
    for i, ch in enumerate(masked + ";"):
        if ch == ";":
            yield raw[start:i], masked[start:i]
            start = i + 1


def parse_uniprot_features(text: object, source: str = "feature text") -> list[Feature]:
    """The features of one UniProt feature string, in order, with their qualifiers.

    Empty or missing text gives ``[]``. Raises InputError naming ``source`` for a part that is
    neither a feature (``KEY 12`` or ``KEY 12..30``) nor a qualifier (``/name=value``), and when
    the text holds no feature at all. Locations are not checked here (``feature_span`` does).
    """
    if _missing(text):
        return []
    raw = str(text).strip()
    features: list[Feature] = []
    for part, masked in _segments(raw):
        if not masked.strip():
            continue
        if _QUALIFIER.match(masked):
            q = _QUALIFIER_VALUE.match(part)
            if features and q is not None:
                value = q.group("value").strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                features[-1].qualifiers.setdefault(q.group("name"), value)
            continue
        m = _FEATURE.match(";" + masked.strip())
        if m is None:
            raise InputError(f"{source}: cannot parse UniProt feature {part.strip()!r} in {raw[:120]!r}")
        start = _end(m.group("start"))
        stop = _end(m.group("stop")) if m.group("stop") else start
        features.append(Feature(m.group("key"), start, stop, m.group(0).strip(";").strip()))
    if not features:
        raise InputError(f"{source}: no UniProt feature (e.g. 'ACT_SITE 95') in {raw[:120]!r}")
    return features


def feature_span(feature: Feature, source: str = "feature text") -> tuple[int, int] | None:
    """``(start, stop)`` of a feature (1-based, inclusive), None when an end is unknown (``?``).

    Raises InputError naming ``source`` for a location that ends before it starts or before residue 1.
    """
    if feature.start is None or feature.stop is None:
        return None
    if feature.stop < feature.start or feature.start < 1:
        raise InputError(f"{source}: invalid location {feature.written!r}")
    return feature.start, feature.stop


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
    stats = stats if stats is not None else ParseStats()
    wanted = None if keys is None else {k.upper() for k in keys}
    positions: set[int] = set()
    for feature in parse_uniprot_features(text, source):
        if wanted is not None and feature.key not in wanted:
            stats.skipped_keys[feature.key] = stats.skipped_keys.get(feature.key, 0) + 1
            continue
        stats.features += 1
        span = feature_span(feature, source)
        if span is None:
            stats.unknown_location += 1
            continue
        for pos in range(span[0], span[1] + 1):
            if length is not None and pos > length:
                stats.beyond_sequence += 1
                continue
            positions.add(pos)
    return sorted(positions)


def concept_group(feature: Feature, column: FeatureColumn) -> str:
    """The sub-concept a feature belongs to: its ``column.group_by`` qualifier up to the first ``;``,
    a repeat's number dropped (``C2H2-type 2`` -> ``C2H2-type``); ``""`` for an ungrouped column or
    a feature without that qualifier."""
    if column.group_by is None:
        return ""
    value = feature.qualifiers.get(column.group_by, "").split(";")[0].strip()
    return _REPEAT_NUMBER.sub("", value)


def column_instances(
    text: object,
    column: FeatureColumn,
    length: int | None = None,
    source: str = "feature text",
    stats: ParseStats | None = None,
) -> list[tuple[str, list[int]]]:
    """Each feature of ``column``'s key in one protein's text as ``(group, positions)``: one
    annotation instance (a domain, a binding site of one ligand), its sub-concept
    (``concept_group``) and its sorted 1-based residues.

    A range covers every residue; a paired feature (a disulfide bond ``30..95``) its two residues.
    Features of other keys, with an unknown end, or wholly beyond ``length`` give no instance;
    each is counted in ``stats`` (residues beyond ``length`` one by one).
    """
    stats = stats if stats is not None else ParseStats()
    out: list[tuple[str, list[int]]] = []
    for feature in parse_uniprot_features(text, source):
        if feature.key != column.key:
            stats.skipped_keys[feature.key] = stats.skipped_keys.get(feature.key, 0) + 1
            continue
        stats.features += 1
        span = feature_span(feature, source)
        if span is None:
            stats.unknown_location += 1
            continue
        ends = sorted({span[0], span[1]}) if column.paired else range(span[0], span[1] + 1)
        positions = [p for p in ends if length is None or p <= length]
        stats.beyond_sequence += len(ends) - len(positions)
        if positions:
            out.append((concept_group(feature, column), positions))
    return out


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
