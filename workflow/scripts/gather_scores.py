"""Gather the per-layer score tables of one method into one table (provenance must agree)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging

from kneurons.jobs.signals import exit_on_sigterm
from kneurons.tables import gather_score_tables, write_score_table

logging.basicConfig(
    filename=snakemake.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
exit_on_sigterm()  # SIGTERM (Snakemake, SLURM) -> clean exit: no temporary files left
df, meta = gather_score_tables(list(snakemake.input))
write_score_table(df, snakemake.output[0], meta)
logging.getLogger("gather_scores").info(
    "%s: %d rows from layers %s", snakemake.output[0], len(df), meta["layers"]
)
