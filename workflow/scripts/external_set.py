"""Label one external test set against the model's classes, list what was dropped and why, and report
its overlap with training (full-length sequences: data/proteins.tsv holds the training proteins')."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.external import run_external_set

job = start(snakemake)
run_external_set(
    name=snakemake.wildcards.set,
    path=snakemake.input.source,
    split_path=snakemake.input.split,
    classes_path=snakemake.input.classes,
    proteins_path=snakemake.input.proteins,
    settings=job.params,
    out=dict(snakemake.output),
    threads=snakemake.threads,
)
