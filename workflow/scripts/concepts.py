"""Align every neuron and SAE feature with the concepts of the split's annotations (and claim 7's table)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.concepts import concept_scores, run_concepts_job
from kneurons.jobs.features import sae_specs

job = start(snakemake, model=True)
inputs = dict(snakemake.input.items())
saes = sae_specs(job.params["units"], inputs.get("saes", []))
run_concepts_job(
    checkpoint=inputs["model"],
    split_path=inputs["split"],
    settings=job.params,
    out=dict(snakemake.output.items()),
    scores=concept_scores(inputs),
    saes=saes or None,
    device=job.device,
)
