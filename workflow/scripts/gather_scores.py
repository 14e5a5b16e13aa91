"""Gather the score tables of one method's layer chunks into one table (provenance must agree)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.gather import run_gather_scores

job = start(snakemake)
run_gather_scores(list(snakemake.input), snakemake.output[0])
