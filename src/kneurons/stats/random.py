"""Each method against random selections of the same size (torch-free: runs in the plots env).

For each non-random method and each (scope, scope name, mode) of the ablation table (of one
replicate, or of several: the same grid of masks evaluated on the same test proteins by models
fine-tuned with different seeds, see ``Replicates`` below):

* the gap = method minus the mean over random seeds, per f and for the AUC;
* its 95% interval by a two-level bootstrap: each replicate resamples the test proteins
  (with replacement, the same proteins for method and random) and the random seeds (with
  replacement), so the interval covers both the test-set and the random-selection
  variability; the AUC gap's ``p_value`` is the two-sided bootstrap p-value,
  ``2 min(P*(gap <= 0), P*(gap >= 0))`` over the replicates (floored at ``1 / n_boot``);
* a paired test per f across test proteins: ``d_i`` = method correct (0/1) minus the
  random seeds' mean correctness on protein ``i``; a two-sided paired t-test of mean(d) = 0,
  i.e. of equal expected accuracy (``p_value``; 1 when every ``d_i`` is 0). A sign test on
  ``d_i`` would be wrong here: averaging over seeds makes ``d`` skewed, so its median is not
  0 even when both accuracies are equal (tests/test_stats.py shows it). ``n_better`` /
  ``n_worse`` count the proteins with ``d_i > 0`` / ``< 0``. ``p_adj`` is the
  Benjamini-Hochberg adjustment over all tests in the table.

Normalised faithfulness. Beside the gap in accuracy, every method's curve gets MIB's normalised
faithfulness F and its areas CPR and CMD against random's (``kneurons.stats.faithfulness``), for
the accuracy and the mean log-probability of the true class, from the same bootstrap draws (the
``faithfulness`` table of ``compare_with_random``: ``cpr_gap`` with its interval and two-sided
bootstrap p-value, ``cmd_gap`` with its interval). Claims 1, 2 and 4 read the accuracy's CPR gap.

Replicates. With ``R > 1`` replicates the gap is the mean over replicates of each replicate's gap,
and each bootstrap replicate resamples, in this order: the test proteins (once, shared by every
replicate: they are the same proteins), each replicate's random seeds, and then the replicates
themselves (with replacement), averaging the chosen replicates' gaps. The interval thus covers
the fine-tuning seeds as well as the test proteins and the random selections. The paired test
per f uses ``d_i`` averaged over replicates. With one replicate no replicate resampling is drawn,
so the numbers are exactly those of the single-replicate analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from kneurons.errors import InputError
from kneurons.stats.bootstrap import bootstrap_p, protein_weights, replicate_picks
from kneurons.stats.curves import trapezoid_weights
from kneurons.stats.faithfulness import EMPTY_KEYS, METRICS, empty_rows, faithfulness_row, metric_matrix
from kneurons.stats.keys import CURVE_KEYS, GROUP_KEYS, with_fill
from kneurons.stats.multiple import bh_qvalues
from kneurons.tables import AblationData, row_keys

AUC_COLUMNS: list[str] = [
    "method",
    *GROUP_KEYS,
    "layer",
    "module",
    "auc_method",
    "auc_random",
    "auc_gap",
    "ci_lo",
    "ci_hi",
    "p_value",
    "excludes_zero",
    "n_seeds",
    "n_test",
    "n_boot",
    "confidence",
]
PAIRED_COLUMNS: list[str] = [
    "method",
    *GROUP_KEYS,
    "layer",
    "module",
    "f",
    "acc_method",
    "acc_random",
    "gap",
    "ci_lo",
    "ci_hi",
    "n_better",
    "n_worse",
    "p_value",
    "p_adj",
    "n_seeds",
    "n_test",
]
#: Columns of the ``faithfulness`` table: one row per method, group and metric (``stats/faithfulness``).
FAITHFULNESS_COLUMNS: list[str] = [
    "method",
    *GROUP_KEYS,
    "layer",
    "module",
    "metric",
    "cpr_method",
    "cpr_random",
    "cpr_gap",
    "ci_lo",
    "ci_hi",
    "p_value",
    "excludes_zero",
    "cmd_method",
    "cmd_random",
    "cmd_gap",
    "cmd_ci_lo",
    "cmd_ci_hi",
    "m_empty",
    "m_full",
    "n_seeds",
    "n_test",
    "n_boot",
    "confidence",
    "n_replicates",
    "note",
]


@dataclass
class RandomBaseline:
    """The random selections of one (scope, scope name, mode, fill) on their common f grid.

    ``correct``: ``(seeds, n_f, n_test)`` correctness; ``counts`` ``(n_test, B)`` and the
    random accuracies ``acc_boot`` ``(n_f, B)`` of the bootstrap replicates (None without
    bootstrap), shared by every method of the group; ``seed_counts`` ``(B, seeds)``: each
    replicate's seed weights (for the other metrics of the same draws).
    """

    seeds: list[int]
    grid: np.ndarray
    correct: np.ndarray
    counts: np.ndarray | None
    acc_boot: np.ndarray | None
    seed_counts: np.ndarray | None = None
    rows: list[np.ndarray] | None = None  # per seed, the positions of its rows on ``grid``

    @property
    def accuracy(self) -> np.ndarray:
        """Mean accuracy over seeds at each f."""
        return self.correct.mean(2).mean(0)


def _paired_p(d: np.ndarray) -> float:
    """Two-sided paired t-test p-value of mean(d) = 0 (1 when d is constant 0, 0 when constant non-zero)."""
    if len(d) < 2 or np.all(d == d[0]):
        return 1.0 if len(d) == 0 or d[0] == 0 else 0.0
    return float(sps.ttest_1samp(d, 0.0).pvalue)


def curve_rows(rows: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """Positions (``rows.index``: positions in the data's arrays) of one curve's rows on ``grid``,
    in grid order; InputError if an f is missing or twice."""
    f = rows["f"].to_numpy(dtype=float)
    what = rows[[c for c in CURVE_KEYS if c in rows.columns]].iloc[0].to_dict()
    if len(np.unique(f)) != len(f):
        raise InputError(f"ablation rows repeat an f for {what}")
    pos = {float(v): int(i) for v, i in zip(f, rows.index, strict=False)}
    missing = [float(g) for g in grid if float(g) not in pos]
    if missing:
        raise InputError(f"ablation rows lack f={missing} for {what}")
    return np.array([pos[float(g)] for g in grid], dtype=np.int64)


def curve_matrix(data: AblationData, rows: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """Correctness ``(n_f, n_test)`` of one curve's rows on ``grid``; InputError if an f is missing or twice.

    ``rows.index`` holds positions in ``data.correct`` (``data.table`` has a range index).
    """
    return data.correct[curve_rows(rows, grid)]


def random_baseline(
    data: AblationData,
    rnd: pd.DataFrame,
    n_boot: int,
    rng: np.random.Generator,
    counts: np.ndarray | None = None,
) -> RandomBaseline:
    """The random rows ``rnd`` of one group, and (``n_boot`` > 0) its bootstrap replicates.

    Each replicate resamples proteins and seeds; the weights are protein counts ``(n_test, B)``
    and seed counts ``(B, S)``, each summing to 1. ``counts`` given: those protein weights (another
    replicate's, shared), else drawn here.
    """
    seeds = sorted(int(s) for s in rnd["seed"].dropna().unique())
    grid = np.sort(rnd["f"].unique())
    rows = [curve_rows(rnd[rnd["seed"] == s], grid) for s in seeds]
    correct = np.stack([data.correct[r] for r in rows])
    acc_boot = seed_counts = None
    if n_boot:
        n_test = data.correct.shape[1]
        if counts is None:
            counts = protein_weights(rng, n_test, n_boot)
        seed_idx = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
        seed_counts = np.stack([np.bincount(row, minlength=len(seeds)) for row in seed_idx]) / len(seeds)
        acc_boot = np.einsum("sfb,bs->fb", correct.astype(float) @ counts, seed_counts)
    return RandomBaseline(seeds, grid, correct, counts if n_boot else None, acc_boot, seed_counts, rows)


def _gap_intervals(
    c_ms: list[np.ndarray],
    refs: list[RandomBaseline],
    w: np.ndarray,
    confidence: float,
    pick: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """Bootstrap intervals of the gap per f (``lo, hi``) and of the AUC gap, and the AUC gap's p-value.

    ``pick`` ``(B, R)``: the replicates each bootstrap replicate averages (None: the one replicate).
    NaN without bootstrap.
    """
    if refs[0].counts is None or any(r.acc_boot is None for r in refs):
        nan = np.full(len(refs[0].grid), np.nan)
        return nan, nan, np.nan, np.nan, np.nan
    alpha = (1 - confidence) / 2
    per_rep = np.stack([c @ r.counts - r.acc_boot for c, r in zip(c_ms, refs, strict=True)])  # (R, n_f, B)
    if pick is None:
        gap_boot = per_rep[0]
    else:
        cols = np.arange(per_rep.shape[2])
        gap_boot = per_rep[pick.T, :, cols[None, :]].mean(0).T  # (n_f, B)
    lo, hi = np.quantile(gap_boot, [alpha, 1 - alpha], axis=1)
    auc_boot = w @ gap_boot
    auc_lo, auc_hi = np.quantile(auc_boot, [alpha, 1 - alpha])
    return lo, hi, auc_lo, auc_hi, bootstrap_p(auc_boot)


def _compare(
    c_ms: list[np.ndarray],
    refs: list[RandomBaseline],
    base: dict[str, Any],
    n_boot: int,
    confidence: float,
    pick: np.ndarray | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One method's correctness (``c_ms[r]``: (n_f, n_test) per replicate) against the baselines:
    its AUC row and per-f rows."""
    ref = refs[0]
    n_test = c_ms[0].shape[1]
    w = trapezoid_weights(ref.grid)
    acc_m = np.mean([c.mean(1) for c in c_ms], axis=0)
    acc_r = np.mean([r.accuracy for r in refs], axis=0)
    gap = acc_m - acc_r
    lo, hi, auc_lo, auc_hi, auc_p = _gap_intervals(c_ms, refs, w, confidence, pick)
    auc_row = {
        **base,
        "auc_method": float(w @ acc_m),
        "auc_random": float(w @ acc_r),
        "auc_gap": float(w @ gap),
        "ci_lo": float(auc_lo),
        "ci_hi": float(auc_hi),
        "p_value": auc_p,
        "excludes_zero": bool(auc_lo > 0 or auc_hi < 0),
        "n_seeds": len(ref.seeds),
        "n_test": n_test,
        "n_boot": n_boot,
        "confidence": confidence,
    }
    # d_i per protein, averaged over replicates (the proteins are the same in every replicate).
    d_all = np.mean([c - r.correct.mean(0) for c, r in zip(c_ms, refs, strict=True)], axis=0)  # (n_f, n_test)
    f_rows = []
    for i, f in enumerate(ref.grid):
        d = d_all[i]
        f_rows.append(
            {
                **base,
                "f": float(f),
                "acc_method": float(acc_m[i]),
                "acc_random": float(acc_r[i]),
                "gap": float(gap[i]),
                "ci_lo": float(lo[i]),
                "ci_hi": float(hi[i]),
                "n_better": int((d > 0).sum()),
                "n_worse": int((d < 0).sum()),
                "p_value": float(_paired_p(d)),
                "n_seeds": len(ref.seeds),
                "n_test": n_test,
            }
        )
    return auc_row, f_rows


def compare_with_random(
    data: AblationData | Sequence[AblationData],
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Each method against random: ``random_gap`` (per-curve AUC gaps), ``paired_tests`` (per-f gaps
    with paired tests) and ``faithfulness`` (CPR and CMD against random, per metric).

    ``data``: one replicate's ablation data, or one per replicate (same rows, same test proteins).
    The tables are empty (with their columns) when there are no random rows. The bootstrap
    replicates (proteins, seeds and replicates) of a group are shared by all its methods and by
    all three tables.
    """
    datas = [data] if isinstance(data, AblationData) else list(data)
    _check_replicates(datas)
    t = with_fill(datas[0].table)
    auc_rows, f_rows, faith_rows = [], [], []
    rng = np.random.default_rng(seed)
    is_random = t["method"] == "random"
    where = empty_rows(t, EMPTY_KEYS)
    values = {metric: [metric_matrix(d, metric) for d in datas] for metric in METRICS}
    for gkey, g in t.groupby(list(GROUP_KEYS), sort=True):
        rnd = g[is_random.loc[g.index]]
        if rnd.empty:
            continue
        refs = [random_baseline(datas[0], rnd, n_boot, rng)]
        refs += [random_baseline(d, rnd, n_boot, rng, counts=refs[0].counts) for d in datas[1:]]
        pick = replicate_picks(rng, len(datas), n_boot)
        group = dict(zip(GROUP_KEYS, gkey, strict=False))
        empty_at = where[tuple(str(group[k]) for k in EMPTY_KEYS)]
        for method, gm in g[~is_random.loc[g.index]].groupby("method", sort=True):
            base = {"method": method, **group}
            base |= {"layer": gm["layer"].iloc[0], "module": gm["module"].iloc[0]}
            rows = curve_rows(gm, refs[0].grid)
            c_ms = [d.correct[rows].astype(float) for d in datas]
            auc_row, per_f = _compare(c_ms, refs, base, n_boot, confidence, pick)
            auc_row["n_replicates"] = len(datas)
            auc_rows.append(auc_row)
            f_rows.extend(per_f)
            boot = refs[0].counts is not None
            for metric, name in METRICS.items():
                faith_rows.append(
                    faithfulness_row(
                        values[metric],
                        rows,
                        [np.stack(r.rows) for r in refs],
                        empty_at,
                        refs[0].grid,
                        refs[0].counts,
                        [r.seed_counts for r in refs] if boot else None,
                        pick,
                        {**base, "metric": name, "n_seeds": len(refs[0].seeds)},
                        confidence,
                        n_boot,
                    )
                )
    auc = pd.DataFrame(auc_rows, columns=[*AUC_COLUMNS, "n_replicates"])
    per_f = pd.DataFrame(f_rows, columns=[c for c in PAIRED_COLUMNS if c != "p_adj"])
    per_f.insert(per_f.columns.get_loc("p_value") + 1, "p_adj", bh_qvalues(per_f["p_value"].to_numpy()))
    faith = pd.DataFrame(faith_rows, columns=FAITHFULNESS_COLUMNS)
    for df in (auc, per_f, faith):
        df["layer"] = df["layer"].astype("Int64")
    return {"random_gap": auc, "paired_tests": per_f, "faithfulness": faith}


def random_comparison(
    data: AblationData | Sequence[AblationData],
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gap of each method to random: ``(per-curve AUC gaps, per-f gaps with paired tests)``
    (``compare_with_random``'s first two tables)."""
    out = compare_with_random(data, n_boot, confidence, seed)
    return out["random_gap"], out["paired_tests"]


def _check_replicates(datas: list[AblationData]) -> None:
    """Replicates must hold the same rows (masks) evaluated on the same test proteins."""
    if not datas:
        raise InputError("random_comparison: no ablation data")
    first = datas[0]
    keys = row_keys(first.table)
    for i, d in enumerate(datas[1:], start=1):
        if not np.array_equal(d.accessions, first.accessions):
            raise InputError(f"replicate {i} was evaluated on other test proteins than replicate 0")
        if not np.array_equal(row_keys(d.table), keys):
            raise InputError(f"replicate {i}'s ablation rows differ from replicate 0's")
