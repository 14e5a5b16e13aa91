"""Score the six modules of each layer of one chunk by one method (one (method, layers) job)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.score import run_score_job

job = start(snakemake, model=True)
run_score_job(
    checkpoint=snakemake.input.model,
    scoring_set_path=snakemake.input.scoring_set,
    method=snakemake.wildcards.method,
    layers=range(int(snakemake.wildcards.first), int(snakemake.wildcards.last) + 1),
    settings=job.params,
    out_path=snakemake.output[0],
    device=job.device,
)
