"""EC <-> Swiss-Prot pairs from ExPASy enzyme.dat, joined with the sequences file."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_download_expasy

job = start(snakemake)
run_download_expasy(
    enzyme_dat=snakemake.input.enzyme_dat[0],
    sequences=snakemake.input.sequences[0],
    data_out=snakemake.output.data,
    meta_out=snakemake.output.meta,
)
