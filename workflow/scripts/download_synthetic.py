"""Synthetic planted-motif proteins (the embedded default's data) and the motif table."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.runlog import script_logging
from kneurons.data.synthetic import generate_synthetic
from kneurons.io import write_table_atomic
from kneurons.tables import write_proteins

log = script_logging(snakemake.log[0])
proteins, motifs = generate_synthetic(**snakemake.params.synthetic, seed=snakemake.params.seed)
write_table_atomic(motifs, snakemake.output.motifs)
write_proteins(proteins, snakemake.output.proteins)
log.info("synthetic: %d proteins, %d classes", len(proteins), len(motifs))
