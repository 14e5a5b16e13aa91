"""Train/val/test split of data/labels.tsv (stratified random or homology-aware)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.split import split_labels
from kneurons.jobs import start
from kneurons.tables import read_labels, write_split

job = start(snakemake)
log = job.log
labels = read_labels(snakemake.input[0])
split = split_labels(
    labels,
    job.params["split"],
    job.params["seed"],
    threads=snakemake.threads,
    workdir=snakemake.resources.tmpdir,
)
write_split(split, snakemake.output[0])
log.info("split: %s", split["split"].value_counts().to_dict())
