"""Pick the scoring subset (config score.split / max_sequences, stratified by label, seeded)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.scoring.subset import select_scoring_set
from kneurons.tables import read_classes, read_split, write_scoring_set

job = start(snakemake)
log = job.log

split = read_split(snakemake.input.split)
classes = read_classes(snakemake.input.classes)
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
write_scoring_set(subset, snakemake.output[0])
