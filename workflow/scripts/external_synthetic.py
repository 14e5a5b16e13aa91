"""New synthetic proteins carrying the training data's planted motifs: an external test set."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.synthetic import generate_synthetic
from kneurons.jobs import start
from kneurons.tables import write_proteins

job = start(snakemake)
proteins, _ = generate_synthetic(
    **job.params["synthetic"],
    seed=job.params["seed"],
    sequence_seed=job.params["sequence_seed"],
    accession_prefix="EXT",
)
write_proteins(proteins, snakemake.output[0])
job.log.info("external synthetic set: %d proteins", len(proteins))
