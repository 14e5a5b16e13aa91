"""Gather the random baseline's per-seed ablation parts, in seed order, into one table and predictions."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.gather import run_gather_ablation_seeds

job = start(snakemake)
run_gather_ablation_seeds(
    tables=list(snakemake.input.tables),
    predictions=list(snakemake.input.preds),
    table_out=snakemake.output.table,
    pred_out=snakemake.output.pred,
)
