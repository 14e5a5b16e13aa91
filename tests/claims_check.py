"""An independent recomputation of the claims table, for tests (never imports ``kneurons.stats``).

From the files a run writes (the gap to random, the pooled density, each replicate's class
specificity, the intact model's predictions on each set's evaluated proteins and on claim 5's held-out
ones, and optionally the ablation tables; for claim 6
the compactness table and, optionally, each replicate's neuron and SAE-feature ablation tables and
predictions, from which its estimate, its paired bootstrap interval and its one-sided p-value are
redrawn as ``kneurons.stats.compactness`` documents them), this
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
    """What claim 6 is recomputed from (``neurons`` / ``features`` empty: the table's numbers are
    taken as they are, as the gap to random's interval is)."""

    table: Path  # stats/compactness.tsv
    neurons: list[Files] = field(default_factory=list)  # per replicate: global neuron ablations
    features: list[Files] = field(default_factory=list)  # per replicate: SAE-feature ablations
    n_boot: int = 1000  # stats.bootstrap
    seed: int = 0  # the top-level seed
    keep_accuracy: float = 0.95  # stats.keep_accuracy


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


def _auc_gap(tables: list[list[Path]], method: str, mode: str) -> float:
    """Trapezoid area of (method's accuracy - random's, seeds averaged), both averaged over replicates."""

    def curve(paths: list[Path], name: str) -> pd.Series:
        t = pd.concat([pd.read_csv(p, sep="\t") for p in paths])
        t = t[(t["method"] == name) & (t["scope"] == "global") & (t["mode"] == mode)]
        return t.groupby("f")["accuracy"].mean()  # over seeds for random; one row per f otherwise

    m = pd.concat([curve(paths, method) for paths in tables], axis=1).mean(axis=1)
    rnd = pd.concat([curve(paths, "random") for paths in tables], axis=1).mean(axis=1)
    gap = (m - rnd).sort_index()
    return float(np.trapezoid(gap.to_numpy(), gap.index.to_numpy(dtype=float)))


def _preserve_curves(files: Files) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per non-random method: (sorted f, correctness (n_f, n) of the global preserve rows), and the
    intact model's correctness (n,), read with pandas and numpy from the files."""
    curves, intact = {}, None
    for table, pred in zip(*files, strict=True):
        df = pd.read_csv(table, sep="\t")
        with np.load(pred) as npz:
            assert len(npz["keys"]) == len(df), (table, pred)
            correct = npz["pred"] == npz["y_true"][None, :]
            intact = npz["full_pred"] == npz["y_true"]
        sel = df[(df["method"] != "random") & (df["scope"] == "global") & (df["mode"] == "preserve")]
        for method, g in sel.groupby("method"):
            g = g.sort_values("f")
            curves[str(method)] = (g["f"].to_numpy(dtype=float), correct[g.index.to_numpy()].astype(float))
    return curves, intact.astype(float)


def _f95(f: np.ndarray, acc: np.ndarray, full: float, keep: float) -> float:
    """The smallest f whose accuracy reaches keep x full; 1.0 if none does; f = 0 read as the
    smallest positive f of the grid."""
    hits = [x for x, a in zip(f, acc, strict=True) if a >= keep * full - 1e-12]
    if not hits:
        return 1.0
    return min(hits) if min(hits) > 0 else float(min(x for x in f if x > 0))


def _compactness(c: Compactness, conf: float) -> list[tuple]:
    """Claim 6's rows: ``(claim, method, estimate, lo, hi, p, source)``."""
    source = "stats/compactness.tsv"
    if not c.neurons:
        table = pd.read_csv(c.table, sep="\t")
        return [
            (
                "6",
                str(r.method),
                float(r.log2_ratio),
                float(r.ci_lo),
                float(r.ci_hi),
                float(r.p_value),
                source,
            )
            for r in table.itertuples()
        ]
    sides = [[_preserve_curves(files) for files in reps] for reps in (c.neurons, c.features)]
    n = len(sides[0][0][1])
    reps = len(c.neurons)
    rng = np.random.default_rng(c.seed)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=c.n_boot) / n  # (B, n): proteins first
    picks = rng.integers(0, reps, size=(c.n_boot, reps)) if reps > 1 else None  # then replicates
    methods = sorted(set(sides[0][0][0]) & set(sides[1][0][0]))
    rows = []

    def fraction(side: list, method: str, w: np.ndarray | None, chosen) -> float:
        accs, fulls = [], []
        for r in chosen:
            f, correct = side[r][0][method]
            accs.append(correct.mean(1) if w is None else correct @ w)
            fulls.append(side[r][1].mean() if w is None else side[r][1] @ w)
        return _f95(f, np.mean(accs, axis=0), float(np.mean(fulls)), c.keep_accuracy)

    for method in methods:
        est = math.log2(
            fraction(sides[0], method, None, range(reps)) / fraction(sides[1], method, None, range(reps))
        )
        draws = []
        for b in range(c.n_boot):
            chosen = range(reps) if picks is None else picks[b]
            draws.append(
                math.log2(
                    fraction(sides[0], method, weights[b], chosen)
                    / fraction(sides[1], method, weights[b], chosen)
                )
            )
        draws = np.array(draws)
        a = (1 - conf) / 2
        lo, hi = np.quantile(draws, [a, 1 - a])
        p = max(int((draws <= 0).sum()), 1) / c.n_boot
        rows.append(("6", method, est, float(lo), float(hi), p, source))
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
    """Every claim row of every set, recomputed: ``claim, method, set, estimate, ci_lo, ci_hi,
    p_value, verdict, baseline`` (the numbers the note must show, or ``""``) and ``source``."""
    conf = float(stats["confidence"])
    margins = stats["claims"]
    rows = []
    for s in sets:
        base = _baseline(s, conf)
        gap_source = "stats/random_gap.tsv" if s.name == "test" else f"external/{s.name}/random_gap.tsv"
        found = []
        gap = pd.read_csv(s.random_gap, sep="\t")
        for (claim, method), mode in CURVE_CLAIMS.items():
            r = gap[(gap["method"] == method) & (gap["scope"] == "global") & (gap["mode"] == mode)]
            if r.empty:
                continue
            r = r.iloc[0]
            est = float(r["auc_gap"])
            if s.ablation:
                again = _auc_gap(s.ablation, method, mode)
                assert math.isclose(est, again, rel_tol=1e-9, abs_tol=1e-12), (
                    s.name,
                    method,
                    mode,
                    est,
                    again,
                )
            found.append(
                (claim, method, est, float(r["ci_lo"]), float(r["ci_hi"]), float(r["p_value"]), gap_source)
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
                    ("3", method, log2r(count / n_top), log2r(lo), log2r(hi), p, "stats/density.tsv")
                )
        if s.class_specificity:
            spec = pd.concat([pd.read_csv(p, sep="\t", dtype={"class": str}) for p in s.class_specificity])
            per_class = spec.groupby("class")[["drop_own", "drop_other"]].mean()
            d = (per_class["drop_own"] - per_class["drop_other"]).to_numpy(dtype=float)
            mean = float(d.mean())
            if len(d) < 2 or np.ptp(d) == 0:
                lo = hi = mean
                p = 1.0 if mean == 0 else 0.0
            else:
                lo, hi = sps.t.interval(conf, len(d) - 1, loc=mean, scale=sps.sem(d))
                p = float(sps.ttest_1samp(d, 0.0).pvalue)
            found.append(("5", "ig", mean, float(lo), float(hi), p, "characterise/class_specificity.tsv"))
        if s.compactness is not None:
            found.extend(_compactness(s.compactness, conf))
        held = _held_out_baseline(s, conf) if s.class_summary else base
        if s.concepts is not None:
            found.extend(_concept_knowledge(s.concepts, conf))
        for claim, method, est, lo, hi, p, source in found:
            claim_base = held if claim == "5" else base
            verdict = (
                "inconclusive" if claim_base else _rule(lo, hi, DIRECTION[claim], margins[MARGIN_KEY[claim]])
            )
            rows.append(
                {
                    "claim": claim,
                    "method": method,
                    "set": s.name,
                    "estimate": est,
                    "ci_lo": lo,
                    "ci_hi": hi,
                    "p_value": p,
                    "verdict": verdict,
                    "baseline": claim_base,
                    "source": source,
                }
            )
    return pd.DataFrame(rows)


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


def compare(got: pd.DataFrame, want: pd.DataFrame, rel: float) -> list[str]:
    """What differs between the claims ``got`` (the workflow's, full precision or as written) and the
    recomputed ``want``: numbers beyond ``rel`` (relative) or beyond the rounding of what was written
    (half a unit in its last decimal), verdicts, notes, sources, rows."""
    problems = []
    # claim 7 has one row per kind of unit under one method: its statistic names the kind
    key = ["claim", "method", "set", "row"]
    g = got.assign(claim=got["claim"].astype(str))
    g = g.assign(row=g.groupby(["claim", "method", "set"]).cumcount()).set_index(key)
    w = want.assign(row=want.groupby(["claim", "method", "set"]).cumcount()).set_index(key)
    if sorted(g.index) != sorted(w.index):
        return [f"rows differ: got {sorted(g.index)}, recomputed {sorted(w.index)}"]
    for k, row in w.iterrows():
        have = g.loc[k]
        for col in ("estimate", "ci_lo", "ci_hi", "p_value"):
            value, bound = _number(have[col])
            if bound:
                ok = row[col] <= value * (1 + rel)
            elif math.isinf(row[col]) or math.isinf(value):
                ok = row[col] == value
            else:
                written = _rounding(have[col]) * (1 + 1e-9)
                ok = math.isclose(value, row[col], rel_tol=rel, abs_tol=max(written, 1e-12))
            if not ok:
                problems.append(f"{k} {col}: {have[col]} vs recomputed {row[col]!r}")
        if have["verdict"] != row["verdict"]:
            problems.append(f"{k} verdict: {have['verdict']} vs recomputed {row['verdict']}")
        if str(have["source"]) != row["source"]:
            problems.append(f"{k} source: {have['source']} vs recomputed {row['source']}")
        note = "" if pd.isna(have["note"]) else str(have["note"])
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
    test.ablation = [[results / p / f"ablation/{m}/global.tsv" for m in methods] for p in reps]
    ch = config["characterise"]
    if ch["enabled"]:
        test.class_specificity = [results / p / "characterise/class_specificity.tsv" for p in reps]
        test.class_summary = [results / p / "characterise/class_summary.json" for p in reps]
        n_held = json.loads(test.class_summary[0].read_text())["intact"]["n"]
        test.class_proteins = _proteins(n_held, ch["split"], "characterise.max_proteins", ch["max_proteins"])
    if (results / "stats" / "compactness.tsv").exists():  # SAE features ablated: claim 6
        st = config["stats"]
        methods_f = [m for m in methods if m != "random"]

        def files(pattern: str, prefix: str) -> Files:
            tables = [results / prefix / pattern.format(m=m, ext="tsv") for m in methods_f]
            return tables, [t.with_suffix(".pred.npz") for t in tables]

        test.compactness = Compactness(
            results / "stats" / "compactness.tsv",
            # the estimate, interval and p-value redrawn from every replicate's global curves
            neurons=[files("ablation/{m}/global.{ext}", p) for p in reps],
            features=[files("features/ablation/{m}.{ext}", p) for p in reps],
            n_boot=st["bootstrap"],
            seed=config["seed"],
            keep_accuracy=st["keep_accuracy"],
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
        s.ablation = [[results / p / f"external/{name}/ablation/{m}.tsv" for m in methods] for p in reps]
        sets.append(s)
    return sets
