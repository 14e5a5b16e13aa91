"""Synthetic planted-motif proteins (the embedded default's data) and the motif table."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_download_synthetic

job = start(snakemake)
run_download_synthetic(job.params, proteins_out=snakemake.output.proteins, motifs_out=snakemake.output.motifs)
