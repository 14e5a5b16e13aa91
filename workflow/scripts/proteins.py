"""Normalise the selected source into the contract table data/proteins.tsv, and say what reading
the source rewrote (provenance/source_report.json, which the labels stage reads)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.local import read_proteins, source_report
from kneurons.jobs import start
from kneurons.tables import write_proteins, write_source_report

job = start(snakemake)
log = job.log
source = snakemake.input[0]
fmt = "fasta" if job.params["source"] == "fasta" else "tsv"
proteins = read_proteins(source, fmt)
report = source_report(source, fmt, proteins)
write_source_report(snakemake.output.report, report)
write_proteins(proteins, snakemake.output.proteins)
log.info("%s: %d proteins (%d with EC numbers)", source, len(proteins), (proteins["ec"] != "").sum())
log.info("%s: normalised %s", source, report["normalised"])
