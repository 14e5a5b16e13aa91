"""Train/val/test split of data/labels.tsv (stratified random or homology-aware)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_split

job = start(snakemake)
run_split(
    snakemake.input[0],
    job.params,
    snakemake.output[0],
    threads=snakemake.threads,
    workdir=snakemake.resources.tmpdir,
)
