"""Claim 6: the smallest fraction of units keeping the accuracy, SAE features against neurons."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.stats import run_compactness, split_replicates

job = start(snakemake)
n = job.params["replicates"]
run_compactness(
    neuron_tables=split_replicates(snakemake.input.neuron_tables, n, "neuron ablation tables"),
    neuron_preds=split_replicates(snakemake.input.neuron_preds, n, "neuron prediction files"),
    feature_tables=split_replicates(snakemake.input.feature_tables, n, "feature ablation tables"),
    feature_preds=split_replicates(snakemake.input.feature_preds, n, "feature prediction files"),
    settings=job.params,
    out=dict(snakemake.output),
)
