"""Fine-tune ESM-2 on data/split.tsv; writes best.pt, metrics.json, training_curve.tsv, run_metadata.json."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from pathlib import Path

import pandas as pd

from kneurons.jobs import start
from kneurons.model.train import fine_tune
from kneurons.tables import read_tsv_table

job = start(snakemake, model=True)  # threads, seed (fine_tune reseeds with train.deterministic)
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
    job.params["model"],
    job.params["train"],
    out_dir,
    seed=job.params["seed"],
    device=job.params["device"],
)
