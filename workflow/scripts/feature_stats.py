"""Statistics on the SAE feature ablations of every replicate: curve summaries, gap to random
features, paired tests."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.stats import run_feature_stats, split_replicates

job = start(snakemake)
n = job.params["replicates"]
run_feature_stats(
    tables=split_replicates(snakemake.input.tables, n, "feature ablation tables"),
    predictions=split_replicates(snakemake.input.preds, n, "feature prediction files"),
    settings=job.params,
    out=dict(snakemake.output),
)
