"""Class-specific knowledge neurons: per-class selection, overlap, suppression and specificity."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging

import torch

from kneurons.jobs.characterise import run_class_job
from kneurons.model.runtime import resolve_device, seed_everything

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
cfg = snakemake.config
torch.set_num_threads(max(1, int(snakemake.threads)))
seed_everything(cfg["seed"])
run_class_job(
    checkpoint=snakemake.input.model,
    ig_path=snakemake.input.ig,
    split_path=snakemake.input.split,
    cfg=cfg,
    out=dict(snakemake.output.items()),
    scoring_set_path=snakemake.input.scoring_set,
    device=resolve_device(cfg["device"]),
)
