"""How well each method recovers the planted units: recovery, PR curves, ground truth, verdicts."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.planted_stats import run_planted_stats

job = start(snakemake)
run_planted_stats(
    {
        key: list(snakemake.input[key])
        for key in ("units", "ground_truth", "selections", "scores", "head_only")
    },
    job.params,
    out=dict(snakemake.output.items()),
)
