"""EC labels, class table, label report and the dropped proteins from data/proteins.tsv."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.labels import LabelPolicyError, label_proteins
from kneurons.jobs import start
from kneurons.tables import (
    read_proteins_table,
    read_source_report,
    write_classes,
    write_dropped,
    write_label_report,
    write_labels,
)

job = start(snakemake)
log = job.log
proteins = read_proteins_table(snakemake.input.proteins)
source = read_source_report(snakemake.input.source)
enzclass = snakemake.input.enzclass[0] if snakemake.input.enzclass else None
try:
    result = label_proteins(
        proteins, job.params["labels"], enzclass, source=snakemake.input.proteins, origin=source["file"]
    )
except LabelPolicyError as exc:
    # Snakemake removes a failed job's outputs but keeps its logs: the dropped proteins go there.
    write_dropped(exc.dropped, snakemake.log.dropped)
    raise LabelPolicyError(f"{exc}; dropped proteins and why: {snakemake.log.dropped}", exc.dropped) from None
result.report["source"] = source
write_dropped(result.dropped, snakemake.log.dropped)
write_dropped(result.dropped, snakemake.output.dropped)
write_label_report(snakemake.output.report, result.report)
write_classes(result.classes, snakemake.output.classes)
write_labels(result.labels, snakemake.output.labels)
log.info(
    "labels: %d proteins in %d classes %s; %d dropped (%s)",
    len(result.labels),
    len(result.classes),
    result.report["output"]["class_counts"],
    len(result.dropped),
    snakemake.output.dropped,
)
