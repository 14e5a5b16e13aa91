"""New synthetic proteins carrying the training data's planted motifs: an external test set."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.external import run_external_synthetic

job = start(snakemake)
run_external_synthetic(job.params, snakemake.output[0])
