"""Synthetic planted-motif proteins (the embedded default's data) and the motif table."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.synthetic import generate_synthetic
from kneurons.io import write_table_atomic
from kneurons.jobs import start
from kneurons.tables import write_proteins

job = start(snakemake)
log = job.log
proteins, motifs = generate_synthetic(**job.params["synthetic"], seed=job.params["seed"])
write_table_atomic(motifs, snakemake.output.motifs)
write_proteins(proteins, snakemake.output.proteins)
log.info("synthetic: %d proteins, %d classes", len(proteins), len(motifs))
