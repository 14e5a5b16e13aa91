"""Each method against random selections of the same size (torch-free: runs in the plots env).

For each non-random method and each (scope, scope name, mode) of the ablation table:

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from kneurons.errors import InputError
from kneurons.stats.curves import CURVE_KEYS, GROUP_KEYS, trapezoid_weights
from kneurons.stats.multiple import bh_qvalues
from kneurons.tables import AblationData

AUC_COLUMNS: list[str] = [
    "method", *GROUP_KEYS, "layer", "module", "auc_method", "auc_random", "auc_gap", "ci_lo", "ci_hi",
    "p_value", "excludes_zero", "n_seeds", "n_test", "n_boot", "confidence",
]  # fmt: skip
PAIRED_COLUMNS: list[str] = [
    "method", *GROUP_KEYS, "layer", "module", "f", "acc_method", "acc_random", "gap", "ci_lo", "ci_hi",
    "n_better", "n_worse", "p_value", "p_adj", "n_seeds", "n_test",
]  # fmt: skip


@dataclass
class RandomBaseline:
    """The random selections of one (scope, scope name, mode) on their common f grid.

    ``correct``: ``(seeds, n_f, n_test)`` correctness; ``counts`` ``(n_test, B)`` and the
    random accuracies ``acc_boot`` ``(n_f, B)`` of the bootstrap replicates (None without
    bootstrap), shared by every method of the group.
    """

    seeds: list[int]
    grid: np.ndarray
    correct: np.ndarray
    counts: np.ndarray | None
    acc_boot: np.ndarray | None

    @property
    def accuracy(self) -> np.ndarray:
        """Mean accuracy over seeds at each f."""
        return self.correct.mean(2).mean(0)


def _paired_p(d: np.ndarray) -> float:
    """Two-sided paired t-test p-value of mean(d) = 0 (1 when d is constant 0, 0 when constant non-zero)."""
    if len(d) < 2 or np.all(d == d[0]):
        return 1.0 if len(d) == 0 or d[0] == 0 else 0.0
    return float(sps.ttest_1samp(d, 0.0).pvalue)


def _curve_matrix(data: AblationData, rows: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """Correctness ``(n_f, n_test)`` of one curve's rows on ``grid``; InputError if an f is missing or twice.

    ``rows.index`` holds positions in ``data.correct`` (``data.table`` has a range index).
    """
    f = rows["f"].to_numpy(dtype=float)
    what = rows[list(CURVE_KEYS)].iloc[0].to_dict()
    if len(np.unique(f)) != len(f):
        raise InputError(f"ablation rows repeat an f for {what}")
    pos = {float(v): int(i) for v, i in zip(f, rows.index, strict=False)}
    missing = [float(g) for g in grid if float(g) not in pos]
    if missing:
        raise InputError(f"ablation rows lack f={missing} for {what}")
    return data.correct[[pos[float(g)] for g in grid]]


def random_baseline(
    data: AblationData, rnd: pd.DataFrame, n_boot: int, rng: np.random.Generator
) -> RandomBaseline:
    """The random rows ``rnd`` of one group, and (``n_boot`` > 0) its bootstrap replicates.

    Each replicate resamples proteins and seeds; the weights are protein counts ``(n_test, B)``
    and seed counts ``(B, S)``, each summing to 1.
    """
    seeds = sorted(int(s) for s in rnd["seed"].dropna().unique())
    grid = np.sort(rnd["f"].unique())
    correct = np.stack([_curve_matrix(data, rnd[rnd["seed"] == s], grid) for s in seeds])
    counts = acc_boot = None
    if n_boot:
        n_test = data.correct.shape[1]
        counts = rng.multinomial(n_test, np.full(n_test, 1 / n_test), size=n_boot).T / n_test
        seed_idx = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
        seed_counts = np.stack([np.bincount(row, minlength=len(seeds)) for row in seed_idx]) / len(seeds)
        acc_boot = np.einsum("sfb,bs->fb", correct.astype(float) @ counts, seed_counts)
    return RandomBaseline(seeds, grid, correct, counts, acc_boot)


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a zero effect: ``2 min(P*(x <= 0), P*(x >= 0))``, in ``[1/B, 1]``."""
    n = len(replicates)
    if n == 0:
        return float("nan")
    tail = min(np.count_nonzero(replicates <= 0), np.count_nonzero(replicates >= 0))
    return float(min(1.0, max(2 * tail, 1) / n))


def _gap_intervals(
    c_m: np.ndarray, ref: RandomBaseline, w: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """Bootstrap intervals of the gap per f (``lo, hi``) and of the AUC gap, and the AUC gap's p-value.

    NaN without bootstrap.
    """
    if ref.counts is None or ref.acc_boot is None:
        nan = np.full(len(ref.grid), np.nan)
        return nan, nan, np.nan, np.nan, np.nan
    alpha = (1 - confidence) / 2
    gap_boot = c_m @ ref.counts - ref.acc_boot  # (n_f, B)
    lo, hi = np.quantile(gap_boot, [alpha, 1 - alpha], axis=1)
    auc_boot = w @ gap_boot
    auc_lo, auc_hi = np.quantile(auc_boot, [alpha, 1 - alpha])
    return lo, hi, auc_lo, auc_hi, bootstrap_p(auc_boot)


def _compare(
    c_m: np.ndarray, ref: RandomBaseline, base: dict[str, Any], n_boot: int, confidence: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One method's correctness ``c_m`` (n_f, n_test) against the baseline: its AUC row and per-f rows."""
    n_test = c_m.shape[1]
    w = trapezoid_weights(ref.grid)
    acc_m, acc_r = c_m.mean(1), ref.accuracy
    gap = acc_m - acc_r
    lo, hi, auc_lo, auc_hi, auc_p = _gap_intervals(c_m, ref, w, confidence)
    auc_row = {
        **base, "auc_method": float(w @ acc_m), "auc_random": float(w @ acc_r), "auc_gap": float(w @ gap),
        "ci_lo": float(auc_lo), "ci_hi": float(auc_hi), "p_value": auc_p,
        "excludes_zero": bool(auc_lo > 0 or auc_hi < 0),
        "n_seeds": len(ref.seeds), "n_test": n_test, "n_boot": n_boot, "confidence": confidence,
    }  # fmt: skip
    mean_rand = ref.correct.mean(0)  # (n_f, n_test)
    f_rows = []
    for i, f in enumerate(ref.grid):
        d = c_m[i] - mean_rand[i]
        f_rows.append(
            {
                **base, "f": float(f), "acc_method": float(acc_m[i]), "acc_random": float(acc_r[i]),
                "gap": float(gap[i]), "ci_lo": float(lo[i]), "ci_hi": float(hi[i]),
                "n_better": int((d > 0).sum()), "n_worse": int((d < 0).sum()), "p_value": float(_paired_p(d)),
                "n_seeds": len(ref.seeds), "n_test": n_test,
            }
        )  # fmt: skip
    return auc_row, f_rows


def random_comparison(
    data: AblationData,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gap of each method to random: ``(per-curve AUC gaps, per-f gaps with paired tests)``.

    Both tables are empty (with their columns) when there are no random rows. The bootstrap
    replicates (proteins and seeds) of a group are shared by all its methods.
    """
    t = data.table
    auc_rows, f_rows = [], []
    rng = np.random.default_rng(seed)
    is_random = t["method"] == "random"
    for gkey, g in t.groupby(list(GROUP_KEYS), sort=True):
        rnd = g[is_random.loc[g.index]]
        if rnd.empty:
            continue
        ref = random_baseline(data, rnd, n_boot, rng)
        for method, gm in g[~is_random.loc[g.index]].groupby("method", sort=True):
            base = {"method": method, **dict(zip(GROUP_KEYS, gkey, strict=False))}
            base |= {"layer": gm["layer"].iloc[0], "module": gm["module"].iloc[0]}
            c_m = _curve_matrix(data, gm, ref.grid).astype(float)
            auc_row, rows = _compare(c_m, ref, base, n_boot, confidence)
            auc_rows.append(auc_row)
            f_rows.extend(rows)
    auc = pd.DataFrame(auc_rows, columns=AUC_COLUMNS)
    per_f = pd.DataFrame(f_rows, columns=[c for c in PAIRED_COLUMNS if c != "p_adj"])
    per_f.insert(per_f.columns.get_loc("p_value") + 1, "p_adj", bh_qvalues(per_f["p_value"].to_numpy()))
    for df in (auc, per_f):
        df["layer"] = df["layer"].astype("Int64")
    return auc, per_f
