"""Score the features of the attached SAEs by one method (one (replicate, method) job)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.features import sae_specs
from kneurons.jobs.score import run_score_job

job = start(snakemake, model=True)
run_score_job(
    checkpoint=snakemake.input.model,
    scoring_set_path=snakemake.input.scoring_set,
    method=snakemake.wildcards.method,
    layers=None,
    settings=job.params,
    out_path=snakemake.output[0],
    device=job.device,
    saes=sae_specs(job.params["units"], snakemake.input.saes),
)
