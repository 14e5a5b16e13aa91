"""EC <-> UniProt pairs from a local BRENDA flat file, joined with the sequences file."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.brenda import brenda_proteins
from kneurons.io import write_json_atomic
from kneurons.jobs import start
from kneurons.tables import write_proteins

job = start(snakemake)
log = job.log
proteins, meta = brenda_proteins(snakemake.input.brenda[0], snakemake.input.sequences[0])
write_json_atomic(snakemake.output.meta, meta)
write_proteins(proteins, snakemake.output.data)
log.info("BRENDA: %d proteins; %d accessions without sequence", len(proteins), meta["without_sequence"])
