"""Draw one figure from the result tables (its kind is the rule's `kind` param)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from pathlib import Path

from kneurons.jobs import start
from kneurons.jobs.figures import make_figure

job = start(snakemake)
base = Path(snakemake.output[0]).with_suffix("")  # every output is base.<format>
paths = make_figure(job.params["kind"], dict(snakemake.input), base, job.params["formats"], job.params["dpi"])
job.log.info("wrote %s", ", ".join(map(str, paths)))
