"""Normalise the selected source into the contract table data/proteins.tsv, and say what reading
the source rewrote (provenance/source_report.json, which the labels stage reads)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_proteins

job = start(snakemake)
run_proteins(
    snakemake.input[0], job.params, proteins_out=snakemake.output.proteins, report_out=snakemake.output.report
)
