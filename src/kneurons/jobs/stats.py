"""The statistics job: curve summaries, gaps to random, paired tests, density and stability,
pooled over the fine-tuning replicates."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.stats.curves import pool_replicates, summarise_curves
from kneurons.stats.density import density, pool_density, with_q_values
from kneurons.stats.random import random_comparison
from kneurons.stats.stability import STABILITY_COLUMNS, stability
from kneurons.tables import AblationData, load_ablation, read_score_table, write_stats_tables

log = logging.getLogger(__name__)


def split_replicates(paths: Sequence[Any], replicates: int, what: str) -> list[list[Any]]:
    """A replicate-major flat list of inputs (as the rule lists them) cut into one list per replicate."""
    paths = list(paths)
    if replicates < 1 or len(paths) % replicates:
        raise ValueError(f"{len(paths)} {what} do not split into {replicates} replicates")
    n = len(paths) // replicates
    return [paths[r * n : (r + 1) * n] for r in range(replicates)]


def curve_statistics(datas: Sequence[AblationData], settings: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The statistics of ablation curves pooled over replicates (``datas[r]``: replicate ``r``'s
    tables, same rows, same test proteins): ``curves`` (every row with its metrics averaged over the
    replicates, and the intact accuracy), ``summary`` (AUC and ``f_threshold`` per curve),
    ``random_gap`` and ``paired_tests`` (each method against random). ``settings`` as ``run_stats``'."""
    st = settings["stats"]
    table, full_accuracy = pool_replicates([d.table for d in datas], [d.full_accuracy for d in datas])
    curves = table.copy()
    curves["full_accuracy"] = full_accuracy
    summary = summarise_curves(table, full_accuracy, st["keep_accuracy"])
    gap, paired = random_comparison(
        datas, n_boot=st["bootstrap"], confidence=st["confidence"], seed=settings["seed"]
    )
    return {"curves": curves, "summary": summary, "random_gap": gap, "paired_tests": paired}


def run_stats(
    tables: Sequence[Sequence[str | Path]],
    predictions: Sequence[Sequence[str | Path]],
    score_paths: Sequence[Mapping[str, str | Path]],
    settings: dict[str, Any],
    out: dict[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """The statistics stage: writes ``out[name]`` (TSV) for name in curves, summary, random_gap,
    paired_tests, density, stability.

    ``tables[r]``, ``predictions[r]`` and ``score_paths[r]`` (method -> score table) are replicate
    ``r``'s. ``settings`` are the rule's params (``kneurons.settings.job_settings('ablation_stats',
    config)``): ``stats``, ``ablate.normalise``, ``seed``.
    """
    st = settings["stats"]
    normalise = settings["ablate"]["normalise"]
    datas = [load_ablation(t, p) for t, p in zip(tables, predictions, strict=True)]
    frames = curve_statistics(datas, settings)
    scores = [{m: read_score_table(p)[0] for m, p in rep.items()} for rep in score_paths]
    dens = with_q_values(
        pd.concat(
            [
                pool_density(
                    [
                        density(rep[m], m, st["top_fraction"], normalise, source=str(paths[m]))
                        for rep, paths in zip(scores, score_paths, strict=True)
                    ]
                )
                for m in score_paths[0]
            ],
            ignore_index=True,
        )
    )
    stab = [
        stability({str(r): rep[m] for r, rep in enumerate(scores)}, m, normalise, seed=settings["seed"])
        for m in score_paths[0]
        if m != "random"  # seeded random scores are the same in every replicate
    ]
    stab = pd.concat(stab, ignore_index=True) if stab else pd.DataFrame(columns=STABILITY_COLUMNS)
    frames |= {"density": dens, "stability": stab}
    write_stats_tables(frames, out)
    log.info("statistics over %d replicate(s)", len(datas))
    return frames


def run_feature_stats(
    tables: Sequence[Sequence[str | Path]],
    predictions: Sequence[Sequence[str | Path]],
    settings: Mapping[str, Any],
    out: Mapping[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """The curve statistics of the SAE-feature ablation tables: writes ``out[name]`` (TSV) for name in
    curves, summary, random_gap, paired_tests, the same tables ``run_stats`` writes for neurons.

    ``tables[r]`` / ``predictions[r]``: replicate ``r``'s feature ablation tables (one per method,
    global scope; the random method's rows are random features active on the scoring set) and
    their ``.pred.npz``. ``settings``: ``stats`` (bootstrap, keep_accuracy, confidence) and ``seed``.
    Density and stability are neuron-layout statistics and are not computed for features.
    """
    datas = [load_ablation(t, p) for t, p in zip(tables, predictions, strict=True)]
    frames = curve_statistics(datas, settings)
    write_stats_tables(frames, dict(out))
    log.info("feature statistics over %d replicate(s)", len(datas))
    return frames
