"""Figures of the concept stage (units aligned per layer, concepts covered, knowledge units)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.figures import make_concept_figures

job = start(snakemake)
# Outputs are named <figure>_<format>; group every format's path under its figure.
outputs = dict(snakemake.output.items())
paths = {
    name: [p for key, p in outputs.items() if key.rsplit("_", 1)[0] == name] for name in job.params["figures"]
}
make_concept_figures(dict(snakemake.input.items()), paths, dpi=job.params["dpi"])
