"""Leakage report of data/split.tsv: class counts per split, shared clusters, max identity."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_leakage

job = start(snakemake)
run_leakage(
    snakemake.input[0],
    job.params,
    snakemake.output[0],
    threads=snakemake.threads,
    workdir=snakemake.resources.tmpdir,
)
