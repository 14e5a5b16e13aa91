"""Pick the scoring subset (config score.split / max_sequences, stratified by label, seeded)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging

import pandas as pd

from kneurons.io import write_table_atomic
from kneurons.scoring.subset import select_scoring_set

logging.basicConfig(
    filename=snakemake.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
log = logging.getLogger("scoring_set")

split = pd.read_csv(snakemake.input.split, sep="\t", dtype=str, keep_default_na=False)
classes = pd.read_csv(snakemake.input.classes, sep="\t", dtype={"label": str}, keep_default_na=False)
subset = select_scoring_set(
    split,
    classes,
    split=snakemake.params.split,
    max_sequences=snakemake.params.max_sequences,
    seed=snakemake.params.seed,
)
log.info(
    "scoring subset: %d sequences from split %r; per class: %s",
    len(subset),
    snakemake.params.split,
    subset["label"].value_counts().sort_index().to_dict(),
)
write_table_atomic(subset, snakemake.output[0])
