"""The statistics job: curve summaries, gaps to random, paired tests, density."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from kneurons.stats.ablation import density, random_comparison, summarise_curves
from kneurons.tables import load_ablation, read_score_table, write_stats_tables

log = logging.getLogger(__name__)


def run_stats(
    tables: Sequence[str | Path],
    predictions: Sequence[str | Path],
    score_paths: dict[str, str | Path],
    cfg: dict,
    out: dict[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """The statistics stage: writes ``out['curves' | 'summary' | 'random_gap' | 'paired_tests' | 'density']`` (TSV).

    ``cfg`` is the validated workflow config (sections ``stats``, ``ablate``, ``seed``).
    """
    st = cfg["stats"]
    data = load_ablation(tables, predictions)
    curves = data.table.copy()
    curves["full_accuracy"] = data.full_accuracy
    summary = summarise_curves(data.table, data.full_accuracy, st["keep_accuracy"])
    gap, paired = random_comparison(
        data, n_boot=st["bootstrap"], confidence=st["confidence"], seed=cfg["seed"]
    )
    dens = pd.concat(
        [
            density(read_score_table(p)[0], m, st["top_fraction"], cfg["ablate"]["normalise"], source=str(p))
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
