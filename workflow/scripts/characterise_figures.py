"""Figures of the characterisation stage (logos, site AUROC, class specificity)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.figures import make_figures

job = start(snakemake)
# Outputs are named <figure>_<format>; group every format's path under its figure.
outputs = dict(snakemake.output.items())
paths = {
    name: [p for key, p in outputs.items() if key.rsplit("_", 1)[0] == name] for name in job.params["figures"]
}
make_figures(
    neurons_path=snakemake.input.neurons,
    pfm_path=snakemake.input.pfm,
    info_path=snakemake.input.info,
    matrix_path=snakemake.input.matrix,
    overlap_path=snakemake.input.overlap,
    out=paths,
    logos=job.params["logos"],
    dpi=job.params["dpi"],
    alpha=job.params["alpha"],
)
