"""The statistics job: curve summaries, gaps to random, paired tests, density and stability,
pooled over the fine-tuning replicates; the same curve statistics for SAE features, and claim 6's
compactness of features against neurons."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.stats.compactness import compactness
from kneurons.stats.curves import pool_replicates, summarise_curves
from kneurons.stats.density import density, pool_density, with_q_values
from kneurons.stats.faithfulness import faithfulness_per_row
from kneurons.stats.random import compare_with_random
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
    replicates, the intact accuracy, and the normalised faithfulness ``faithfulness_accuracy`` /
    ``faithfulness_logp`` with ``faithfulness_note`` where it is undefined), ``summary`` (AUC,
    ``f_threshold``, CPR and CMD per curve), ``random_gap``, ``paired_tests`` and ``faithfulness``
    (each method against random, ``compare_with_random``). Every table is per fill.
    ``settings`` as ``run_stats``'."""
    st = settings["stats"]
    table, full_accuracy = pool_replicates([d.table for d in datas], [d.full_accuracy for d in datas])
    curves = table.copy()
    curves["full_accuracy"] = full_accuracy
    faith, notes = faithfulness_per_row(datas)
    for name, values in faith.items():
        curves[f"faithfulness_{name}"] = values
    curves["faithfulness_note"] = notes
    summary = summarise_curves(curves, full_accuracy, st["keep_accuracy"])
    compared = compare_with_random(
        datas, n_boot=st["bootstrap"], confidence=st["confidence"], seed=settings["seed"]
    )
    return {"curves": curves, "summary": summary, **compared}


def run_stats(
    tables: Sequence[Sequence[str | Path]],
    predictions: Sequence[Sequence[str | Path]],
    score_paths: Sequence[Mapping[str, str | Path]],
    settings: dict[str, Any],
    out: dict[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """The statistics stage: writes ``out[name]`` (TSV) for name in curves, summary, random_gap,
    paired_tests, faithfulness, density, stability (each that ``out`` names).

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
    write_stats_tables({k: v for k, v in frames.items() if k in out}, out)
    log.info("statistics over %d replicate(s)", len(datas))
    return frames


def run_feature_stats(
    tables: Sequence[Sequence[str | Path]],
    predictions: Sequence[Sequence[str | Path]],
    settings: Mapping[str, Any],
    out: Mapping[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """The curve statistics of the SAE-feature ablation tables: writes ``out[name]`` (TSV) for name in
    curves, summary, random_gap, paired_tests, faithfulness, the same tables ``run_stats`` writes
    for neurons.

    ``tables[r]`` / ``predictions[r]``: replicate ``r``'s feature ablation tables (one per method,
    global scope; the random method's rows are random features active on the scoring set) and
    their ``.pred.npz``. ``settings``: ``stats`` (bootstrap, keep_accuracy, confidence) and ``seed``.
    Density and stability are neuron-layout statistics and are not computed for features.
    """
    datas = [load_ablation(t, p) for t, p in zip(tables, predictions, strict=True)]
    frames = curve_statistics(datas, settings)
    write_stats_tables({k: v for k, v in frames.items() if k in out}, dict(out))
    log.info("feature statistics over %d replicate(s)", len(datas))
    return frames


def run_compactness(
    tables: Sequence[Sequence[str | Path]],
    predictions: Sequence[Sequence[str | Path]],
    settings: Mapping[str, Any],
    out: Mapping[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """Claim 6 at the same site (``kneurons.stats.compactness``) and the curve statistics of every basis
    of every SAE stream: writes ``out[name]`` (TSV) for name in ``compactness`` and ``bases_curves``,
    ``bases_summary``, ``bases_random_gap``, ``bases_faithfulness`` (each that ``out`` names).

    ``tables[r]`` / ``predictions[r]``: replicate ``r``'s same-site bases tables
    (``features/bases/layer{l}.tsv``, one per SAE stream) and their ``.pred.npz``. The curves carry
    ``kept``, the number of directions kept; the random baseline of each basis is its own random
    selections (``scope_name`` ``L{layer}.{basis}``). ``settings``: ``stats`` (keep_accuracy,
    bootstrap, confidence) and ``seed``.
    """
    st = settings["stats"]
    datas = [load_ablation(t, p) for t, p in zip(tables, predictions, strict=True)]
    frames = curve_statistics(datas, settings)
    frames["curves"]["kept"] = frames["curves"]["n_scope"] - frames["curves"]["n_filled"]
    table = compactness(
        datas,
        keep_accuracy=st["keep_accuracy"],
        n_boot=st["bootstrap"],
        confidence=st["confidence"],
        seed=settings["seed"],
    )
    named = {"compactness": table, **{f"bases_{k}": v for k, v in frames.items() if k != "paired_tests"}}
    write_stats_tables({k: v for k, v in named.items() if k in out}, dict(out))
    for row in table.itertuples():
        log.info(
            "compactness L%d %s (%s fill), features - %s: CPR gap %.3g per fraction, %.3g per direction; "
            "min %.3g [%.3g, %.3g]",
            *(row.layer, row.method, row.fill, row.comparison, row.gap_fraction, row.gap_directions),
            *(row.estimate, row.ci_lo, row.ci_hi),
        )
    return named


def run_sae_quality(
    reports: Sequence[str | Path], settings: Mapping[str, Any], out: str | Path
) -> pd.DataFrame:
    """The SAE quality rule (``kneurons.stats.sae_quality``) on every replicate's SAE report
    (``features/saes.json``, in replicate order): writes ``out`` (``features/stats/sae_quality.tsv``),
    one row per replicate and SAE. ``settings``: ``quality`` (``sae.quality``)."""
    from kneurons.stats.sae_quality import quality_table
    from kneurons.tables import read_sae_report, write_result_table

    table = quality_table([read_sae_report(p) for p in reports], settings["quality"])
    write_result_table(table, out)
    for row in table.itertuples():
        log.info(
            "SAE replicate %d layer %d: FVU %.4g, loss recovered %s: %s",
            *(row.replicate, row.layer, row.fvu_own, row.loss_recovered),
            "fits" if row.fits else f"does not fit ({row.reason})",
        )
    return table
