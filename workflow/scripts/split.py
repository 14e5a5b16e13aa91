"""Train/val/test split of data/labels.tsv (stratified random, or homology-aware on the full-length
sequences of data/proteins.tsv)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_split

job = start(snakemake)
run_split(
    snakemake.input.labels,
    job.params,
    snakemake.output[0],
    threads=snakemake.threads,
    workdir=snakemake.resources.tmpdir,
    proteins_path=snakemake.input.proteins,
)
