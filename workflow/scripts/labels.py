"""EC labels, class table, label report and the dropped proteins from data/proteins.tsv."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_labels

job = start(snakemake)
run_labels(
    proteins_path=snakemake.input.proteins,
    source_path=snakemake.input.source,
    enzclass_path=snakemake.input.enzclass[0] if snakemake.input.enzclass else None,
    settings=job.params,
    out=dict(snakemake.output.items()),
    dropped_log=snakemake.log.dropped,
)
