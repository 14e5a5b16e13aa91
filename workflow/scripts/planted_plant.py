"""One planting (S's rows and the head trained from the base), or the head-alone control (no variant)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.planted import run_plant

job = start(snakemake, model=True)  # threads, seed (fine_tune reseeds with the replicate's seed)
run_plant(
    base=snakemake.input.base,
    split_path=snakemake.input.split,
    classes_path=snakemake.input.classes,
    variant=snakemake.wildcards.get("variant"),
    replicate=int(snakemake.wildcards.replicate),
    settings=job.params,
    out=dict(snakemake.output.items()),
    device=job.device,
)
