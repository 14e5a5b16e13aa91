"""Score the six modules of one layer by one method (one (method, layer) job)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging

import torch

from kneurons.jobs.score import run_score_job
from kneurons.jobs.signals import exit_on_sigterm
from kneurons.model.runtime import resolve_device, seed_everything

logging.basicConfig(
    filename=snakemake.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
exit_on_sigterm()  # SIGTERM (Snakemake, SLURM) -> clean exit: no temporary files left
cfg = snakemake.config
torch.set_num_threads(max(1, int(snakemake.threads)))
seed_everything(cfg["seed"])
run_score_job(
    checkpoint=snakemake.input.model,
    scoring_set_path=snakemake.input.scoring_set,
    method=snakemake.wildcards.method,
    layer=int(snakemake.wildcards.layer),
    cfg=cfg,
    out_path=snakemake.output[0],
    device=resolve_device(cfg["device"]),
)
