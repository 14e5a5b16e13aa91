"""The claims job: a verdict per claim from the statistics (and characterisation) tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.stats.claims import evaluate_claims
from kneurons.tables import read_characterise_table, read_stats_table, write_claims, write_verdicts

log = logging.getLogger(__name__)


def run_claims(
    inputs: Mapping[str, Any],
    settings: Mapping[str, Any],
    out: str | Path,
    verdicts: str | Path | None = None,
) -> pd.DataFrame:
    """Write ``out`` (``stats/claims.tsv``) and, where given, ``verdicts`` (``stats/verdicts.html``,
    the same table rendered for the report's first screen) from ``inputs``: ``random_gap``,
    ``density`` (both pooled over replicates) and, when the characterisation ran,
    ``class_specificity`` (one table per replicate; each class's recall drops are averaged over the
    replicates). Returns the claims with their numbers at full precision.

    ``settings`` are the rule's params (``kneurons.settings.job_settings('claims', config)``).
    """
    spec = inputs.get("class_specificity")
    paths = [spec] if isinstance(spec, str | Path) else list(spec or [])
    pooled = None
    if paths:
        frames = [read_characterise_table(p, "class_specificity") for p in paths]
        pooled = (
            pd.concat(frames).groupby("class", sort=True)[["drop_own", "drop_other"]].mean().reset_index()
        )
    n_rep = int(settings.get("replicates", 1))
    parts = [
        evaluate_claims(
            read_stats_table(inputs["random_gap"], "random_gap"),
            read_stats_table(inputs["density"], "density"),
            pooled,
            settings["stats"],
            n_replicates=n_rep,
        )
    ]
    # External sets: the curve claims (1, 2, 4) on proteins the model never saw.
    names = list(settings.get("external", []))
    ext_paths = list(inputs.get("external") or [])
    if len(names) != len(ext_paths):
        raise ValueError(f"{len(ext_paths)} external statistics tables for {len(names)} sets {names}")
    for name, path in zip(names, ext_paths, strict=True):
        gap = read_stats_table(path, "random_gap")
        rows = evaluate_claims(gap, None, None, settings["stats"], n_replicates=n_rep, set_name=name)
        rows["figure"] = f"external/{name}/curves.tsv"
        parts.append(rows)
    claims = pd.concat(parts, ignore_index=True)
    write_claims(claims, out)
    if verdicts is not None:
        write_verdicts(claims, verdicts)
    for row in claims.itertuples():
        log.info("claim %s (%s): %s [%s]", row.claim, row.method, row.verdict, row.statistic)
    return claims
