"""Score every layer of a planted model by one method (delta against the base model)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.score import run_score_job

job = start(snakemake, model=True)
run_score_job(
    checkpoint=snakemake.input.model,
    scoring_set_path=snakemake.input.scoring_set,
    method=snakemake.wildcards.method,
    layers=None,  # every layer of the model
    settings=job.params,
    out_path=snakemake.output[0],
    device=job.device,
    reference_checkpoint=snakemake.input.base,
)
