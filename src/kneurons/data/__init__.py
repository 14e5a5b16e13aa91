"""Data acquisition: every source yields the normalised proteins table (see ``PROTEIN_COLUMNS``)."""

from kneurons.data.annotations import FEATURE_COLUMNS

#: Columns every source writes (``ec``: UniProt style, ``; ``-separated, empty for non-enzymes).
PROTEIN_COLUMNS = ("accession", "ec", "sequence")
#: Optional columns carried through labels and splits when a source has them.
#: ``active_site`` / ``binding_site`` hold UniProt's feature text; ``motif_sites`` holds 1-based
#: residue positions joined by ``;`` (the synthetic generator's planted motifs). The other
#: per-residue UniProt feature types (``kneurons.data.annotations.FEATURE_COLUMNS``: site, motif,
#: region, domain, ..., helix) follow, in that table's order.
OPTIONAL_COLUMNS = (
    "protein_name",
    "organism",
    "length",
    "active_site",
    "binding_site",
    "motif_sites",
    *(c.column for c in FEATURE_COLUMNS if c.column not in ("active_site", "binding_site")),
)
