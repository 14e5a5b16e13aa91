"""Draw one figure from the result tables (its kind is the rule's `kind` param)."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

import logging
from pathlib import Path

from kneurons.jobs.figures import make_figure

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
first = Path(snakemake.output[0])
base = first.with_suffix("")  # every output is base.<format>
paths = make_figure(
    snakemake.params.kind,
    dict(snakemake.input),
    base,
    snakemake.config["figures"]["formats"],
    snakemake.config["figures"]["dpi"],
)
logging.getLogger("figure").info("wrote %s", ", ".join(map(str, paths)))
