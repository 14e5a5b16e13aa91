"""Normalised faithfulness of ablation curves, and its areas CPR and CMD (torch-free).

MIB (Mueller et al., ICML 2025, the circuit track's ``evaluate_area_under_curve`` in
hannamw/MIB-circuit-track ``evaluation.py``) scores a kept set ``C`` of a model's units by its
*normalised faithfulness*

    F(C) = (m(C) - m(empty)) / (m(full) - m(empty))

``m(full)`` the metric of the intact model (every unit kept), ``m(empty)`` with every unit of the
scope ablated. F is 0 for the empty set, 1 for the full model, and reads as the share of the
intact model's performance (above the fully ablated scope) that ``C`` keeps. Over a grid of sizes
``x`` (MIB: 0.1%, 0.2%, 0.5%, 1%, 2%, 5%, 10%, 20%, 50%, 100% of the scored units), **CPR** (higher
is better) is the trapezoid area under F over ``ln x`` and **CMD** (0 is best) the trapezoid area
of ``|1 - F|`` over ``ln x``, both over consecutive sizes. Here:

* ``x`` is the ablation grid's fraction ``f`` (its positive values: ``ln 0`` is not defined; F at
  ``f = 0`` is 0 by construction in preserve mode). Differences of ``ln f`` equal differences of
  ``ln (f N)``, so the areas are the same counted in units (MIB's x) or in fractions;
* **the areas are divided by the log-span** ``ln(x_max / x_min)`` of the positive grid: CPR is then
  the mean height of F over ``ln x`` (1 for a curve at the intact model everywhere) and CMD the
  mean distance from 1, comparable between grids of other extents. MIB does not divide: its
  numbers are ``ln(1000) = 6.9`` times these on its grid, ours ``ln(100) = 4.6`` times on the
  default grid (0.01 .. 1);
* ``m`` is the accuracy, and the mean log-probability of the true class (``mean_logp``), a
  continuous metric that moves before the argmax flips;
* **preserve** curves keep the top ``f`` of the scope (``C`` = the top f): F is MIB's faithfulness
  of the selected units. **Suppress** curves ablate the top ``f``: the kept set is the complement,
  ``C`` = all but the top f, and F at suppress f is the share of performance left after removing
  the top f. A method whose top units matter has a *low* suppress F, so its suppress CPR is below
  random's (claim 4's direction), and its suppress CMD is high;
* ``m(empty)`` is the scope's all-filled mask (preserve ``f = 0``, or suppress ``f = 1``: the same
  mask, the same for every method and random seed of the scope and fill); ``m(full)`` the intact
  model. Where the two are equal (a scope whose ablation changes nothing, or a model at chance
  both ways) F is **undefined: NaN**, and so are the areas and their intervals, never a division
  by zero; the claims read such a row as inconclusive and say why (``UNDEFINED_NOTE``). A grid
  without the all-filled mask gives NaN too (``NO_EMPTY_NOTE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from kneurons.stats.bootstrap import bootstrap_p
from kneurons.stats.keys import with_fill
from kneurons.tables import AblationData

#: The metrics F is computed for: ablation-table column -> name in the statistics tables.
METRICS: dict[str, str] = {"accuracy": "accuracy", "mean_logp": "logp"}
#: The columns within which the all-filled mask (m(empty)) is one: the same scope, scope name and fill.
EMPTY_KEYS: tuple[str, ...] = ("scope", "scope_name", "fill")
#: Why F is NaN where m(empty) = m(full).
UNDEFINED_NOTE = "F undefined: m(empty) = m(full) (ablating the whole scope changes nothing)"
#: Why F is NaN where the grid has no all-filled mask.
NO_EMPTY_NOTE = "F undefined: the grid has no all-filled mask (preserve f = 0 or suppress f = 1)"


def normalised(m: np.ndarray, empty: np.ndarray | float, full: np.ndarray | float) -> np.ndarray:
    """``F = (m - empty) / (full - empty)``, elementwise with broadcasting; NaN where ``full == empty``
    (or either is NaN), never a division by zero."""
    m, empty, full = (np.asarray(v, dtype=np.float64) for v in (m, empty, full))
    span = full - empty
    defined = np.isfinite(span) & (span != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, (m - empty) / np.where(defined, span, 1.0), np.nan)


def log_area_weights(x: np.ndarray) -> np.ndarray:
    """Weights ``w`` over the points ``x`` (increasing) with ``w @ y`` = the trapezoid area of ``y``
    over ``ln x`` across the positive points, divided by ``ln(x_max / x_min)`` of those points.

    Points ``x <= 0`` get weight 0; with fewer than two positive points every weight is NaN (no area).
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.zeros_like(x)
    pos = np.flatnonzero(x > 0)
    if len(pos) < 2:
        return np.full_like(x, np.nan)
    lx = np.log(x[pos])
    d = np.diff(lx)
    if np.any(d <= 0):
        raise ValueError(f"the grid must increase: {x.tolist()}")
    w[pos[:-1]] += d / 2
    w[pos[1:]] += d / 2
    return w / (lx[-1] - lx[0])


def cpr(f_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """CPR: the normalised area under F over ``ln x`` (module docstring); ``f_values`` ``(n_x, ...)``."""
    return np.tensordot(log_area_weights(x), np.asarray(f_values, dtype=np.float64), axes=1)


def cmd(f_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """CMD: the normalised area of ``|1 - F|`` over ``ln x``; ``f_values`` ``(n_x, ...)``."""
    return np.tensordot(log_area_weights(x), np.abs(1.0 - np.asarray(f_values, dtype=np.float64)), axes=1)


def all_filled(rows: pd.DataFrame) -> pd.Series:
    """True at the rows whose mask fills the whole scope (``n_filled == n_scope``; a table without
    those columns: preserve ``f = 0`` and suppress ``f = 1``)."""
    if {"n_filled", "n_scope"} <= set(rows.columns):
        return rows["n_filled"].astype(float) == rows["n_scope"].astype(float)
    f = rows["f"].astype(float)
    return ((rows["mode"] == "preserve") & (f == 0)) | ((rows["mode"] == "suppress") & (f == 1))


def metric_matrix(data: AblationData, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-protein values of ``metric`` (an ablation-table column of ``METRICS``) for every row
    ``(n_rows, n_test)`` and for the intact model ``(n_test,)``: correctness (0/1) for accuracy, the
    log-probability of the true class for ``mean_logp`` (NaN where not measured)."""
    if metric == "accuracy":
        return data.correct.astype(np.float64), (data.full_pred == data.y_true).astype(np.float64)
    if metric == "mean_logp":
        n_rows, n_test = data.correct.shape
        if data.logp is None or data.full_logp is None:
            return np.full((n_rows, n_test), np.nan), np.full(n_test, np.nan)
        return np.asarray(data.logp, dtype=np.float64), np.asarray(data.full_logp, dtype=np.float64)
    raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")


def empty_rows(table: pd.DataFrame, keys: Sequence[str]) -> dict[tuple, int | None]:
    """Per group of ``keys`` (e.g. scope, scope name, fill), the position in ``table`` of its first
    row whose mask fills the whole scope (``all_filled``), or None when the group has none."""
    filled = all_filled(table).to_numpy()
    out: dict[tuple, int | None] = {}
    for i, key in enumerate(table[list(keys)].astype(str).itertuples(index=False, name=None)):
        if out.get(key) is None:
            out[key] = i if filled[i] else None
    return out


def faithfulness_per_row(datas: Sequence[AblationData]) -> tuple[dict[str, np.ndarray], list[str]]:
    """F of every row of the replicates' (same) tables, averaged over the replicates, per metric
    (``METRICS``' names: ``{"accuracy": (n_rows,), "logp": (n_rows,)}``), and per row the note that
    says why it is NaN (``""`` where defined). Each replicate's F uses its own m(empty) (its
    scope's all-filled row, same fill) and m(full) (its intact model)."""
    table = with_fill(datas[0].table)
    where = empty_rows(table, EMPTY_KEYS)
    group = list(table[list(EMPTY_KEYS)].astype(str).itertuples(index=False, name=None))
    out: dict[str, np.ndarray] = {}
    notes = ["" if where[g] is not None else NO_EMPTY_NOTE for g in group]
    for column, name in METRICS.items():
        per_rep = []
        for d in datas:
            values, intact = metric_matrix(d, column)
            m = values.mean(1)
            full = intact.mean()
            empty = np.array([m[where[g]] if where[g] is not None else np.nan for g in group])
            per_rep.append(normalised(m, empty, full))
            if column == "accuracy":
                for i, g in enumerate(group):
                    if where[g] is not None and not notes[i] and empty[i] == full:
                        notes[i] = UNDEFINED_NOTE
        out[name] = np.mean(per_rep, axis=0)
    return out, notes


def _intervals(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap draws; NaN when any draw is undefined (F
    undefined in a resample: the interval is not that of the statistic)."""
    if draws.size == 0 or not np.all(np.isfinite(draws)):
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _pooled(per_rep: np.ndarray, pick: np.ndarray | None) -> np.ndarray:
    """Bootstrap draws ``(B,)`` averaged over the replicates each draw picked (``per_rep``: ``(R, B)``)."""
    if pick is None:
        return per_rep.mean(0)
    cols = np.arange(per_rep.shape[1])
    return per_rep[pick.T, cols[None, :]].mean(0)


def area_gap(
    method: Sequence[np.ndarray],
    random: Sequence[np.ndarray],
    empty: Sequence[np.ndarray],
    full: Sequence[np.ndarray],
    grid: np.ndarray,
    counts: np.ndarray | None,
    seed_counts: Sequence[np.ndarray] | None,
    pick: np.ndarray | None,
    confidence: float,
) -> tuple[dict[str, float], np.ndarray]:
    """CPR and CMD of a method's curve against random's, averaged over the replicates, with the
    bootstrap of ``kneurons.stats.random`` (the same draws as the gap in accuracy).

    Per replicate ``r``: ``method[r]`` ``(n_f, n_test)`` per-protein metric values on ``grid``,
    ``random[r]`` ``(seeds, n_f, n_test)``, ``empty[r]`` / ``full[r]`` ``(n_test,)`` those of the
    scope's all-filled mask and of the intact model. ``counts`` ``(n_test, B)``: the protein
    weights of the draws; ``seed_counts[r]`` ``(B, seeds)``: each draw's seed weights; ``pick``
    ``(B, R)``: the replicates each draw averages (None: one replicate, or no replicate draw).
    Random's F is that of its seed-averaged metric (linear: the mean of its seeds' F).
    Returns the row's numbers and the CPR gap's bootstrap draws ``(B,)`` (empty without bootstrap),
    for its p-value (``kneurons.stats.random.bootstrap_p``).
    """
    w = log_area_weights(grid)
    nan = float("nan")

    def areas(m: np.ndarray, e: np.ndarray | float, fu: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        f = normalised(m, e, fu)
        return np.tensordot(w, f, axes=1), np.tensordot(w, np.abs(1.0 - f), axes=1)

    point = []
    for mv, rv, e, fu in zip(method, random, empty, full, strict=True):
        em, fm = float(e.mean()), float(fu.mean())
        point.append((*areas(mv.mean(1), em, fm), *areas(rv.mean(2).mean(0), em, fm), em, fm))
    cpr_m, cmd_m, cpr_r, cmd_r, em, fm = (float(np.mean([p[i] for p in point])) for i in range(6))
    out = {
        "cpr_method": cpr_m,
        "cpr_random": cpr_r,
        "cpr_gap": cpr_m - cpr_r,
        "ci_lo": nan,
        "ci_hi": nan,
        "p_value": nan,
        "cmd_method": cmd_m,
        "cmd_random": cmd_r,
        "cmd_gap": cmd_m - cmd_r,
        "cmd_ci_lo": nan,
        "cmd_ci_hi": nan,
        "m_empty": em,
        "m_full": fm,
    }
    if counts is None or seed_counts is None:
        return out, np.zeros(0)
    cpr_gap, cmd_gap = [], []
    for mv, rv, e, fu, sc in zip(method, random, empty, full, seed_counts, strict=True):
        e_b, fu_b = e @ counts, fu @ counts  # (B,)
        cpr_mb, cmd_mb = areas(mv @ counts, e_b, fu_b)
        rnd = np.einsum("sfb,bs->fb", rv @ counts, sc)
        cpr_rb, cmd_rb = areas(rnd, e_b, fu_b)
        cpr_gap.append(cpr_mb - cpr_rb)
        cmd_gap.append(cmd_mb - cmd_rb)
    cpr_draws, cmd_draws = _pooled(np.stack(cpr_gap), pick), _pooled(np.stack(cmd_gap), pick)
    out["ci_lo"], out["ci_hi"] = _intervals(cpr_draws, confidence)
    out["cmd_ci_lo"], out["cmd_ci_hi"] = _intervals(cmd_draws, confidence)
    return out, cpr_draws


def faithfulness_row(
    values: Sequence[tuple[np.ndarray, np.ndarray]],
    rows: np.ndarray,
    random_rows: Sequence[np.ndarray],
    empty_at: int | None,
    grid: np.ndarray,
    counts: np.ndarray | None,
    seed_counts: Sequence[np.ndarray] | None,
    pick: np.ndarray | None,
    head: dict[str, Any],
    confidence: float,
    n_boot: int,
) -> dict[str, Any]:
    """One row of the ``faithfulness`` table: a method's CPR and CMD against random for one metric.

    ``values[r]``: replicate ``r``'s per-row and intact per-protein values (``metric_matrix``);
    ``rows``: the method's rows on ``grid``; ``random_rows[r]`` ``(seeds, n_f)``: random's;
    ``empty_at``: the scope's all-filled row (None: F undefined, a NaN row with ``NO_EMPTY_NOTE``).
    ``head``: the row's key columns; the bootstrap arguments as ``area_gap``'s.
    """
    head = {**head, "n_test": values[0][0].shape[1]}
    tail = {"n_boot": n_boot, "confidence": confidence, "n_replicates": len(values)}
    if empty_at is None:
        return {**head, **tail, "excludes_zero": False, "note": NO_EMPTY_NOTE}
    got, draws = area_gap(
        [v[rows] for v, _ in values],
        [v[r] for (v, _), r in zip(values, random_rows, strict=True)],
        [v[empty_at] for v, _ in values],
        [intact for _, intact in values],
        grid,
        counts,
        seed_counts,
        pick,
        confidence,
    )
    if draws.size and np.all(np.isfinite(draws)):
        got["p_value"] = bootstrap_p(draws)
    undefined = not np.isfinite(got["cpr_gap"]) and got["m_empty"] == got["m_full"]
    return {
        **head,
        **got,
        **tail,
        "excludes_zero": bool(got["ci_lo"] > 0 or got["ci_hi"] < 0),
        "note": UNDEFINED_NOTE if undefined else "",
    }
