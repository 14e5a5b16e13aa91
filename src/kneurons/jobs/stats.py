"""The statistics job: curve summaries, gaps to random, paired tests, density."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.stats.curves import summarise_curves
from kneurons.stats.density import density
from kneurons.stats.random import random_comparison
from kneurons.tables import load_ablation, read_score_table, write_stats_tables

log = logging.getLogger(__name__)


def run_stats(
    tables: Sequence[str | Path],
    predictions: Sequence[str | Path],
    score_paths: dict[str, str | Path],
    settings: dict[str, Any],
    out: dict[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """The statistics stage: writes ``out[name]`` (TSV) for name in curves, summary, random_gap,
    paired_tests, density.

    ``settings`` are the rule's params (``kneurons.settings.job_settings('ablation_stats', config)``):
    ``stats``, ``ablate.normalise``, ``seed``.
    """
    st = settings["stats"]
    data = load_ablation(tables, predictions)
    curves = data.table.copy()
    curves["full_accuracy"] = data.full_accuracy
    summary = summarise_curves(data.table, data.full_accuracy, st["keep_accuracy"])
    gap, paired = random_comparison(
        data, n_boot=st["bootstrap"], confidence=st["confidence"], seed=settings["seed"]
    )
    dens = pd.concat(
        [
            density(
                read_score_table(p)[0], m, st["top_fraction"], settings["ablate"]["normalise"], source=str(p)
            )
            for m, p in score_paths.items()
        ],
        ignore_index=True,
    )
    frames = {
        "curves": curves,
        "summary": summary,
        "random_gap": gap,
        "paired_tests": paired,
        "density": dens,
    }
    write_stats_tables(frames, out)
    return frames
