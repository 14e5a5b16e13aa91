"""Preserve / suppress the top-f neurons of one (method, scope) job on the test split."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging

import torch

from kneurons.jobs.ablate import run_ablation_job
from kneurons.jobs.signals import exit_on_sigterm
from kneurons.model.runtime import resolve_device, seed_everything

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
exit_on_sigterm()  # SIGTERM (Snakemake, SLURM) -> clean exit: no temporary files left
cfg = snakemake.config
torch.set_num_threads(max(1, int(snakemake.threads)))
seed_everything(cfg["seed"])
run_ablation_job(
    checkpoint=snakemake.input.model,
    split_path=snakemake.input.split,
    scores_path=snakemake.input.scores,
    method=snakemake.wildcards.method,
    scope=snakemake.wildcards.scope,
    cfg=cfg,
    table_out=snakemake.output.table,
    pred_out=snakemake.output.pred,
    scoring_set_path=snakemake.input.get("scoring_set"),
    device=resolve_device(cfg["device"]),
)
