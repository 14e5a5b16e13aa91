"""A verdict per claim from the statistics tables (results/stats/claims.tsv)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.claims import run_claims

job = start(snakemake)
run_claims(dict(snakemake.input), settings=job.params, out=snakemake.output.claims)
