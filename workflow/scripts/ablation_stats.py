"""Statistics on all ablation jobs of every replicate: curve summaries, gap to random, paired tests,
density (with Benjamini-Hochberg q-values, q_enriched), stability of the top neurons across
replicates."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.stats import run_stats, split_replicates

job = start(snakemake)
n = job.params["replicates"]
run_stats(
    tables=split_replicates(snakemake.input.tables, n, "ablation tables"),
    predictions=split_replicates(snakemake.input.preds, n, "prediction files"),
    score_paths=[
        dict(zip(job.params["methods"], rep, strict=True))
        for rep in split_replicates(snakemake.input.scores, n, "score tables")
    ],
    settings=job.params,
    out=dict(snakemake.output),
)
