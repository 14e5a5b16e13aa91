"""Statistics on all ablation jobs: curve summaries, gap to random, paired tests, density."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging

from kneurons.jobs.stats import run_stats

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
run_stats(
    tables=list(snakemake.input.tables),
    predictions=list(snakemake.input.preds),
    score_paths=dict(zip(snakemake.params.methods, snakemake.input.scores, strict=False)),
    cfg=snakemake.config,
    out=dict(snakemake.output),
)
