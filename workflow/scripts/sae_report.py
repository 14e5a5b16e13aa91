"""Each SAE's reconstruction on the validation split (FVU at its layer and its neighbours, dead features)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.features import run_sae_report, sae_specs

job = start(snakemake, model=True)
run_sae_report(
    checkpoint=snakemake.input.model,
    split_path=snakemake.input.split,
    specs=sae_specs(job.params["units"], snakemake.input.saes),
    settings=job.params,
    out_path=snakemake.output[0],
    device=job.device,
)
