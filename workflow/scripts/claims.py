"""A verdict per claim from the statistics tables (results/stats/claims.tsv, and rendered for the
report's first screen: results/stats/verdicts.html)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.claims import run_claims

job = start(snakemake)
# Every named input of the rule (workflow/rules/functions/stats.smk claims_inputs), lists as lists:
# run_claims documents each; naming them here again once lost the SAE quality and concept tables.
inputs = {name: value if isinstance(value, str) else list(value) for name, value in snakemake.input.items()}
run_claims(inputs, settings=job.params, out=snakemake.output.claims, verdicts=snakemake.output.verdicts)
