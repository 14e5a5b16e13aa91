"""Where the top IG neurons fire: best windows, position frequency matrices, site AUROC."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging

import torch

from kneurons.jobs.characterise import run_neuron_job
from kneurons.model.runtime import resolve_device, seed_everything

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
cfg = snakemake.config
torch.set_num_threads(max(1, int(snakemake.threads)))
seed_everything(cfg["seed"])
run_neuron_job(
    checkpoint=snakemake.input.model,
    ig_path=snakemake.input.ig,
    split_path=snakemake.input.split,
    class_neurons_path=snakemake.input.class_neurons,
    cfg=cfg,
    out=dict(snakemake.output.items()),
    device=resolve_device(cfg["device"]),
)
