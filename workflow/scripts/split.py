"""Train/val/test split of data/labels.tsv (stratified random or homology-aware)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.runlog import script_logging
from kneurons.data.split import split_labels
from kneurons.tables import read_labels, write_split

log = script_logging(snakemake.log[0])
labels = read_labels(snakemake.input[0])
split = split_labels(
    labels,
    snakemake.params.split,
    snakemake.params.seed,
    threads=snakemake.threads,
    workdir=snakemake.resources.tmpdir,
)
write_split(split, snakemake.output[0])
log.info("split: %s", split["split"].value_counts().to_dict())
