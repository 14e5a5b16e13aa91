"""Where the top IG SAE features fire: best windows, position frequency matrices, site AUROC."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.characterise import run_neuron_job
from kneurons.jobs.features import sae_specs

job = start(snakemake, model=True)
run_neuron_job(
    checkpoint=snakemake.input.model,
    ig_path=snakemake.input.ig,
    split_path=snakemake.input.split,
    class_neurons_path=None,
    settings=job.params,
    out=dict(snakemake.output.items()),
    device=job.device,
    saes=sae_specs(job.params["units"], snakemake.input.saes),
)
