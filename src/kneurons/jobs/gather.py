"""The gather jobs: one stage's part files, written by parallel jobs, joined into the one file
the next stage reads (torch-free: they only read and write tables)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from kneurons.tables import gather_results, gather_score_tables, write_score_table

log = logging.getLogger(__name__)


def run_gather_scores(parts: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Join the score tables of one method's layer chunks (``parts``, in layer order) into one
    score table ``out``; their provenance must agree (``gather_score_tables``)."""
    df, meta = gather_score_tables(list(parts))
    write_score_table(df, out, meta)
    log.info("%s: %d rows from layers %s", out, len(df), meta["layers"])
    return df


def run_gather_ablation_seeds(
    tables: Sequence[str | Path],
    predictions: Sequence[str | Path],
    table_out: str | Path,
    pred_out: str | Path,
) -> None:
    """Join the random baseline's seed-chunk parts (``tables`` and their ``predictions``, in seed
    order) into one ablation table ``table_out`` and its predictions ``pred_out``."""
    gather_results(tables=list(tables), predictions=list(predictions), table_out=table_out, pred_out=pred_out)
    log.info("gathered %d seed parts into %s", len(tables), table_out)
