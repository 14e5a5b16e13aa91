"""The neuron atlas: one self-contained HTML page from the result tables."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.atlas import run_atlas_job

job = start(snakemake)
run_atlas_job(dict(snakemake.input.items()), job.params, snakemake.output.html)
