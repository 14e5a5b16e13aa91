"""EC labels, class table and label report from data/proteins.tsv."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.labels import extract_labels
from kneurons.data.local import read_proteins
from kneurons.io import write_json_atomic, write_table_atomic
from kneurons.jobs import start

job = start(snakemake)
log = job.log
proteins = read_proteins(snakemake.input.proteins, "tsv")
enzclass = snakemake.input.enzclass[0] if snakemake.input.enzclass else None
labels, classes, report = extract_labels(
    proteins, job.params["labels"], enzclass, source=snakemake.input.proteins
)
write_json_atomic(snakemake.output.report, report)
write_table_atomic(classes, snakemake.output.classes)
write_table_atomic(labels, snakemake.output.labels)
log.info("labels: %d proteins in %d classes %s", len(labels), len(classes), report["output"]["class_counts"])
