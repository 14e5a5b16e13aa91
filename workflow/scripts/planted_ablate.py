"""The run's ablation grid on one planting, under the pretrained fill with the base as the reference."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.planted import run_planted_ablation

job = start(snakemake, model=True)
run_planted_ablation(
    checkpoint=snakemake.input.model,
    base=snakemake.input.base,
    split_path=snakemake.input.split,
    scores_path=snakemake.input.scores,
    method=snakemake.wildcards.method,
    settings=job.params,
    out={"tables": list(snakemake.output.tables), "preds": list(snakemake.output.preds)},
    device=job.device,
)
