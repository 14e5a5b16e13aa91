"""The SAE quality rule on every replicate's SAE report (claim 6 is inconclusive where an SAE fails it)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.stats import run_sae_quality

job = start(snakemake)
run_sae_quality(reports=list(snakemake.input.reports), settings=job.params, out=snakemake.output[0])
