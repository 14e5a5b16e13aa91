"""Leakage report of data/split.tsv: class counts per split, shared clusters, max identity."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.runlog import script_logging
from kneurons.data.split import leakage_report
from kneurons.tables import read_split, write_leakage_report

log = script_logging(snakemake.log[0])
split = read_split(snakemake.input[0])
cfg = snakemake.params.split
report = leakage_report(
    split,
    cfg["method"],
    cfg["mmseqs"],
    threads=snakemake.threads,
    workdir=snakemake.resources.tmpdir,
    compute_identity=cfg["identity"],
)
write_leakage_report(snakemake.output[0], report)
log.info("leakage: %s", report.get("identity"))
