"""Fine-tune ESM-2 on data/split.tsv; writes best.pt, metrics.json, training_curve.tsv, run_metadata.json."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.finetune import run_finetune

job = start(snakemake, model=True)  # threads, seed (fine_tune reseeds with train.deterministic)
run_finetune(snakemake.input.split, snakemake.input.classes, job.params, out=dict(snakemake.output.items()))
