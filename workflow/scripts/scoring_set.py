"""Pick the scoring subset (config score.split / max_sequences, stratified by label, seeded)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_scoring_set

job = start(snakemake)
run_scoring_set(snakemake.input.split, snakemake.input.classes, job.params, snakemake.output[0])
