"""Class-specific knowledge neurons: per-class selection, overlap, suppression and specificity."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.characterise import run_class_job

job = start(snakemake, model=True)
run_class_job(
    checkpoint=snakemake.input.model,
    ig_path=snakemake.input.ig,
    split_path=snakemake.input.split,
    settings=job.params,
    out=dict(snakemake.output.items()),
    scoring_set_path=snakemake.input.scoring_set,
    device=job.device,
)
