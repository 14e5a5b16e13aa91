"""Train the workflow's SAE on the stream entering one layer of one replicate's fine-tuned model."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.features import run_train_sae

job = start(snakemake, model=True)
run_train_sae(
    checkpoint=snakemake.input.model,
    split_path=snakemake.input.split,
    layer=int(snakemake.wildcards.layer),
    settings=job.params,
    out_path=snakemake.output[0],
    device=job.device,
)
