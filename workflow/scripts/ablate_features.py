"""Preserve / suppress the top-f SAE features of one method (global scope) on the test split."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.ablate import run_ablation_job
from kneurons.jobs.features import sae_specs

job = start(snakemake, model=True)
run_ablation_job(
    checkpoint=snakemake.input.model,
    split_path=snakemake.input.split,
    scores_path=snakemake.input.scores,
    method=snakemake.wildcards.method,
    scope="global",
    settings=job.params,
    table_out=snakemake.output.table,
    pred_out=snakemake.output.pred,
    scoring_set_path=snakemake.input.get("scoring_set"),
    device=job.device,
    saes=sae_specs(job.params["units"], snakemake.input.saes),
)
