"""Draw one figure from the result tables (its kind is the rule's `kind` param)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from pathlib import Path

from kneurons.jobs import start
from kneurons.jobs.figures import make_figure

job = start(snakemake)
base = Path(snakemake.output[0]).with_suffix("")  # every output is base.<format>
# `logos`: only the logo figures' params carry it
extra = {key: job.params[key] for key in ("logos",) if key in job.params}
paths = make_figure(
    job.params["kind"], dict(snakemake.input), base, job.params["formats"], job.params["dpi"], **extra
)
job.log.info("wrote %s", ", ".join(map(str, paths)))
