"""An independent recomputation of the claims table, for tests (never imports ``kneurons.stats``).

Every claim but 3 is recomputed per fill (``ablate.fills``; the fills in the order the statistics
table names them), and ``robust`` / ``other_fills`` from the recomputed verdicts. Claims 1, 2 and 4
read the normalised faithfulness table where the run wrote one: the estimate (the accuracy's CPR
gap to random, MIB's F = (m - m(empty)) / (m(full) - m(empty)) integrated over ln f and divided by
the log-span) is recomputed from the ablation tables and their predictions' intact model; the
interval and p-value are taken from the table, as the gap to random's are.

From the files a run writes (the gap to random, the pooled density, each replicate's class
specificity, the intact model's predictions on each set's evaluated proteins and on claim 5's held-out
ones, and optionally the ablation tables; for claim 6 the compactness table and, optionally, each
replicate's same-site bases tables and predictions, from which its estimate (the smaller of the
features' CPR gaps to the stream's dimensions or PCA components, per fraction and per directions
kept), its paired bootstrap interval and its one-sided p-value are redrawn as
``kneurons.stats.compactness`` documents them), this
recomputes every claim's estimate, interval, p-value, verdict and baseline note with its own code
(pandas, numpy and scipy's ready-made tests), and compares the result with the claims the workflow
made: ``evaluate_claims``' frame at full precision, or a written ``claims.tsv`` within a relative
5e-3 (three significant digits), a p-value written as ``< 0.001`` read as a bound.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

CURVE_CLAIMS = {("1", "activation"): "preserve", ("2", "ig"): "preserve", ("4", "ig"): "suppress"}
DIRECTION = {"1": +1, "2": +1, "3": +1, "4": -1, "5": +1, "6": +1, "7": +1}
MARGIN_KEY = {
    "1": "auc_margin",
    "2": "auc_margin",
    "3": "log2_enrichment_margin",
    "4": "auc_margin",
    "5": "specificity_margin",
    "6": "compactness_margin",
    "7": "concept_margin",
}
#: One replicate's ablation files: its tables and their ``.pred.npz``, in the same order.
Files = tuple[list[Path], list[Path]]


@dataclass
class Compactness:
    """What claim 6 is recomputed from (``bases`` empty: the table's numbers are taken as they are, as
    the gap to random's interval is)."""

    table: Path  # stats/compactness.tsv
    bases: list[Files] = field(default_factory=list)  # per replicate: its same-site bases tables
    n_boot: int = 1000  # stats.bootstrap
    seed: int = 0  # the top-level seed


@dataclass
class ConceptFiles:
    """What claim 7 is recomputed from: the concept stage's per-unit and per-concept tables."""

    units: Path  # concepts/units.tsv
    concepts: Path  # concepts/concepts.tsv
    n_boot: int = 1000  # stats.bootstrap
    seed: int = 0  # the top-level seed


@dataclass
class SetFiles:
    """The files behind one evaluation set's claims."""

    name: str  # "test" or the external set's name
    random_gap: Path
    intact: list[Path]  # per replicate: one ablation job's .pred.npz on the set (its evaluated proteins)
    proteins: str  # which proteins those are, as the note names them ("the test proteins of ...")
    density: Path | None = None  # the pooled stats/density.tsv (test set only)
    class_specificity: list[Path] = field(default_factory=list)  # one per replicate
    class_summary: list[Path] = field(default_factory=list)  # per replicate: claim 5's held-out proteins
    class_proteins: str = ""  # which proteins claim 5's are, as the note names them
    ablation: list[list[Path]] = field(default_factory=list)  # per replicate: its ablation tables
    compactness: Compactness | None = None  # claim 6 (test set only)
    faithfulness: Path | None = None  # stats/faithfulness.tsv: claims 1, 2 and 4 read its CPR gaps
    concepts: ConceptFiles | None = None  # claim 7 (test set only)


def _share_interval(count: float, n: int, confidence: float) -> tuple[float, float]:
    """Clopper-Pearson: scipy's exact binomial interval for an integer count; the Beta quantiles
    that define it for a count pooled over replicates."""
    if abs(count - round(count)) < 1e-9:
        ci = sps.binomtest(int(round(count)), n).proportion_ci(confidence_level=confidence, method="exact")
        return float(ci.low), float(ci.high)
    a = 1 - confidence
    return float(sps.beta(count, n - count + 1).ppf(a / 2)), float(
        sps.beta(count + 1, n - count).ppf(1 - a / 2)
    )


def _rule(lo: float, hi: float, direction: int, margin: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if direction < 0:
        lo, hi = -hi, -lo
    if lo > 0:
        return "supported"
    if hi < 0 or (lo >= -margin and hi <= margin):
        return "not supported"
    return "inconclusive"


def _tail_of_sum(count: int, total: int, size: int, each: int, reps: int) -> float:
    """P(sum of ``reps`` independent hypergeometric(total, size, each) counts >= ``count``)."""
    pmf = sps.hypergeom(total, size, each).pmf(np.arange(min(size, each) + 1))

    @cache
    def tail(c: int, r: int) -> float:
        if c <= 0:
            return 1.0
        if r == 0:
            return 0.0
        return float(sum(p * tail(c - a, r - 1) for a, p in enumerate(pmf)))

    return min(1.0, tail(count, reps))


def _fill_of(t: pd.DataFrame) -> pd.Series:
    """A table's fill column as text ("zero" where a hand-made table has none)."""
    return t["fill"].fillna("").astype(str) if "fill" in t.columns else pd.Series("zero", index=t.index)


def _fills(t: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(_fill_of(t)))


def _auc_gap(tables: list[list[Path]], method: str, mode: str, fill: str) -> float:
    """Trapezoid area of (method's accuracy - random's, seeds averaged), both averaged over replicates."""

    def curve(paths: list[Path], name: str) -> pd.Series:
        t = pd.concat([pd.read_csv(p, sep="\t") for p in paths])
        t = t[(t["method"] == name) & (t["scope"] == "global") & (t["mode"] == mode) & (_fill_of(t) == fill)]
        return t.groupby("f")["accuracy"].mean()  # over seeds for random; one row per f otherwise

    m = pd.concat([curve(paths, method) for paths in tables], axis=1).mean(axis=1)
    rnd = pd.concat([curve(paths, "random") for paths in tables], axis=1).mean(axis=1)
    gap = (m - rnd).sort_index()
    return float(np.trapezoid(gap.to_numpy(), gap.index.to_numpy(dtype=float)))


def _log_area(f: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid area of y over ln f across the positive f, divided by ln(max f / min f)."""
    keep = f > 0
    lf = np.log(f[keep])
    return float(np.trapezoid(y[keep], lf) / (lf[-1] - lf[0]))


def _cpr_gap(tables: list[list[Path]], method: str, mode: str, fill: str) -> float:
    """The accuracy's CPR of the method's curve minus random's (seeds averaged), per replicate with
    its own m(empty) (the all-filled mask: preserve f = 0 or suppress f = 1 of the global scope and
    fill) and m(full) (its intact model, from the ``.pred.npz``), averaged over the replicates."""
    gaps = []
    for paths in tables:
        t = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
        t = t[(t["scope"] == "global") & (_fill_of(t) == fill)]
        empty_rows = t[
            ((t["mode"] == "preserve") & (t["f"] == 0)) | ((t["mode"] == "suppress") & (t["f"] == 1))
        ]
        empty = float(empty_rows["accuracy"].iloc[0])
        with np.load(str(paths[0])[: -len(".tsv")] + ".pred.npz") as npz:
            full = float((npz["full_pred"] == npz["y_true"]).mean())
        t = t[t["mode"] == mode]
        areas = {}
        for name in (method, "random"):
            acc = t[t["method"] == name].groupby("f")["accuracy"].mean().sort_index()
            f_values = (acc.to_numpy() - empty) / (full - empty)
            areas[name] = _log_area(acc.index.to_numpy(dtype=float), f_values)
        gaps.append(areas[method] - areas["random"])
    return float(np.mean(gaps))


def _bases_replicate(files: Files) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One replicate's same-site bases rows (every stream), correctness ``(rows, n)`` and the intact
    model's ``(n,)``, read with pandas and numpy from the files."""
    tables, correct, intact = [], [], None
    for table, pred in zip(*files, strict=True):
        df = pd.read_csv(table, sep="\t", keep_default_na=False, na_values=[""])
        with np.load(pred) as npz:
            assert len(npz["keys"]) == len(df), (table, pred)
            correct.append(npz["pred"] == npz["y_true"][None, :])
            intact = npz["full_pred"] == npz["y_true"]
        tables.append(df)
    return pd.concat(tables, ignore_index=True), np.concatenate(correct).astype(float), intact.astype(float)


def _cprs(x: np.ndarray, acc: np.ndarray, empty: np.ndarray, full: np.ndarray) -> np.ndarray:
    """CPR of curves ``acc`` ``(n_x, B)`` with their empty and full metrics ``(B,)``: F = (acc - empty)
    / (full - empty) integrated over ln x (positive x) by the trapezoid rule, over the log-span."""
    keep = x > 0
    lx = np.log(x[keep])
    with np.errstate(divide="ignore", invalid="ignore"):
        f_values = (acc[keep] - empty) / (full - empty)
    return np.trapezoid(f_values, lx, axis=0) / (lx[-1] - lx[0])


def _compactness(c: Compactness, conf: float) -> list[tuple]:
    """Claim 6's rows ``(claim, method, fill, detail, estimate, lo, hi, p, source, extra)``, per stream
    layer, method, fill and comparison with the stream's dimensions and its PCA components."""
    source = "stats/compactness.tsv"
    if not c.bases:
        table = pd.read_csv(c.table, sep="\t", keep_default_na=False, na_values=[""])
        table = table[table["comparison"].isin(["dimensions", "pca"])]
        return [
            ("6", str(r.method), str(r.fill), f"{r.comparison} L{int(r.layer)}", float(r.estimate))
            + (float(r.ci_lo), float(r.ci_hi), float(r.p_value), source, "")
            for r in table.itertuples()
        ]
    reps = [_bases_replicate(files) for files in c.bases]
    t = reps[0][0]
    n = len(reps[0][2])
    rng = np.random.default_rng(c.seed)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=c.n_boot) / n  # (B, n): proteins first
    picks = rng.integers(0, len(reps), size=(c.n_boot, len(reps))) if len(reps) > 1 else None  # replicates
    # column 0: the point estimate (every protein once); then the bootstrap draws
    w = np.concatenate([np.full((1, n), 1 / n), weights]).T  # (n, 1 + B)

    def curve(basis: str, scope: str, method: str, fill: str) -> tuple[np.ndarray, np.ndarray, int]:
        """``(x, row positions, all-filled row)`` of one basis's preserve curve on one grid."""
        rows = t[(t["basis"] == basis) & (t["scope"] == scope) & (t["method"] == method)]
        rows = rows[(rows["fill"].astype(str) == fill) & (rows["mode"] == "preserve")].sort_values("f")
        kept = (rows["n_scope"] - rows["n_filled"]).to_numpy(dtype=float)
        x = rows["f"].to_numpy(dtype=float) if scope == "global" else kept
        _, first = np.unique(x, return_index=True)
        same = t[(t["basis"] == basis) & (t["scope"] == scope) & (t["fill"].astype(str) == fill)]
        empty = same.index[(same["n_filled"] == same["n_scope"]).to_numpy()][0]
        return x[np.sort(first)], rows.index.to_numpy()[np.sort(first)], int(empty)

    def gap(method: str, fill: str, other: str, scope: str) -> np.ndarray:
        """The features' CPR minus the other basis's per replicate and weight column ``(R, 1 + B)``."""
        fx, frows, fe = curve("features", scope, method, fill)
        ox, orows, oe = curve(other, scope, method, fill)
        if scope == "directions":  # the counts both bases have, and the empty set
            common = np.intersect1d(fx[fx > 0], ox[ox > 0])
            fk, ok = np.isin(fx, np.r_[0, common]), np.isin(ox, np.r_[0, common])
            fx, frows, ox, orows = fx[fk], frows[fk], ox[ok], orows[ok]
        out = []
        for _, correct, intact in reps:
            full = intact @ w
            feat = _cprs(fx, correct[frows] @ w, correct[fe] @ w, full)
            out.append(feat - _cprs(ox, correct[orows] @ w, correct[oe] @ w, full))
        return np.stack(out)

    def pooled(per_rep: np.ndarray) -> tuple[float, np.ndarray]:
        """The point (every replicate) and the draws (the picked replicates' mean)."""
        draws = per_rep[:, 1:]
        if picks is not None:
            draws = np.array([draws[picks[b], b].mean() for b in range(c.n_boot)])
        else:
            draws = draws[0]
        return float(per_rep[:, 0].mean()), draws

    rows = []
    pre = t[t["mode"] == "preserve"]
    for layer in sorted(pre["layer"].dropna().astype(int).unique()):
        at = pre[pre["layer"] == layer]
        for method in [m for m in dict.fromkeys(at["method"].astype(str)) if m != "random"]:
            for fill in dict.fromkeys(at["fill"].astype(str)):
                for other in ("dimensions", "pca"):
                    if other not in set(at["basis"]):
                        continue
                    (ef, df), (ed, dd) = (
                        pooled(gap(method, fill, other, s)) for s in ("global", "directions")
                    )
                    est, draws = min(ef, ed), np.minimum(df, dd)
                    lo = hi = p = float("nan")
                    if np.all(np.isfinite(draws)):  # an undefined F in a draw: no interval
                        a = (1 - conf) / 2
                        lo, hi = (float(q) for q in np.quantile(draws, [a, 1 - a]))
                        p = max(int((draws <= 0).sum()), 1) / c.n_boot
                    # the run says why a statistic is undefined (its m(empty) = m(full)) in the note
                    why = "" if np.isfinite(est) else "F undefined: m(empty) = m(full)"
                    rows.append(("6", method, fill, f"{other} L{layer}", est, lo, hi, p, source, why))
    return rows


def _concept_knowledge(c: ConceptFiles, conf: float) -> list[tuple]:
    """Claim 7 per kind of unit, from ``concepts/units.tsv``: the knowledge units' mean catalytic F1
    minus the module-weighted mean of all units, and its interval and p-value redrawn in the order
    ``kneurons.concepts.knowledge`` documents (kinds sorted; per module in (layer, module) order the
    knowledge and module resamples, then per module the random sets, then the Spearman resamples)."""
    concepts = pd.read_csv(c.concepts, sep="\t", keep_default_na=False)
    if not ((concepts["catalytic"].astype(str) == "True") & (concepts["control"] == "")).any():
        return []
    units = pd.read_csv(c.units, sep="\t", dtype={"module": str, "units": str})
    rng = np.random.default_rng(c.seed)
    rows = []
    for kind in sorted(units["units"].unique()):
        g = units[units["units"] == kind].reset_index(drop=True)
        if g["ig_score"].isna().all():
            continue
        f1 = g["catalytic_f1"].fillna(0.0).to_numpy(dtype=float)
        know = g["knowledge"].astype(str).eq("True").to_numpy()
        mods = sorted({(int(a), str(b)) for a, b in zip(g["layer"], g["module"], strict=True)})
        members = [np.flatnonzero((g["layer"] == a) & (g["module"] == b)) for a, b in mods]
        k_of = [m[know[m]] for m in members]
        weight = [len(k) / know.sum() for k in k_of]
        expected = sum(w * f1[m].mean() for w, m in zip(weight, members, strict=True))
        estimate = f1[know].mean() - expected
        k_draws = np.zeros(c.n_boot)
        m_draws = np.zeros(c.n_boot)
        for w, k, m in zip(weight, k_of, members, strict=True):
            if len(k):
                k_draws += f1[k][rng.integers(0, len(k), (c.n_boot, len(k)))].sum(axis=1)
            m_draws += w * f1[m][rng.integers(0, len(m), (c.n_boot, len(m)))].mean(axis=1)
        boots = k_draws / know.sum() - m_draws
        random_means = np.zeros(c.n_boot)
        for k, m in zip(k_of, members, strict=True):
            if len(k):
                order = rng.permuted(np.tile(np.arange(len(m)), (c.n_boot, 1)), axis=1)
                random_means += f1[m][order[:, : len(k)]].sum(axis=1)
        random_means /= know.sum()
        for _ in range(c.n_boot):  # the Spearman resamples, drawn before the next kind's
            rng.integers(0, len(g), len(g))
        lo, hi = np.quantile(boots, [(1 - conf) / 2, (1 + conf) / 2])
        p = (1 + int((random_means >= f1[know].mean() - 1e-12).sum())) / (1 + c.n_boot)
        rows.append(("7", "ig", float(estimate), float(lo), float(hi), p, "concepts/knowledge.tsv"))
    return rows


def _verdict_of_baseline(acc: float, n: int, majority: float, proteins: str, confidence: float) -> str:
    """The numbers and words the baseline note must show, or ``""`` when the model beats the majority."""
    lo, hi = _share_interval(acc * n, n, confidence)
    return "" if lo > majority else f"{acc} {lo} {hi} {majority} {n}|{proteins}"


def _baseline(s: SetFiles, confidence: float) -> str:
    """The intact model on the set's evaluated proteins, from the predictions (numpy): the mean over
    the replicates of the share the intact model gets right, and the majority share of the labels."""
    accs, truth = [], None
    for path in s.intact:
        with np.load(path) as npz:
            y, full = npz["y_true"], npz["full_pred"]
        assert truth is None or np.array_equal(truth, y), (s.name, path)
        truth = y
        accs.append(float((full == y).mean()))
    counts = pd.Series(truth).value_counts()
    n, majority = int(counts.sum()), float(counts.iloc[0] / counts.sum())
    return _verdict_of_baseline(float(np.mean(accs)), n, majority, s.proteins, confidence)


def _held_out_baseline(s: SetFiles, confidence: float) -> str:
    """Claim 5's: the intact model on the characterisation's held-out proteins (class_summary.json)."""
    blocks = [json.loads(Path(p).read_text())["intact"] for p in s.class_summary]
    assert len({(b["n"], b["majority_baseline"]) for b in blocks}) == 1, blocks
    acc = float(np.mean([b["accuracy"] for b in blocks]))
    n, majority = int(blocks[0]["n"]), float(blocks[0]["majority_baseline"])
    return _verdict_of_baseline(acc, n, majority, s.class_proteins, confidence)


def recompute(sets: list[SetFiles], stats: dict) -> pd.DataFrame:
    """Every claim row of every set, recomputed: ``claim, method, set, fill, detail`` (claim 6's
    comparison), ``estimate, ci_lo, ci_hi, p_value, verdict``, ``baseline`` (the numbers the note must
    show, or ``""``), ``extra`` (another reason for an inconclusive row: F undefined), ``source``, and
    ``robust`` / ``other_fills`` over the fills of each claim."""
    conf = float(stats["confidence"])
    margins = stats["claims"]
    rows = []
    for s in sets:
        base = _baseline(s, conf)
        gap_source = "stats/random_gap.tsv" if s.name == "test" else f"external/{s.name}/random_gap.tsv"
        faith_source = "stats/faithfulness.tsv" if s.name == "test" else f"external/{s.name}/faithfulness.tsv"
        found = []
        gap = pd.read_csv(s.random_gap, sep="\t")
        faith = pd.read_csv(s.faithfulness, sep="\t", keep_default_na=False) if s.faithfulness else None
        curves = faith if faith is not None else gap
        for (claim, method), mode in CURVE_CLAIMS.items():
            for fill in _fills(curves):
                if faith is not None:
                    r = faith[
                        (faith["method"] == method)
                        & (faith["scope"] == "global")
                        & (faith["mode"] == mode)
                        & (faith["fill"].astype(str) == fill)
                        & (faith["metric"] == "accuracy")
                    ]
                else:
                    r = gap[
                        (gap["method"] == method)
                        & (gap["scope"] == "global")
                        & (gap["mode"] == mode)
                        & (_fill_of(gap) == fill)
                    ]
                if r.empty:
                    continue
                r = r.iloc[0]
                num = (lambda v: float("nan") if v == "" else float(v)) if faith is not None else float
                est = num(r["cpr_gap"] if faith is not None else r["auc_gap"])
                if s.ablation:
                    again = (_cpr_gap if faith is not None else _auc_gap)(s.ablation, method, mode, fill)
                    same = (math.isnan(est) and math.isnan(again)) or math.isclose(
                        est, again, rel_tol=1e-9, abs_tol=1e-12
                    )
                    assert same, (s.name, method, mode, fill, est, again)
                extra = str(r["note"]) if faith is not None else ""
                found.append(
                    (
                        claim,
                        method,
                        fill,
                        "",
                        est,
                        num(r["ci_lo"]),
                        num(r["ci_hi"]),
                        num(r["p_value"]),
                        faith_source if faith is not None else gap_source,
                        extra,
                    )
                )
        if s.density is not None:
            dens = pd.read_csv(s.density, sep="\t")
            for method in ("activation", "ig"):
                r = dens[
                    (dens["method"] == method)
                    & (dens["level"] == "module_type")
                    & (dens["module"] == "k_proj")
                ]
                if r.empty:
                    continue
                r = r.iloc[0]
                count, n_top, reps = int(r["count"]), int(r["n_top"]), int(r["n_replicates"])
                share = int(r["n_neurons"]) / int(r["n_total"])
                lo, hi = _share_interval(count, n_top, conf)

                def log2r(p: float, share: float = share) -> float:
                    return math.log2(p / share) if p > 0 else float("-inf")

                p = _tail_of_sum(count, int(r["n_total"]), int(r["n_neurons"]), n_top // reps, reps)
                found.append(
                    (
                        "3",
                        method,
                        "",
                        "",
                        log2r(count / n_top),
                        log2r(lo),
                        log2r(hi),
                        p,
                        "stats/density.tsv",
                        "",
                    )
                )
        if s.class_specificity:
            spec = pd.concat([pd.read_csv(p, sep="\t", dtype={"class": str}) for p in s.class_specificity])
            spec["fill"] = _fill_of(spec)
            for fill in _fills(spec):
                per_class = spec[spec["fill"] == fill].groupby("class")[["drop_own", "drop_other"]].mean()
                d = (per_class["drop_own"] - per_class["drop_other"]).to_numpy(dtype=float)
                mean = float(d.mean())
                if len(d) < 2 or np.ptp(d) == 0:
                    lo = hi = mean
                    p = 1.0 if mean == 0 else 0.0
                else:
                    lo, hi = sps.t.interval(conf, len(d) - 1, loc=mean, scale=sps.sem(d))
                    p = float(sps.ttest_1samp(d, 0.0).pvalue)
                found.append(
                    (
                        "5",
                        "ig",
                        fill,
                        "",
                        mean,
                        float(lo),
                        float(hi),
                        p,
                        "characterise/class_specificity.tsv",
                        "",
                    )
                )
        if s.compactness is not None:
            found.extend(_compactness(s.compactness, conf))
        held = _held_out_baseline(s, conf) if s.class_summary else base
        if s.concepts is not None:  # claim 7: no fill, one row per kind of unit
            found.extend((c, m, "", "", *rest, "") for c, m, *rest in _concept_knowledge(s.concepts, conf))
        for claim, method, fill, detail, est, lo, hi, p, source, extra in found:
            claim_base = held if claim == "5" else base
            decided = _rule(lo, hi, DIRECTION[claim], margins[MARGIN_KEY[claim]])
            rows.append(
                {
                    "claim": claim,
                    "method": method,
                    "set": s.name,
                    "fill": fill,
                    "detail": detail,
                    "estimate": est,
                    "ci_lo": lo,
                    "ci_hi": hi,
                    "p_value": p,
                    "verdict": "inconclusive" if (claim_base or extra) else decided,
                    "baseline": claim_base,
                    "extra": extra,
                    "source": source,
                }
            )
    out = pd.DataFrame(rows)
    out["robust"], out["other_fills"] = None, ""
    for _, g in out[out["fill"] != ""].groupby(["claim", "method", "set", "detail"]):
        if len(g) > 1:
            for i in g.index:
                out.at[i, "robust"] = g["verdict"].nunique() == 1
                out.at[i, "other_fills"] = "; ".join(f"{r.fill}: {r.verdict}" for r in g.drop(i).itertuples())
    return out


def _number(text: object) -> tuple[float, bool]:
    """A claims-table value as (number, is an upper bound): ``< 0.001`` reads as (0.001, True)."""
    t = str(text).strip()
    m = re.fullmatch(r"<\s*(\S+)", t)
    return (float(m.group(1)), True) if m else (float(t), False)


def _rounding(text: object) -> float:
    """Half a unit in the last written decimal of a number as written for people (``0.065``: 5e-4);
    0 for a full-precision value or one in scientific notation (compared relatively)."""
    t = str(text).strip()
    if isinstance(text, float) or "e" in t.lower() or "." not in t:
        return 0.0
    return 0.5 * 10.0 ** -len(t.split(".")[1])


def _detail(statistic: str) -> str:
    """Claim 6's comparison and stream in its statistic's words (``pca L2``); ``""`` for the others."""
    m = re.search(r"SAE features - (\w+) \(stream L(\d+)", statistic)
    return f"{m.group(1)} L{m.group(2)}" if m else ""


def compare(got: pd.DataFrame, want: pd.DataFrame, rel: float) -> list[str]:
    """What differs between the claims ``got`` (the workflow's, full precision or as written) and the
    recomputed ``want``: numbers beyond ``rel`` (relative) or beyond the rounding of what was written
    (half a unit in its last decimal), verdicts, notes, sources, rows."""
    problems = []
    # claim 7 has one row per kind of unit under one method: its statistic names the kind
    key = ["claim", "method", "set", "fill", "detail", "row"]
    fill = got["fill"].fillna("").astype(str) if "fill" in got.columns else ""
    detail = got["statistic"].astype(str).map(_detail)
    g = got.assign(claim=got["claim"].astype(str), fill=fill, detail=detail)
    g = g.assign(row=g.groupby(key[:-1]).cumcount()).set_index(key)
    w = want.assign(row=want.groupby(key[:-1]).cumcount()).set_index(key)
    if sorted(g.index) != sorted(w.index):
        return [f"rows differ: got {sorted(g.index)}, recomputed {sorted(w.index)}"]
    for k, row in w.iterrows():
        have = g.loc[k]
        for col in ("estimate", "ci_lo", "ci_hi", "p_value"):
            if (pd.isna(have[col]) or str(have[col]).strip() == "") and math.isnan(row[col]):
                continue  # undefined on both sides (F undefined, no bootstrap)
            value, bound = _number(have[col])
            if bound:
                ok = row[col] <= value * (1 + rel)
            elif math.isinf(row[col]) or math.isinf(value):
                ok = row[col] == value
            else:
                written = _rounding(have[col]) * (1 + 1e-9)
                if col == "p_value" and str(have.get("p_floor", "")).strip() not in ("", "nan"):
                    # A bootstrap p counts the draws on the other side of 0; a draw at 0 up to float
                    # rounding (two equal curves) may fall on either side in the two computations:
                    # one draw, 1/B (p_floor), apart at most.
                    written += _number(have["p_floor"])[0] * (1 + 1e-9)
                ok = math.isclose(value, row[col], rel_tol=rel, abs_tol=max(written, 1e-12))
            if not ok:
                problems.append(f"{k} {col}: {have[col]} vs recomputed {row[col]!r}")
        if have["verdict"] != row["verdict"]:
            problems.append(f"{k} verdict: {have['verdict']} vs recomputed {row['verdict']}")
        if str(have["source"]) != row["source"]:
            problems.append(f"{k} source: {have['source']} vs recomputed {row['source']}")
        note = "" if pd.isna(have["note"]) else str(have["note"])
        robust = "" if pd.isna(have["robust"]) else str(have["robust"])
        if robust != ("" if row["robust"] is None else str(bool(row["robust"]))):
            problems.append(f"{k} robust: {robust!r} vs recomputed {row['robust']!r}")
        others = "" if pd.isna(have["other_fills"]) else str(have["other_fills"])
        if others != row["other_fills"]:
            problems.append(f"{k} other_fills: {others!r} vs recomputed {row['other_fills']!r}")
        extra = row["extra"]
        if extra:
            if extra not in note:
                problems.append(f"{k} note: {note!r} lacks {extra!r}")
            note = note.replace(extra, "").strip("; ")
        if bool(note) != bool(row["baseline"]):
            problems.append(f"{k} note: {note!r} vs recomputed baseline {row['baseline']!r}")
        elif note:
            numbers, proteins = row["baseline"].split("|")
            head, _, which = note.partition("; ")
            shown = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", head)]
            acc, lo, hi, majority, n = (float(x) for x in numbers.split())
            if not np.allclose(shown, [acc, lo, hi, majority, n], atol=6e-4) or which != (
                f"{proteins})" if proteins else ""
            ):
                problems.append(f"{k} note: {note!r} vs recomputed {row['baseline']!r}")
    return problems


def _proteins(n: int, what: str, key: str, cap: int | None) -> str:
    return f"the {what} proteins of {key}" if cap is not None and n >= cap else f"every {what} protein"


def _n(pred: Path) -> int:
    with np.load(pred) as npz:
        return len(npz["y_true"])


def workflow_sets(results: Path, config: dict) -> list[SetFiles]:
    """The files behind a workflow run's claims (``results``: its results directory; ``config``: the
    validated configuration it ran with): the test split and every external set, every replicate."""
    reps = ["" if r == 0 else f"replicates/{r}/" for r in range(config["train"]["replicates"])]
    methods = list(config["score"]["methods"])
    cap = config["ablate"]["max_sequences"]
    scope = config["ablate"]["scopes"][0]
    intact = [results / p / f"ablation/{methods[0]}/{scope}.pred.npz" for p in reps]
    test = SetFiles(
        "test",
        results / "stats" / "random_gap.tsv",
        intact,
        _proteins(_n(intact[0]), "test", "ablate.max_sequences", cap),
    )
    test.density = results / "stats" / "density.tsv"
    test.faithfulness = results / "stats" / "faithfulness.tsv"
    test.ablation = [[results / p / f"ablation/{m}/global.tsv" for m in methods] for p in reps]
    ch = config["characterise"]
    if ch["enabled"]:
        test.class_specificity = [results / p / "characterise/class_specificity.tsv" for p in reps]
        test.class_summary = [results / p / "characterise/class_summary.json" for p in reps]
        n_held = json.loads(test.class_summary[0].read_text())["intact"]["n"]
        test.class_proteins = _proteins(n_held, ch["split"], "characterise.max_proteins", ch["max_proteins"])
    if (results / "stats" / "compactness.tsv").exists():  # same-site bases ablated: claim 6
        layers = [int(e["layer"]) for e in config["units"]["features"]]

        def files(prefix: str) -> Files:
            tables = [results / prefix / f"features/bases/layer{layer}.tsv" for layer in layers]
            return tables, [t.with_suffix(".pred.npz") for t in tables]

        test.compactness = Compactness(
            results / "stats" / "compactness.tsv",
            # the estimate, interval and p-value redrawn from every replicate's bases tables
            bases=[files(p) for p in reps],
            n_boot=config["stats"]["bootstrap"],
            seed=config["seed"],
        )
    if (results / "concepts" / "units.tsv").exists():  # the concept stage ran: claim 7
        test.concepts = ConceptFiles(
            results / "concepts" / "units.tsv",
            results / "concepts" / "concepts.tsv",
            n_boot=config["stats"]["bootstrap"],
            seed=config["seed"],
        )
    sets = [test]
    for name in sorted(config["evaluate"]["external"]):
        ext = results / "external" / name
        preds = [results / p / f"external/{name}/ablation/{methods[0]}.pred.npz" for p in reps]
        s = SetFiles(
            name, ext / "random_gap.tsv", preds, _proteins(_n(preds[0]), name, "ablate.max_sequences", cap)
        )
        s.faithfulness = ext / "faithfulness.tsv"
        s.ablation = [[results / p / f"external/{name}/ablation/{m}.tsv" for m in methods] for p in reps]
        sets.append(s)
    return sets
