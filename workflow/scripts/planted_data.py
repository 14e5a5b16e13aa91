"""The planted task's proteins (the parity of its motifs), split, class table and scoring set."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.planted_stats import run_planted_data

job = start(snakemake)
run_planted_data(job.params, out=dict(snakemake.output.items()))
