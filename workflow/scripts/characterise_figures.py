"""Figures of the characterisation stage (logos, site AUROC, class specificity)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging

from kneurons.jobs.figures import make_figures

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
# Outputs are named <figure>_<format>; group every format's path under its figure.
outputs = dict(snakemake.output.items())
paths = {
    name: [p for key, p in outputs.items() if key.rsplit("_", 1)[0] == name]
    for name in snakemake.params.figures
}
make_figures(
    neurons_path=snakemake.input.neurons,
    pfm_path=snakemake.input.pfm,
    info_path=snakemake.input.info,
    matrix_path=snakemake.input.matrix,
    overlap_path=snakemake.input.overlap,
    out=paths,
    logos=snakemake.params.logos,
    dpi=snakemake.params.dpi,
    alpha=snakemake.params.alpha,
)
