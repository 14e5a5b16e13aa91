"""Label one external test set against the model's classes and report its overlap with training."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.external import run_external_set

job = start(snakemake)
run_external_set(
    name=snakemake.wildcards.set,
    path=snakemake.input.source,
    split_path=snakemake.input.split,
    classes_path=snakemake.input.classes,
    settings=job.params,
    out_proteins=snakemake.output.proteins,
    out_report=snakemake.output.report,
    threads=snakemake.threads,
)
