"""Fine-tune ESM-2 on data/split.tsv; writes best.pt, metrics.json, training_curve.tsv, run_metadata.json."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from pathlib import Path

from kneurons.jobs import start
from kneurons.tables import read_class_labels, read_split
from kneurons.training.loop import fine_tune

job = start(snakemake, model=True)  # threads, seed (fine_tune reseeds with train.deterministic)
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
    job.params["model"],
    job.params["train"],
    out_dir,
    seed=job.params["seed"],
    device=job.params["device"],
)
