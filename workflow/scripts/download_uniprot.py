"""Download reviewed enzymes (and optionally non-enzymes) from the UniProt REST API."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.data import run_download_uniprot

job = start(snakemake)
run_download_uniprot(job.params, data_out=snakemake.output.data, meta_out=snakemake.output.meta)
