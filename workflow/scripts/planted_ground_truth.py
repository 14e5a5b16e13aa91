"""One planting's ground truth: S rolled back, everything else rolled back, each method's top |S|."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.planted import run_ground_truth

job = start(snakemake, model=True)
run_ground_truth(
    checkpoint=snakemake.input.model,
    base=snakemake.input.base,
    split_path=snakemake.input.split,
    units_path=snakemake.input.units,
    scores=dict(zip(job.params["methods"], snakemake.input.scores, strict=True)),
    variant=snakemake.wildcards.variant,
    replicate=int(snakemake.wildcards.replicate),
    settings=job.params,
    out=dict(snakemake.output.items()),
    device=job.device,
)
