"""Statistics on ablation curves and on where the top neurons sit (torch-free: runs in the plots env).

Per curve (one method, scope, scope name, mode and seed; metric vs fraction ``f``):

* ``auc_accuracy`` / ``auc_macro_f1``: trapezoid area under the metric over the f grid (not
  rescaled; on the default grid 0..1 it is the curve's mean height).
* ``f_threshold``: for ``preserve``, the smallest grid f whose accuracy is at least
  ``keep_accuracy`` x the intact model's accuracy (NaN when none is); for ``suppress``, the
  smallest grid f whose accuracy falls below it. The first crossing counts even if a later f
  crosses back.

Against random (``random_gap``, ``paired_tests``), for each non-random method and each
(scope, scope name, mode):

* the gap = method minus the mean over random seeds, per f and for the AUC;
* its 95% interval by a two-level bootstrap: each replicate resamples the test proteins
  (with replacement, the same proteins for method and random) and the random seeds (with
  replacement), so the interval covers both the test-set and the random-selection
  variability;
* a paired test per f across test proteins: ``d_i`` = method correct (0/1) minus the
  random seeds' mean correctness on protein ``i``; a two-sided paired t-test of mean(d) = 0,
  i.e. of equal expected accuracy (``p_value``; 1 when every ``d_i`` is 0). A sign test on
  ``d_i`` would be wrong here: averaging over seeds makes ``d`` skewed, so its median is not
  0 even when both accuracies are equal (tests/test_stats.py shows it). ``n_better`` /
  ``n_worse`` count the proteins with ``d_i > 0`` / ``< 0``. ``p_adj`` is the
  Benjamini-Hochberg adjustment over all tests in the table.

Density (``density``): the global top ``N = ceil(top_fraction x total)`` neurons (ranked after
the per-module normalisation of ``kneurons.ablation.selection``); for each group (module type, layer,
layer x module type) ``enrichment = (count / N) / (group size / total)``. Under random
selection of N neurons the count is hypergeometric; ``null_lo``/``null_hi`` are the 2.5% and
97.5% quantiles of the enrichment under that null, ``p_enriched``/``p_depleted`` the one-sided
tail probabilities of the observed count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from kneurons.ablation.selection import (
    MODULE_TYPES,
    NeuronLayout,
    global_top,
    resolve_normalisation,
    score_seeds,
    score_vector,
)
from kneurons.errors import InputError
from kneurons.tables import AblationData

CURVE_KEYS: tuple[str, ...] = ("method", "scope", "scope_name", "mode", "seed")
GROUP_KEYS: tuple[str, ...] = ("scope", "scope_name", "mode")


def trapezoid_weights(f: np.ndarray) -> np.ndarray:
    """Weights ``w`` with ``w @ y == np.trapezoid(y, f)`` for increasing ``f``."""
    f = np.asarray(f, dtype=np.float64)
    w = np.zeros_like(f)
    if len(f) > 1:
        d = np.diff(f)
        w[:-1] += d / 2
        w[1:] += d / 2
    return w


def f_threshold(f: np.ndarray, acc: np.ndarray, full_accuracy: float, keep: float, mode: str) -> float:
    """Smallest f keeping ``keep`` x full accuracy (preserve), or dropping below it (suppress); NaN if none."""
    target = keep * full_accuracy
    hit = acc >= target - 1e-12 if mode == "preserve" else acc < target - 1e-12
    return float(f[np.flatnonzero(hit)[0]]) if hit.any() else float("nan")


def _sorted_curves(table: pd.DataFrame):
    for key, g in table.groupby(list(CURVE_KEYS), dropna=False, sort=True):
        yield key, g.sort_values("f")


def summarise_curves(table: pd.DataFrame, full_accuracy: float, keep_accuracy: float = 0.95) -> pd.DataFrame:
    """One row per curve: AUC of accuracy and macro-F1 over f, and ``f_threshold``."""
    rows = []
    for key, g in _sorted_curves(table):
        f = g["f"].to_numpy(dtype=float)
        acc = g["accuracy"].to_numpy(dtype=float)
        rows.append(
            {
                **dict(zip(CURVE_KEYS, key, strict=False)),
                "layer": g["layer"].iloc[0],
                "module": g["module"].iloc[0],
                "n_scope": int(g["n_scope"].iloc[0]),
                "n_f": len(f),
                "auc_accuracy": float(np.trapezoid(acc, f)),
                "auc_macro_f1": float(np.trapezoid(g["macro_f1"].to_numpy(dtype=float), f)),
                "full_accuracy": full_accuracy,
                "keep_accuracy": keep_accuracy,
                "f_threshold": f_threshold(f, acc, full_accuracy, keep_accuracy, str(key[3])),
            }
        )
    out = pd.DataFrame(rows)
    if not out.empty:
        out["seed"] = out["seed"].astype("Int64")
        out["layer"] = out["layer"].astype("Int64")
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = sps.false_discovery_control(p[ok], method="bh")
    return out


def _paired_p(d: np.ndarray) -> float:
    """Two-sided paired t-test p-value of mean(d) = 0 (1 when d is constant 0, 0 when constant non-zero)."""
    if len(d) < 2 or np.all(d == d[0]):
        return 1.0 if len(d) == 0 or d[0] == 0 else 0.0
    return float(sps.ttest_1samp(d, 0.0).pvalue)


def random_comparison(
    data: AblationData,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gap of each method to random: ``(per-curve AUC gaps, per-f gaps with paired tests)``.

    Both tables are empty (with their columns) when there are no random rows.
    """
    t = data.table
    alpha = (1 - confidence) / 2
    auc_rows, f_rows = [], []
    rng = np.random.default_rng(seed)
    n_test = data.correct.shape[1]
    is_random = t["method"] == "random"
    for gkey, g in t.groupby(list(GROUP_KEYS), sort=True):
        rnd = g[is_random.loc[g.index]]
        if rnd.empty:
            continue
        seeds = sorted(int(s) for s in rnd["seed"].dropna().unique())
        grid = np.sort(rnd["f"].unique())
        # (S, n_f, n_test) correctness of the random selections on the common grid.
        c_rand = np.stack([_curve_matrix(data, rnd[rnd["seed"] == s], grid) for s in seeds])
        # The same bootstrap replicates (proteins and seeds) for every method of this group.
        acc_r = c_rand.mean(2).mean(0)
        if n_boot:
            # Resampling weights: protein counts (n_test, B) and seed counts (B, S), each summing to 1.
            counts = rng.multinomial(n_test, np.full(n_test, 1 / n_test), size=n_boot).T / n_test
            seed_idx = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
            seed_counts = np.stack([np.bincount(row, minlength=len(seeds)) for row in seed_idx]) / len(seeds)
            acc_r_boot = np.einsum("sfb,bs->fb", c_rand.astype(float) @ counts, seed_counts)
        w = trapezoid_weights(grid)
        for method, gm in g[~is_random.loc[g.index]].groupby("method", sort=True):
            c_m = _curve_matrix(data, gm, grid).astype(float)
            acc_m = c_m.mean(1)
            gap = acc_m - acc_r
            if n_boot:
                gap_boot = c_m @ counts - acc_r_boot  # (n_f, B)
                lo, hi = np.quantile(gap_boot, [alpha, 1 - alpha], axis=1)
                auc_boot = w @ gap_boot
                auc_lo, auc_hi = np.quantile(auc_boot, [alpha, 1 - alpha])
            else:
                lo = hi = np.full(len(grid), np.nan)
                auc_lo = auc_hi = np.nan
            base = dict(zip(GROUP_KEYS, gkey, strict=False))
            base = {"method": method, **base, "layer": gm["layer"].iloc[0], "module": gm["module"].iloc[0]}
            auc_rows.append(
                {
                    **base,
                    "auc_method": float(w @ acc_m),
                    "auc_random": float(w @ acc_r),
                    "auc_gap": float(w @ gap),
                    "ci_lo": float(auc_lo),
                    "ci_hi": float(auc_hi),
                    "excludes_zero": bool(auc_lo > 0 or auc_hi < 0),
                    "n_seeds": len(seeds),
                    "n_test": n_test,
                    "n_boot": n_boot,
                    "confidence": confidence,
                }
            )
            mean_rand = c_rand.mean(0)  # (n_f, n_test)
            for i, f in enumerate(grid):
                d = c_m[i] - mean_rand[i]
                n_better, n_worse = int((d > 0).sum()), int((d < 0).sum())
                p = _paired_p(d)
                f_rows.append(
                    {
                        **base,
                        "f": float(f),
                        "acc_method": float(acc_m[i]),
                        "acc_random": float(acc_r[i]),
                        "gap": float(gap[i]),
                        "ci_lo": float(lo[i]),
                        "ci_hi": float(hi[i]),
                        "n_better": n_better,
                        "n_worse": n_worse,
                        "p_value": float(p),
                        "n_seeds": len(seeds),
                        "n_test": n_test,
                    }
                )
    auc_cols = [
        "method",
        *GROUP_KEYS,
        "layer",
        "module",
        "auc_method",
        "auc_random",
        "auc_gap",
        "ci_lo",
        "ci_hi",
        "excludes_zero",
        "n_seeds",
        "n_test",
        "n_boot",
        "confidence",
    ]
    f_cols = [
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
    auc = pd.DataFrame(auc_rows, columns=auc_cols)
    per_f = pd.DataFrame(f_rows, columns=[c for c in f_cols if c != "p_adj"])
    per_f.insert(per_f.columns.get_loc("p_value") + 1, "p_adj", _bh(per_f["p_value"].to_numpy()))
    for df in (auc, per_f):
        df["layer"] = df["layer"].astype("Int64")
    return auc, per_f


def _curve_matrix(data: AblationData, rows: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """Correctness ``(n_f, n_test)`` of one curve's rows on ``grid``; InputError if an f is missing or doubled.

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


def density(
    scores: pd.DataFrame,
    method: str,
    top_fraction: float = 0.01,
    normalise: str = "auto",
    source: str = "score table",
) -> pd.DataFrame:
    """Enrichment of module types, layers and (layer, module type) among the global top neurons of a score table.

    One set of rows per seed for random tables. ``level`` is ``module_type``, ``layer`` or
    ``layer_module``.
    """
    layout = NeuronLayout.from_scores(scores, source)
    block_ids = layout.block_ids()
    layer_of = np.array([b[0] for b in layout.blocks])[block_ids]
    module_of = np.array([b[1] for b in layout.blocks])[block_ids]
    seeds = score_seeds(scores)
    rows = []
    for seed in seeds:
        vec = score_vector(scores, layout, seed=seed, source=source)
        top, n_top = global_top(vec, layout, top_fraction, resolve_normalisation(normalise, method))
        groups: list[tuple[str, int | None, str | None, np.ndarray]] = []
        for m in MODULE_TYPES:
            sel = module_of == m
            if sel.any():
                groups.append(("module_type", None, m, sel))
        for layer in range(layout.num_layers):
            groups.append(("layer", layer, None, layer_of == layer))
        for layer, m in layout.blocks:
            groups.append(("layer_module", layer, m, (layer_of == layer) & (module_of == m)))
        total = layout.total
        for level, layer, m, sel in groups:
            size = int(sel.sum())
            count = int((top & sel).sum())
            expected = n_top * size / total
            dist = sps.hypergeom(total, size, n_top)
            q_lo, q_hi = dist.ppf([0.025, 0.975])
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "level": level,
                    "layer": layer,
                    "module": m,
                    "n_neurons": size,
                    "n_total": total,
                    "n_top": n_top,
                    "top_fraction": top_fraction,
                    "count": count,
                    "expected": expected,
                    "enrichment": count / expected if expected > 0 else float("nan"),
                    "null_lo": q_lo / expected if expected > 0 else float("nan"),
                    "null_hi": q_hi / expected if expected > 0 else float("nan"),
                    "p_enriched": float(dist.sf(count - 1)),
                    "p_depleted": float(dist.cdf(count)),
                }
            )
    out = pd.DataFrame(rows)
    out["seed"] = out["seed"].astype("Int64")
    out["layer"] = out["layer"].astype("Int64")
    return out
