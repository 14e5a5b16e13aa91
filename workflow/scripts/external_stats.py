"""Curves, gap to random and the intact model's metrics on one external set, pooled over replicates."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.external import run_external_stats
from kneurons.jobs.stats import split_replicates

job = start(snakemake)
n = job.params["replicates"]
run_external_stats(
    tables=split_replicates(snakemake.input.tables, n, "ablation tables"),
    predictions=split_replicates(snakemake.input.preds, n, "prediction files"),
    settings=job.params,
    out=dict(snakemake.output),
)
