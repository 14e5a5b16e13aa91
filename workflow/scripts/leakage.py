"""Leakage report of data/split.tsv: class counts per split, shared clusters, max identity."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.data.split import leakage_report
from kneurons.jobs import start
from kneurons.tables import read_split, write_leakage_report

job = start(snakemake)
log = job.log
split = read_split(snakemake.input[0])
cfg = job.params["split"]
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
