"""Statistics on all ablation jobs: curve summaries, gap to random, paired tests, density."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.stats import run_stats

job = start(snakemake)
run_stats(
    tables=list(snakemake.input.tables),
    predictions=list(snakemake.input.preds),
    score_paths=dict(zip(job.params["methods"], snakemake.input.scores, strict=True)),
    settings=job.params,
    out=dict(snakemake.output),
)
