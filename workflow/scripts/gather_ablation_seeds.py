"""Gather the random baseline's per-seed ablation parts, in seed order, into one table and predictions."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.tables import gather_results

job = start(snakemake)
gather_results(
    tables=list(snakemake.input.tables),
    predictions=list(snakemake.input.preds),
    table_out=snakemake.output.table,
    pred_out=snakemake.output.pred,
)
job.log.info("gathered %d seed parts into %s", len(snakemake.input.tables), snakemake.output.table)
