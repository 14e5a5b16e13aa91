"""EC <-> UniProt pairs from a local BRENDA flat file, joined with the sequences file."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_download_brenda

job = start(snakemake)
run_download_brenda(
    brenda=snakemake.input.brenda[0],
    sequences=snakemake.input.sequences[0],
    data_out=snakemake.output.data,
    meta_out=snakemake.output.meta,
)
