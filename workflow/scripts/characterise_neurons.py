"""Where the top IG neurons fire: best windows, position frequency matrices, site AUROC."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.characterise import run_neuron_job

job = start(snakemake, model=True)
run_neuron_job(
    checkpoint=snakemake.input.model,
    ig_path=snakemake.input.ig,
    split_path=snakemake.input.split,
    class_neurons_path=snakemake.input.class_neurons,
    settings=job.params,
    out=dict(snakemake.output.items()),
    device=job.device,
)
