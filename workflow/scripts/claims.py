"""A verdict per claim from the statistics tables (results/stats/claims.tsv, and rendered for the
report's first screen: results/stats/verdicts.html)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.claims import run_claims

job = start(snakemake)
inputs = {
    "random_gap": snakemake.input.random_gap,
    "density": snakemake.input.density,
    "intact": list(snakemake.input.intact),
    "class_specificity": list(snakemake.input.get("class_specificity", [])),
    "class_summary": list(snakemake.input.get("class_summary", [])),
    "external": list(snakemake.input.get("external", [])),
    "external_metrics": list(snakemake.input.get("external_metrics", [])),
    "compactness": snakemake.input.get("compactness"),
    "faithfulness": snakemake.input.get("faithfulness"),
    "external_faithfulness": list(snakemake.input.get("external_faithfulness", [])),
}
run_claims(inputs, settings=job.params, out=snakemake.output.claims, verdicts=snakemake.output.verdicts)
