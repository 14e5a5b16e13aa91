"""Download reviewed enzymes (and optionally non-enzymes) from the UniProt REST API."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.uniprot import download_uniprot
from kneurons.jobs import start

job = start(snakemake)
log = job.log
meta = download_uniprot(job.params["uniprot"], snakemake.output.data, snakemake.output.meta)
log.info("UniProt release %s: %d entries", meta["release"], meta["entries"])
