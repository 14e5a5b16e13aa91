"""Leakage report of data/split.tsv: class counts per split, shared clusters, max identity (of the
full-length sequences of data/proteins.tsv)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_leakage

job = start(snakemake)
run_leakage(
    snakemake.input.split,
    job.params,
    snakemake.output[0],
    threads=snakemake.threads,
    workdir=snakemake.resources.tmpdir,
    proteins_path=snakemake.input.proteins,
)
