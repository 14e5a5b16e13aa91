"""The claims job: a verdict per claim from the statistics (and characterisation) tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.stats.claims import evaluate_claims
from kneurons.tables import read_characterise_table, read_stats_table, write_claims

log = logging.getLogger(__name__)


def run_claims(
    inputs: Mapping[str, str | Path], settings: Mapping[str, Any], out: str | Path
) -> pd.DataFrame:
    """Write ``out`` (``stats/claims.tsv``) from ``inputs``: ``random_gap``, ``density`` and,
    when the characterisation ran, ``class_specificity``.

    ``settings`` are the rule's params (``kneurons.settings.job_settings('claims', config)``).
    """
    spec = inputs.get("class_specificity")
    claims = evaluate_claims(
        read_stats_table(inputs["random_gap"], "random_gap"),
        read_stats_table(inputs["density"], "density"),
        read_characterise_table(spec, "class_specificity") if spec else None,
        settings["stats"],
    )
    write_claims(claims, out)
    for row in claims.itertuples():
        log.info("claim %s (%s): %s [%s]", row.claim, row.method, row.verdict, row.statistic)
    return claims
