"""Pick the scoring subset (config score.split / max_sequences, stratified by label, seeded)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import pandas as pd

from kneurons.io import write_table_atomic
from kneurons.jobs import start
from kneurons.scoring.subset import select_scoring_set

job = start(snakemake)
log = job.log

split = pd.read_csv(snakemake.input.split, sep="\t", dtype=str, keep_default_na=False)
classes = pd.read_csv(snakemake.input.classes, sep="\t", dtype={"label": str}, keep_default_na=False)
subset = select_scoring_set(
    split,
    classes,
    split=job.params["split"],
    max_sequences=job.params["max_sequences"],
    seed=job.params["seed"],
)
log.info(
    "scoring subset: %d sequences from split %r; per class: %s",
    len(subset),
    job.params["split"],
    subset["label"].value_counts().sort_index().to_dict(),
)
write_table_atomic(subset, snakemake.output[0])
