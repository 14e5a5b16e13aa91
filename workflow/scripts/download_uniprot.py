"""Download reviewed enzymes (and optionally non-enzymes) from the UniProt REST API."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.runlog import script_logging
from kneurons.data.uniprot import download_uniprot

log = script_logging(snakemake.log[0])
meta = download_uniprot(snakemake.params.uniprot, snakemake.output.data, snakemake.output.meta)
log.info("UniProt release %s: %d entries", meta["release"], meta["entries"])
