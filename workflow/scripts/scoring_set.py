"""Pick the scoring subset (config score.split / max_sequences, stratified by label, seeded)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging

from kneurons.scoring.methods import select_scoring_set
from kneurons.tables import read_classes, read_split, write_scoring_set

logging.basicConfig(
    filename=snakemake.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
log = logging.getLogger("scoring_set")

split = read_split(snakemake.input.split)
classes = read_classes(snakemake.input.classes)
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
write_scoring_set(subset, snakemake.output[0])
