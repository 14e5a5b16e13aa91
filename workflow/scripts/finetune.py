"""Fine-tune ESM-2 on data/split.tsv; writes model/{best.pt, metrics.json, training_curve.tsv, run_metadata.json}."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from pathlib import Path

import torch

from kneurons.data.runlog import script_logging
from kneurons.model.train import fine_tune
from kneurons.tables import read_class_labels, read_split

log = script_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
split = read_split(snakemake.input.split)
labels = read_class_labels(snakemake.input.classes)
out_dir = Path(snakemake.output.model).parent
for name in ("metrics", "curve", "metadata"):
    if Path(snakemake.output[name]).parent != out_dir:
        raise ValueError(
            f"finetune outputs must share one directory: {snakemake.output[name]} is not in {out_dir}"
        )
fine_tune(
    split,
    labels,
    snakemake.params.model,
    snakemake.params.train,
    out_dir,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
)
