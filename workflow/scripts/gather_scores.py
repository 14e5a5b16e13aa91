"""Gather the score tables of one method's layer chunks into one table (provenance must agree)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.tables import gather_score_tables, write_score_table

job = start(snakemake)
df, meta = gather_score_tables(list(snakemake.input))
write_score_table(df, snakemake.output[0], meta)
job.log.info("%s: %d rows from layers %s", snakemake.output[0], len(df), meta["layers"])
