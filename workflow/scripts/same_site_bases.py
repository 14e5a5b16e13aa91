"""At one SAE's stream: fit its linear bases, score each by every method and ablate every basis (claim 6)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.bases import run_bases_job
from kneurons.jobs.features import sae_specs

job = start(snakemake, model=True)
run_bases_job(
    checkpoint=snakemake.input.model,
    split_path=snakemake.input.split,
    scoring_set_path=snakemake.input.scoring_set,
    feature_scores=dict(zip(job.params["score"]["methods"], snakemake.input.scores, strict=True)),
    saes=sae_specs(job.params["units"]["features"], snakemake.input.saes),
    layer=int(snakemake.wildcards.layer),
    settings=job.params,
    table_out=snakemake.output.table,
    pred_out=snakemake.output.pred,
    device=job.device,
)
