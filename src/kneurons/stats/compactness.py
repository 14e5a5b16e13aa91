"""Claim 6: knowledge is more compact in an SAE's features than in other bases of the same stream
(torch-free: runs in the plots env).

The inputs are the same-site bases tables (``kneurons.jobs.bases``): at each SAE's stream, the SAE's
features, the stream's dimensions, its PCA components and a random orthogonal basis, each ranked by
every method and preserved top-f (the rest filled by the same fill, the same edit), on two grids:
the fraction of the basis (scope ``global``) and the number of directions kept (scope
``directions``). Per stream layer, non-random method, fill and comparison (the features against
``dimensions``, ``pca`` and, descriptive, ``random_basis``):

* ``gap_fraction``: CPR(features) - CPR(other basis) over the fraction grid, the accuracy's
  normalised faithfulness F integrated over ln f (``kneurons.stats.faithfulness``; each basis's own
  m(empty), its all-filled mask, and the intact model's m(full));
* ``gap_directions``: the same over the grid of directions kept (ln k), on the counts both bases
  have: 5% of 512 features is 26 directions, 5% of 64 dimensions 3, so a basis can look compact
  per fraction only because it is large;
* ``estimate``: the smaller of the two gaps. The claim is that the features are more compact in
  both readings, so its statistic is ``min(gap_fraction, gap_directions)``, drawn per bootstrap
  resample: ``supported`` needs the lower bound of that minimum above 0, i.e. both readings
  favouring the features in (almost) every resample; a clear loss in either reading makes it
  ``not supported``;
* the interval (``confidence``) and one-sided p-value ``P*(estimate <= 0)`` (``bootstrap_p``,
  floored at ``p_floor`` = 1/B) come from a paired bootstrap: every basis was evaluated on the same
  test proteins, so each resample reweights the proteins once for both bases, their empty sets and
  the intact model (``protein_weights``), and with R > 1 replicates then resamples the replicates
  (``replicate_picks``, the same picks for both), averaging the picked replicates' gaps. The draws
  come from ``numpy.random.default_rng(seed)`` (proteins, then replicates), shared by every row;
* descriptive columns: each side's CPR per reading, ``f95_*`` (the smallest fraction keeping
  ``keep_accuracy`` of the intact accuracy, NaN when never reached) and ``k95_*`` (the smallest
  number of directions doing so), the bases' sizes and the counts compared.

Where F is undefined for one side (m(empty) = m(full)) the row's numbers are NaN and ``note`` says
why; the claim is then inconclusive. Without bootstrap (B = 0) the interval and p-value are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kneurons.errors import InputError
from kneurons.stats.bootstrap import bootstrap_p, protein_weights, replicate_picks
from kneurons.stats.curves import f_threshold
from kneurons.stats.faithfulness import UNDEFINED_NOTE, all_filled, log_area_weights, normalised
from kneurons.stats.keys import fills_of, with_fill
from kneurons.tables import AblationData

#: The grids of a bases table: the fraction of the basis, and the number of directions kept.
GRIDS: dict[str, str] = {"fraction": "global", "directions": "directions"}
#: The bases the SAE's features are compared with, in order (``random_basis``: the null, descriptive).
COMPARED: tuple[str, ...] = ("dimensions", "pca", "random_basis")

#: Columns of ``stats/compactness.tsv``.
COMPACTNESS_COLUMNS: list[str] = [
    "layer",
    "method",
    "comparison",
    "fill",
    "estimate",
    "ci_lo",
    "ci_hi",
    "p_value",
    "p_floor",
    "gap_fraction",
    "gap_fraction_lo",
    "gap_fraction_hi",
    "gap_directions",
    "gap_directions_lo",
    "gap_directions_hi",
    "cpr_features_fraction",
    "cpr_other_fraction",
    "cpr_features_directions",
    "cpr_other_directions",
    "f95_features",
    "f95_other",
    "k95_features",
    "k95_other",
    "n_features",
    "n_other",
    "directions",
    "n_test",
    "n_replicates",
    "n_boot",
    "confidence",
    "keep_accuracy",
    "note",
]


@dataclass
class _Curve:
    """One basis's preserve curve on one grid, per replicate: the grid's ``x`` (f, or directions kept),
    correctness ``(n_x, n_test)``, the all-filled mask's ``(n_test,)`` and the intact model's."""

    x: np.ndarray
    correct: list[np.ndarray]
    empty: list[np.ndarray]
    full: list[np.ndarray]
    n_units: int

    def on(self, keep: np.ndarray) -> _Curve:
        """The curve at the points ``x`` in ``keep`` only."""
        idx = np.flatnonzero(np.isin(self.x, keep))
        return _Curve(self.x[idx], [c[idx] for c in self.correct], self.empty, self.full, self.n_units)

    def cpr(self, weights: np.ndarray | None) -> np.ndarray:
        """CPR per replicate ``(R,)`` (``weights`` None: the mean over the proteins) or per replicate and
        resample ``(R, B)`` (``weights`` ``(n_test, B)``)."""
        w = log_area_weights(self.x)
        out = []
        for c, e, fu in zip(self.correct, self.empty, self.full, strict=True):
            if weights is None:
                out.append(w @ normalised(c.mean(1), e.mean(), fu.mean()))
            else:
                out.append(np.tensordot(w, normalised(c @ weights, e @ weights, fu @ weights), axes=1))
        return np.asarray(out)

    def threshold(self, keep_accuracy: float) -> float:
        """The smallest ``x`` whose pooled accuracy keeps ``keep_accuracy`` of the pooled intact one."""
        acc = np.mean([c.mean(1) for c in self.correct], axis=0)
        full = float(np.mean([fu.mean() for fu in self.full]))
        return f_threshold(self.x, acc, full, keep_accuracy, "preserve")


def _curve(datas: Sequence[AblationData], rows: pd.DataFrame, empty_at: int, grid: str) -> _Curve:
    rows = rows.sort_values("f")
    kept = (rows["n_scope"] - rows["n_filled"]).to_numpy(dtype=float)
    x = rows["f"].to_numpy(dtype=float) if grid == "fraction" else kept
    if len(np.unique(x)) != len(x):  # two counts rounding to one mask: the same point
        _, first = np.unique(x, return_index=True)
        rows, x = rows.iloc[np.sort(first)], x[np.sort(first)]
    pos = rows.index.to_numpy()
    return _Curve(
        x,
        [d.correct[pos].astype(float) for d in datas],
        [d.correct[empty_at].astype(float) for d in datas],
        [(d.full_pred == d.y_true).astype(float) for d in datas],
        int(rows["n_scope"].iloc[0]),
    )


def _check(datas: Sequence[AblationData]) -> pd.DataFrame:
    if not datas:
        raise InputError("compactness: no bases tables")
    ref = datas[0]
    for r, d in enumerate(datas[1:], start=1):
        if not (np.array_equal(d.accessions, ref.accessions) and np.array_equal(d.y_true, ref.y_true)):
            raise InputError(
                f"compactness: replicate {r}'s bases were evaluated on other test proteins than "
                "replicate 0's (the bootstrap pairs them protein by protein)"
            )
        if len(d.table) != len(ref.table):
            raise InputError(f"compactness: replicate {r}'s bases tables have other rows than replicate 0's")
    table = with_fill(ref.table)
    missing = [c for c in ("basis", "n_scope", "n_filled") if c not in table.columns]
    if missing:
        raise InputError(f"compactness: the bases tables lack column(s) {missing} (features/bases/*.tsv)")
    return table


def compactness(
    datas: Sequence[AblationData],
    keep_accuracy: float = 0.95,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Claim 6's table (``COMPACTNESS_COLUMNS``; module docstring): one row per stream layer, non-random
    method, fill and comparison, in that order. ``datas[r]``: replicate ``r``'s bases tables (every
    SAE stream's, loaded together: same rows, same test proteins in every replicate)."""
    table = _check(datas)
    rng = np.random.default_rng(seed)
    n_test = len(datas[0].y_true)
    weights = protein_weights(rng, n_test, n_boot) if n_boot else None
    pick = replicate_picks(rng, len(datas), n_boot)
    alpha = (1 - confidence) / 2
    preserve = table[table["mode"] == "preserve"]
    filled = all_filled(table).to_numpy()
    rows = []
    for layer in sorted(preserve["layer"].dropna().astype(int).unique()):
        at = preserve[preserve["layer"] == layer]
        methods = [m for m in dict.fromkeys(at["method"].astype(str)) if m != "random"]
        for method in methods:
            for fill in fills_of(at):
                curves: dict[tuple[str, str], _Curve] = {}
                for basis in [b for b in ("features", *COMPARED) if b in set(at["basis"])]:
                    for grid, scope in GRIDS.items():
                        sel = at[
                            (at["basis"] == basis)
                            & (at["scope"] == scope)
                            & (at["method"] == method)
                            & (at["fill"].astype(str) == fill)
                        ]
                        same = (table["basis"] == basis) & (table["scope"] == scope) & (table["fill"] == fill)
                        empty = np.flatnonzero(same.to_numpy() & filled)
                        if sel.empty or not len(empty):
                            continue
                        curves[(basis, grid)] = _curve(datas, sel, int(empty[0]), grid)
                for other in COMPARED:
                    if not all((b, g) in curves for b in ("features", other) for g in GRIDS):
                        continue
                    rows.append(
                        _row(curves, other, weights, pick, alpha, keep_accuracy)
                        | {"layer": int(layer), "method": method, "comparison": other, "fill": fill}
                        | {"n_test": n_test, "n_replicates": len(datas), "n_boot": n_boot}
                        | {"confidence": confidence, "keep_accuracy": keep_accuracy}
                        | {"p_floor": 1.0 / n_boot if n_boot else float("nan")}
                    )
    out = pd.DataFrame(rows, columns=COMPACTNESS_COLUMNS)
    for col in ("layer", "n_features", "n_other"):
        out[col] = out[col].astype("Int64")
    return out


def _row(
    curves: dict[tuple[str, str], _Curve],
    other: str,
    weights: np.ndarray | None,
    pick: np.ndarray | None,
    alpha: float,
    keep: float,
) -> dict[str, object]:
    """The numbers of one comparison (module docstring)."""
    nan = float("nan")
    feat_k, other_k = curves[("features", "directions")], curves[(other, "directions")]
    common = np.intersect1d(feat_k.x[feat_k.x > 0], other_k.x[other_k.x > 0])
    sides = {
        "fraction": (curves[("features", "fraction")], curves[(other, "fraction")]),
        "directions": (feat_k.on(np.r_[0, common]), other_k.on(np.r_[0, common])),
    }
    out: dict[str, object] = {"note": ""}
    draws = {}
    for grid, (feat, oth) in sides.items():
        cf, co = float(feat.cpr(None).mean()), float(oth.cpr(None).mean())
        out[f"cpr_features_{grid}"], out[f"cpr_other_{grid}"], out[f"gap_{grid}"] = cf, co, cf - co
        out[f"gap_{grid}_lo"] = out[f"gap_{grid}_hi"] = nan
        if weights is not None:
            per_rep = feat.cpr(weights) - oth.cpr(weights)  # (R, B)
            if pick is not None:
                cols = np.arange(per_rep.shape[1])
                per_rep = per_rep[pick.T, cols[None, :]]
            draws[grid] = per_rep.mean(0)
            if np.all(np.isfinite(draws[grid])):
                out[f"gap_{grid}_lo"], out[f"gap_{grid}_hi"] = np.quantile(draws[grid], [alpha, 1 - alpha])
    out["estimate"] = min(out["gap_fraction"], out["gap_directions"])
    out["ci_lo"] = out["ci_hi"] = out["p_value"] = nan
    if draws:
        stat = np.minimum(draws["fraction"], draws["directions"])
        if np.all(np.isfinite(stat)):
            out["ci_lo"], out["ci_hi"] = (float(q) for q in np.quantile(stat, [alpha, 1 - alpha]))
            out["p_value"] = bootstrap_p(stat, "greater")
    if not np.isfinite(out["estimate"]):
        out["note"] = UNDEFINED_NOTE
    feat_f, oth_f = sides["fraction"]
    out |= {
        "f95_features": feat_f.threshold(keep),
        "f95_other": oth_f.threshold(keep),
        "k95_features": sides["directions"][0].threshold(keep),
        "k95_other": sides["directions"][1].threshold(keep),
        "n_features": feat_f.n_units,
        "n_other": oth_f.n_units,
        "directions": ",".join(str(int(k)) for k in common),
    }
    return out
