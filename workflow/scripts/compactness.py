"""Claim 6 at the same site: each SAE stream's bases compared, and every basis's curve statistics."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.stats import run_compactness, split_replicates

job = start(snakemake)
n = job.params["replicates"]
run_compactness(
    tables=split_replicates(snakemake.input.tables, n, "same-site bases tables"),
    predictions=split_replicates(snakemake.input.preds, n, "same-site bases prediction files"),
    settings=job.params,
    out=dict(snakemake.output),
)
