"""Fine-tune ESM-2 on data/split.tsv; writes model/{best.pt, metrics.json, training_curve.tsv, run_metadata.json}."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from pathlib import Path

import pandas as pd
import torch

from kneurons.data.runlog import script_logging
from kneurons.model.train import fine_tune
from kneurons.tables import read_tsv_table

log = script_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
split = read_tsv_table(snakemake.input.split)
classes = pd.read_csv(snakemake.input.classes, sep="\t", dtype={"label": str}, keep_default_na=False)
labels = classes.sort_values("label_index")["label"].tolist()
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
