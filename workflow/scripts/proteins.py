"""Normalise the selected source into the contract table data/proteins.tsv."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.local import read_proteins
from kneurons.jobs import start
from kneurons.tables import write_proteins

job = start(snakemake)
log = job.log
fmt = "fasta" if job.params["source"] == "fasta" else "tsv"
proteins = read_proteins(snakemake.input[0], fmt)
write_proteins(proteins, snakemake.output[0])
log.info(
    "%s: %d proteins (%d with EC numbers)", snakemake.input[0], len(proteins), (proteins["ec"] != "").sum()
)
