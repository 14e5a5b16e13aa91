"""Claim 6's statistic: the smallest fraction of neurons and of SAE features keeping 95% of the intact
accuracy (global, preserve), their log2 ratio, its paired bootstrap interval and p-value, the
conventions for a curve that never reaches the target, and the table's round trip."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kneurons.errors import InputError
from kneurons.jobs.stats import curve_statistics, run_compactness, run_feature_stats
from kneurons.stats.compactness import COMPACTNESS_COLUMNS, compact_fraction, compactness
from kneurons.stats.metrics import accuracy, macro_f1
from kneurons.tables import AblationData, AblationResult, read_stats_table, save_result, write_stats_tables

N = 200
Y = np.arange(N) % 4
FRACS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
SEEDS = [0, 1]
#: A prediction rule: (mode, f, seed) -> predictions of the N test proteins.
PredOf = Callable[[str, float, int | None], np.ndarray]


def with_accuracy(acc: float, order: np.ndarray | None = None) -> np.ndarray:
    """Predictions right on the first ``round(acc N)`` proteins of ``order`` (default: 0..N-1)."""
    order = np.arange(N) if order is None else order
    pred = (Y + 1) % 4
    right = order[: round(acc * N)]
    pred[right] = Y[right]
    return pred


def step(reach: float, low: float = 0.5) -> PredOf:
    """Preserve curve at accuracy ``low`` below f = ``reach`` and intact (1.0) from it on."""
    return lambda mode, f, seed: with_accuracy(1.0 if f >= reach else low)


def noisy(rng: np.random.Generator, p_at: Callable[[float], float]) -> PredOf:
    """Each protein right with probability ``p_at(f)``, independently per row."""

    def pred_of(mode: str, f: float, seed: int | None) -> np.ndarray:
        right = rng.random(N) < p_at(f)
        return np.where(right, Y, (Y + 1) % 4)

    return pred_of


def ablation(
    curves: dict[str, PredOf], n_scope: int, fracs: list[float] = FRACS, intact: np.ndarray = Y
) -> dict[str, AblationResult]:
    """One ablation result per method (global scope, both modes; random with ``SEEDS``), rows as the
    ablation job writes them; ``n_scope`` units ranked together."""
    results = {}
    for method, pred_of in curves.items():
        rows, preds = [], []
        for seed in SEEDS if method == "random" else [None]:
            for mode in ("preserve", "suppress"):
                for f in fracs:
                    pred = pred_of(mode, f, seed)
                    preds.append(pred)
                    rows.append(
                        {
                            "method": method,
                            "scope": "global",
                            "scope_name": "global",
                            "layer": pd.NA,
                            "module": None,
                            "mode": mode,
                            "f": f,
                            "seed": seed,
                            "fill": "zero",
                            "n_scope": n_scope,
                            "accuracy": accuracy(Y, pred),
                            "macro_f1": macro_f1(Y, pred, 4),
                        }
                    )
        table = pd.DataFrame(rows)
        table["seed"] = table["seed"].astype("Int64")
        table["layer"] = table["layer"].astype("Int64")
        accessions = np.array([f"P{i:03d}" for i in range(N)])
        results[method] = AblationResult(table, np.stack(preds), intact, Y, accessions, 0.0)
    return results


def data(results: dict[str, AblationResult]) -> AblationData:
    """The results as ``load_ablation`` reads them back (rows concatenated, correctness per row)."""
    parts = list(results.values())
    table = pd.concat([r.table for r in parts], ignore_index=True)
    correct = np.concatenate([r.preds == r.y_true[None, :] for r in parts])
    return AblationData(table, correct, Y, parts[0].full_pred, parts[0].accessions)


def save(root: Path, results: dict[str, AblationResult]) -> tuple[list[Path], list[Path]]:
    """Each method's table and predictions, written by the ablation writer."""
    root.mkdir(parents=True, exist_ok=True)
    tables, preds = [], []
    for method, result in results.items():
        tables.append(root / f"{method}.tsv")
        preds.append(root / f"{method}.pred.npz")
        save_result(tables[-1], preds[-1], result)
    return tables, preds


def row(table: pd.DataFrame, method: str) -> pd.Series:
    rows = table[table["method"] == method]
    assert len(rows) == 1, table.to_string()
    return rows.iloc[0]


def test_known_fractions_give_the_log2_ratio_and_a_degenerate_interval():
    """Neurons keep the accuracy from f = 0.2, features from 0.05 (and ig: 0.5 vs 0.5), far from the
    target: every resample agrees, so the interval is the estimate and p is at its floor 1/B."""
    neurons = ablation({"activation": step(0.2), "ig": step(0.5), "random": step(1.0)}, n_scope=1000)
    features = ablation({"activation": step(0.05), "ig": step(0.5), "random": step(1.0)}, n_scope=4096)
    out = compactness([data(neurons)], [data(features)], 0.95, n_boot=200, confidence=0.9, seed=1)
    assert list(out.columns) == COMPACTNESS_COLUMNS
    assert list(out["method"]) == ["activation", "ig"]  # random is no method of the claim
    act = row(out, "activation")
    assert (act.f_neurons, act.f_features) == (0.2, 0.05)
    assert act.log2_ratio == pytest.approx(2.0) and (act.ci_lo, act.ci_hi) == pytest.approx((2.0, 2.0))
    assert act.p_value == act.p_floor == pytest.approx(1 / 200)
    assert bool(act.reached_neurons) and bool(act.reached_features)
    assert (act.n_neurons, act.n_features, act.n_test, act.n_replicates) == (1000, 4096, N, 1)
    assert (act.n_boot, act.confidence, act.keep_accuracy) == (200, 0.9, 0.95)
    ig = row(out, "ig")
    assert ig.log2_ratio == 0.0 and ig.p_value == 1.0  # no draw above 0: the one-sided p is 1


def test_the_estimate_is_the_summary_threshold_of_each_curve():
    """f_neurons and f_features are stats/summary.tsv's f_threshold of the global preserve curves."""
    rng = np.random.default_rng(3)
    neurons = ablation({"ig": noisy(rng, lambda f: 0.6 + 0.4 * f), "random": noisy(rng, lambda f: 0.5)}, 500)
    features = ablation({"ig": noisy(rng, lambda f: 0.6 + 4 * f), "random": noisy(rng, lambda f: 0.5)}, 800)
    out = compactness([data(neurons)], [data(features)], n_boot=0)
    settings = {"stats": {"keep_accuracy": 0.95, "bootstrap": 0, "confidence": 0.95}, "seed": 0}
    got = []
    for d in (data(neurons), data(features)):
        s = curve_statistics([d], settings)["summary"]
        got.append(row(s[(s["scope"] == "global") & (s["mode"] == "preserve")], "ig").f_threshold)
    ig = row(out, "ig")
    assert (ig.f_neurons, ig.f_features) == tuple(got)
    assert ig.log2_ratio == pytest.approx(np.log2(got[0] / got[1])) and ig.f_neurons > ig.f_features
    assert np.isnan([ig.ci_lo, ig.ci_hi, ig.p_value, ig.p_floor]).all()  # no bootstrap: no interval


def test_never_reached_takes_one_and_reached_at_zero_takes_the_grid_resolution():
    fracs = [0.0, 0.01, 0.05, 0.2, 0.5]  # no f = 1: a curve may never reach the target
    neurons = ablation({"ig": step(2.0)}, 100, fracs)  # never intact on this grid
    features = ablation({"ig": step(0.0)}, 100, fracs)  # intact with no feature kept
    out = row(compactness([data(neurons)], [data(features)], n_boot=50, seed=0), "ig")
    assert (out.f_neurons, bool(out.reached_neurons)) == (1.0, False)
    assert (out.f_features, bool(out.reached_features)) == (0.01, True)
    assert out.log2_ratio == pytest.approx(np.log2(100))
    grid = np.array(fracs)
    assert compact_fraction(grid, np.full(5, 0.5), 1.0, 0.95) == (1.0, False)
    assert compact_fraction(grid, np.full(5, 0.99), 1.0, 0.95) == (0.01, True)
    assert compact_fraction(grid, np.array([0.1, 0.2, 0.97, 1, 1]), 1.0, 0.95) == (0.05, True)


def test_the_interval_pairs_the_proteins_and_covers_the_estimate():
    """The same noisy curve for neurons and features: a paired bootstrap gives a ratio of exactly 1
    in every resample. Independent curves of the same expected accuracy give a wide interval that
    covers the estimate, the estimate near zero, and a p-value far from significant."""
    rng = np.random.default_rng(5)
    curve = noisy(rng, lambda f: min(1.0, 0.9 + 0.2 * f))  # near the target 0.95: resamples differ
    same = ablation({"ig": curve}, 300)
    out = row(compactness([data(same)], [data(same)], n_boot=300, seed=0), "ig")
    assert (out.log2_ratio, out.ci_lo, out.ci_hi) == (0.0, 0.0, 0.0)
    other = ablation({"ig": noisy(rng, lambda f: min(1.0, 0.9 + 0.2 * f))}, 300)
    out = row(compactness([data(same)], [data(other)], n_boot=300, seed=0), "ig")
    assert out.ci_lo < out.log2_ratio < out.ci_hi
    assert out.ci_hi - out.ci_lo > 1.0 and out.p_value > 0.05


def test_replicates_pool_the_curves_and_are_resampled():
    """Neurons reach the target at 0.2 in replicate 0 and at 0.5 in replicate 1, features at 0.05 in
    both: the pooled curve (0.5, 0.75, 1.0) reaches it at 0.5; a resample drawing replicate 0 twice
    (probability 1/4) gives 0.2, so the 95% interval runs from log2(0.2/0.05) to log2(0.5/0.05)."""
    neurons = [data(ablation({"ig": step(r)}, 100)) for r in (0.2, 0.5)]
    features = [data(ablation({"ig": step(0.05)}, 300)) for _ in range(2)]
    out = row(compactness(neurons, features, n_boot=400, seed=2), "ig")
    assert out.f_neurons == 0.5 and out.n_replicates == 2
    assert (out.ci_lo, out.ci_hi) == pytest.approx((2.0, np.log2(10)))
    one = row(compactness(neurons[:1], features[:1], n_boot=400, seed=2), "ig")
    assert one.f_neurons == 0.2 and one.ci_lo == one.ci_hi


def test_the_bootstrap_is_determined_by_its_seed():
    rng = np.random.default_rng(9)
    neurons = data(ablation({"ig": noisy(rng, lambda f: min(1.0, 0.85 + 0.5 * f))}, 100))
    features = data(ablation({"ig": noisy(rng, lambda f: min(1.0, 0.88 + 2 * f))}, 100))
    a, b = (compactness([neurons], [features], n_boot=200, seed=s) for s in (4, 4))
    pd.testing.assert_frame_equal(a, b)
    c = compactness([neurons], [features], n_boot=200, seed=5)
    assert (c["log2_ratio"] == a["log2_ratio"]).all()  # the estimate does not depend on the seed
    assert not np.allclose(c[["ci_lo", "ci_hi", "p_value"]], a[["ci_lo", "ci_hi", "p_value"]])


def test_other_test_proteins_are_refused():
    neurons = data(ablation({"ig": step(0.2)}, 100))
    features = data(ablation({"ig": step(0.05)}, 100))
    features.accessions = features.accessions[::-1].copy()
    with pytest.raises(InputError, match="other test proteins"):
        compactness([neurons], [features], n_boot=10)
    with pytest.raises(InputError, match="1 replicate"):
        compactness([neurons], [features, features], n_boot=10)


def test_the_job_writes_the_table_and_it_reads_back(tmp_path):
    """run_compactness from files (two replicates) writes stats/compactness.tsv; its reader returns
    the job's frame (flags as booleans, unit counts as integers). The feature curve statistics
    are the neuron curve statistics' tables."""
    rng = np.random.default_rng(11)
    n_tables, n_preds, x_tables, x_preds = [], [], [], []
    for r in range(2):
        neurons = ablation(
            {"activation": step(0.2), "ig": step(0.3), "random": noisy(rng, lambda f: 0.5)}, 64
        )
        features = ablation(
            {"activation": step(0.02), "ig": step(1.0), "random": noisy(rng, lambda f: 0.5)}, 512
        )
        t, p = save(tmp_path / f"rep{r}" / "neurons", neurons)
        n_tables.append(t)
        n_preds.append(p)
        t, p = save(tmp_path / f"rep{r}" / "features", features)
        x_tables.append(t)
        x_preds.append(p)
    settings = {"stats": {"keep_accuracy": 0.95, "bootstrap": 100, "confidence": 0.95}, "seed": 0}
    out = {"compactness": tmp_path / "compactness.tsv"}
    table = run_compactness(n_tables, n_preds, x_tables, x_preds, settings, out)
    assert list(table["method"]) == ["activation", "ig"]
    assert table["log2_ratio"].tolist() == pytest.approx([np.log2(10), np.log2(0.3)])
    back = read_stats_table(out["compactness"], "compactness")
    pd.testing.assert_frame_equal(back, table)
    # the writer is the stats writer: the same bytes again
    write_stats_tables({"compactness": back}, {"compactness": tmp_path / "again.tsv"})
    assert (tmp_path / "again.tsv").read_bytes() == out["compactness"].read_bytes()
    names = ("curves", "summary", "random_gap", "paired_tests")
    feats = run_feature_stats(x_tables, x_preds, settings, {n: tmp_path / f"f_{n}.tsv" for n in names})
    assert set(feats) == set(names)
    summary = read_stats_table(tmp_path / "f_summary.tsv", "summary")
    preserve = summary[(summary["mode"] == "preserve") & (summary["method"] != "random")]
    assert preserve.set_index("method")["f_threshold"].to_dict() == {"activation": 0.02, "ig": 1.0}
    assert (summary["n_scope"] == 512).all()


def test_the_reader_refuses_a_flag_that_is_not_a_boolean(tmp_path):
    table = compactness(
        [data(ablation({"ig": step(0.2)}, 10))], [data(ablation({"ig": step(0.1)}, 10))], n_boot=0
    )
    table["reached_neurons"] = ["maybe"]
    write_stats_tables({"compactness": table}, {"compactness": tmp_path / "c.tsv"})
    with pytest.raises(InputError, match="reached_neurons"):
        read_stats_table(tmp_path / "c.tsv", "compactness")
