"""EC <-> Swiss-Prot pairs from ExPASy enzyme.dat, joined with the sequences file."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.expasy import expasy_proteins
from kneurons.io import write_json_atomic
from kneurons.jobs import start
from kneurons.tables import write_proteins

job = start(snakemake)
log = job.log
proteins, meta = expasy_proteins(snakemake.input.enzyme_dat[0], snakemake.input.sequences[0])
write_json_atomic(snakemake.output.meta, meta)
write_proteins(proteins, snakemake.output.data)
log.info("ExPASy: %d proteins; %d accessions without sequence", len(proteins), meta["without_sequence"])
