"""EC labels, class table and label report from data/proteins.tsv."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.labels import extract_labels
from kneurons.jobs import start
from kneurons.tables import read_proteins_table, write_classes, write_label_report, write_labels

job = start(snakemake)
log = job.log
proteins = read_proteins_table(snakemake.input.proteins)
enzclass = snakemake.input.enzclass[0] if snakemake.input.enzclass else None
labels, classes, report = extract_labels(
    proteins, job.params["labels"], enzclass, source=snakemake.input.proteins
)
write_label_report(snakemake.output.report, report)
write_classes(classes, snakemake.output.classes)
write_labels(labels, snakemake.output.labels)
log.info("labels: %d proteins in %d classes %s", len(labels), len(classes), report["output"]["class_counts"])
