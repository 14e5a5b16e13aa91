"""Curve statistics (gaps to random, paired tests) of a variant's plantings under the pretrained fill."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.planted_stats import run_planted_curves
from kneurons.jobs.stats import split_replicates

job = start(snakemake)
n = job.params["replicates"]
run_planted_curves(
    tables=split_replicates(snakemake.input.tables, n, "ablation tables"),
    predictions=split_replicates(snakemake.input.preds, n, "prediction files"),
    settings=job.params,
    out=dict(snakemake.output.items()),
)
