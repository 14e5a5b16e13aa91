"""Data acquisition: every source yields the normalised proteins table (see ``PROTEIN_COLUMNS``)."""

#: Columns every source writes (``ec``: UniProt style, ``; ``-separated, empty for non-enzymes).
PROTEIN_COLUMNS = ("accession", "ec", "sequence")
#: Optional columns carried through labels and splits when a source has them.
#: ``active_site`` / ``binding_site`` hold UniProt's feature text; ``motif_sites`` holds 1-based
#: residue positions joined by ``;`` (the synthetic generator's planted motifs).
OPTIONAL_COLUMNS = ("protein_name", "organism", "length", "active_site", "binding_site", "motif_sites")
