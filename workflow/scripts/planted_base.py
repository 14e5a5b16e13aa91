"""The planted benchmark's base model: the configured backbone with a fresh head, never trained."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.planted import run_planted_base

job = start(snakemake, model=True)
run_planted_base(snakemake.input.classes, job.params, snakemake.output[0])
