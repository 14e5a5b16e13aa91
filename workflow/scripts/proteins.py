"""Normalise the selected source into the contract table data/proteins.tsv."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.local import read_proteins
from kneurons.data.runlog import script_logging
from kneurons.tables import write_proteins

log = script_logging(snakemake.log[0])
fmt = "fasta" if snakemake.params.source == "fasta" else "tsv"
proteins = read_proteins(snakemake.input[0], fmt)
write_proteins(proteins, snakemake.output[0])
log.info(
    "%s: %d proteins (%d with EC numbers)", snakemake.input[0], len(proteins), (proteins["ec"] != "").sum()
)
