"""Statistics: curve summaries, the gap to random with its bootstrap interval, paired tests, density.

The science test at the end runs the real pipeline on the trained synthetic model: activation
and IG selections must keep more accuracy than random selections of the same size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from kneurons.ablation.fill import Fill
from kneurons.ablation.run import load_test_set, run_ablation
from kneurons.errors import InputError
from kneurons.ranking import MODULE_TYPES, NeuronLayout
from kneurons.stats.curves import f_threshold, summarise_curves, trapezoid_weights
from kneurons.stats.density import density
from kneurons.stats.multiple import bh_qvalues
from kneurons.stats.random import random_comparison
from kneurons.tables import AblationData, load_ablation, row_keys, save_result

GRID = np.array([0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1])


def test_trapezoid_weights_and_threshold():
    y = np.sin(GRID) + GRID**2
    assert np.isclose(trapezoid_weights(GRID) @ y, np.trapezoid(y, GRID))
    acc = np.array([0.2, 0.3, 0.5, 0.94, 0.96, 0.9, 0.97, 1.0, 1.0, 1.0])
    assert f_threshold(GRID, acc, 1.0, 0.95, "preserve") == 0.1  # first crossing counts
    assert np.isnan(f_threshold(GRID, acc * 0.5, 1.0, 0.95, "preserve"))
    drop = acc[::-1]
    assert f_threshold(GRID, drop, 1.0, 0.95, "suppress") == 0.1  # 0.9 at f=0.1 is the first value below 0.95
    assert f_threshold(GRID, np.array([1, 1, 0.99, 0.9, 0.5, 0, 0, 0, 0, 0.0]), 1.0, 0.95, "suppress") == 0.05


def synthetic_data(n_test=200, seeds=(0, 1, 2, 3, 4), method_p=None, rng_seed=0) -> AblationData:
    """Ablation rows for one method and random on GRID with chosen per-f correctness probabilities."""
    rng = np.random.default_rng(rng_seed)
    rows, correct = [], []
    rand_p = np.linspace(0.3, 1.0, len(GRID))
    method_p = rand_p if method_p is None else method_p
    for method, seed_list, probs in (("ig", [None], method_p), ("random", list(seeds), rand_p)):
        for seed in seed_list:
            for f, p in zip(GRID, probs, strict=False):
                c = rng.random(n_test) < p
                correct.append(c)
                rows.append(
                    {
                        "method": method,
                        "scope": "global",
                        "scope_name": "global",
                        "layer": pd.NA,
                        "module": None,
                        "mode": "preserve",
                        "f": f,
                        "seed": seed,
                        "n_scope": 100,
                        "accuracy": c.mean(),
                        "macro_f1": c.mean(),
                    }
                )
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    table["layer"] = table["layer"].astype("Int64")
    y = np.zeros(n_test, dtype=np.int64)
    return AblationData(table, np.array(correct), y, y.copy(), np.array([f"P{i}" for i in range(n_test)]))


def test_gap_to_random_detects_a_better_method_and_not_an_equal_one():
    better = synthetic_data(method_p=np.minimum(1.0, np.linspace(0.3, 1.0, len(GRID)) + 0.25))
    auc, per_f = random_comparison(better, n_boot=500, seed=1)
    row = auc.iloc[0]
    assert row.method == "ig" and row.n_seeds == 5
    assert 0.1 < row.auc_gap < 0.3 and row.ci_lo > 0 and row.excludes_zero
    assert len(per_f) == len(GRID)
    mid = per_f[per_f.f == 0.2].iloc[0]
    assert mid.gap > 0.15 and mid.ci_lo > 0 and mid.p_value < 1e-4

    # an identical method: the interval covers 0, few tests reject
    same = synthetic_data(rng_seed=3)
    auc, per_f = random_comparison(same, n_boot=500, seed=1)
    assert auc.iloc[0].ci_lo < 0 < auc.iloc[0].ci_hi
    assert (per_f.p_adj > 0.05).all()


def test_replicates_pool_the_gap_and_widen_nothing_for_one():
    """A list of one replicate gives the single-replicate numbers; R replicates average their gaps,
    and a replicate that disagrees with the others widens the interval (fine-tuning variability)."""
    better = np.minimum(1.0, np.linspace(0.3, 1.0, len(GRID)) + 0.25)
    a = synthetic_data(method_p=better, rng_seed=0)
    b = synthetic_data(method_p=better, rng_seed=1)
    flat = synthetic_data(rng_seed=2)  # a replicate where the method equals random
    one, _ = random_comparison(a, n_boot=400, seed=1)
    listed, _ = random_comparison([a], n_boot=400, seed=1)
    pd.testing.assert_frame_equal(one, listed)
    ra, rb = (random_comparison(x, n_boot=400, seed=1)[0].iloc[0] for x in (a, b))
    pooled, per_f = random_comparison([a, b], n_boot=400, seed=1)
    assert pooled.iloc[0].auc_gap == pytest.approx((ra.auc_gap + rb.auc_gap) / 2)
    assert pooled.iloc[0].n_replicates == 2 and pooled.iloc[0].ci_lo > 0
    assert len(per_f) == len(GRID)
    mixed, _ = random_comparison([a, flat], n_boot=400, seed=1)
    width = lambda r: r.ci_hi - r.ci_lo  # noqa: E731
    assert width(mixed.iloc[0]) > 1.5 * width(pooled.iloc[0])


def test_replicates_must_share_rows_and_proteins():
    a = synthetic_data()
    other = synthetic_data()
    other.accessions[0] = "Q0"
    with pytest.raises(InputError, match="other test proteins"):
        random_comparison([a, other], n_boot=10)


def test_paired_test_by_hand_and_calibrated_with_several_seeds():
    data = synthetic_data(n_test=30, seeds=(0, 1, 2), rng_seed=5)
    _, per_f = random_comparison(data, n_boot=0)
    t = data.table
    for _, r in per_f.iterrows():
        m = data.correct[t.index[(t.method == "ig") & (t.f == r.f)][0]].astype(float)
        z = data.correct[t.index[(t.method == "random") & (t.f == r.f)]].astype(float).mean(0)
        d = m - z
        assert (r.n_better, r.n_worse) == (int((d > 0).sum()), int((d < 0).sum()))
        expect = sps.ttest_1samp(d, 0).pvalue if d.any() and not np.all(d == d[0]) else r.p_value
        assert np.isclose(r.p_value, expect)
    assert per_f.ci_lo.isna().all()  # no bootstrap asked for
    # equal accuracies: p-values roughly uniform (a sign test on seed-averaged d would reject at p=0.3)
    ps = np.concatenate(
        [random_comparison(synthetic_data(n_test=100, rng_seed=s), n_boot=0)[1].p_value for s in range(30)]
    )
    assert 0.02 <= (ps[np.isfinite(ps)] < 0.05).mean() <= 0.10


def test_bh_qvalues_equal_the_step_up_formula_with_ties():
    # The one BH of the workflow (paired tests and site q-values) against its textbook formula:
    # q_(i) = min over j >= i of p_(j) m / j, capped at 1; ties share the q of their last rank.
    rng = np.random.default_rng(0)
    for p in (rng.random(50), np.round(rng.random(200), 2), np.array([0.01, 0.01, 0.04, 0.04, 0.04, 1.0])):
        order = np.argsort(p)
        m = len(p)
        stepped = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
        expect = np.empty(m)
        expect[order] = np.minimum(stepped, 1.0)
        np.testing.assert_allclose(bh_qvalues(p), expect, rtol=1e-12, atol=0)
    p = np.array([0.02, np.nan, 0.02, 0.5])
    np.testing.assert_allclose(bh_qvalues(p), [0.03, np.nan, 0.03, 0.5], rtol=1e-12)


def test_no_random_rows_gives_empty_tables_with_columns():
    data = synthetic_data()
    keep = data.table.method != "random"
    only = AblationData(
        data.table[keep].reset_index(drop=True),
        data.correct[keep.to_numpy()],
        data.y_true,
        data.full_pred,
        data.accessions,
    )
    auc, per_f = random_comparison(only, n_boot=10)
    assert auc.empty and per_f.empty and "auc_gap" in auc.columns and "p_adj" in per_f.columns


def test_summary_auc_and_threshold_per_curve():
    data = synthetic_data()
    s = summarise_curves(data.table, full_accuracy=1.0, keep_accuracy=0.95)
    assert len(s) == 6  # ig + 5 random seeds
    ig = s[s.method == "ig"].iloc[0]
    acc = data.table[data.table.method == "ig"].sort_values("f").accuracy.to_numpy()
    assert np.isclose(ig.auc_accuracy, np.trapezoid(acc, GRID))
    assert ig.f_threshold == f_threshold(GRID, acc, 1.0, 0.95, "preserve")


def _save_npz(path, keys, pred, data) -> None:
    """A prediction file as tables.save_predictions writes it (intact model always predicts class 0)."""
    zeros = np.zeros(len(data.y_true), np.int16)
    np.savez(path, keys=keys, pred=pred, full_pred=zeros, y_true=zeros, accession=data.accessions)


def test_load_ablation_checks_alignment(tmp_path):
    data = synthetic_data(n_test=10)
    t = data.table.assign(fill="zero")
    t.to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    pred = np.where(data.correct, 0, 1).astype(np.int16)
    _save_npz(tmp_path / "a.npz", row_keys(t), pred, data)
    loaded = load_ablation([tmp_path / "a.tsv"], [tmp_path / "a.npz"])
    assert (loaded.correct == data.correct).all() and loaded.full_accuracy == 1.0
    _save_npz(tmp_path / "b.npz", row_keys(t)[::-1], pred, data)
    with pytest.raises(InputError, match=r"b\.npz: its rows do not match"):
        load_ablation([tmp_path / "a.tsv"], [tmp_path / "b.npz"])


def test_row_keys_tell_every_row_apart():
    # Under pandas 3 a missing seed became a string NaN: every key collapsed to one character.
    data = synthetic_data(n_test=10)
    keys = row_keys(data.table)
    assert len(set(keys)) == len(keys)
    assert keys[0] == "ig|global|global|preserve|0|" and keys[-1] == "random|global|global|preserve|1|4"
    read_back = data.table.assign(seed=data.table["seed"].astype(float))  # NaN seeds, float column
    assert (row_keys(read_back) == keys).all()


def test_load_ablation_refuses_reordered_method_rows(tmp_path):
    data = synthetic_data(n_test=10)
    t = data.table.assign(fill="zero")
    pred = np.where(data.correct, 0, 1).astype(np.int16)
    _save_npz(tmp_path / "a.npz", row_keys(t), pred, data)
    ig = np.flatnonzero(t.method == "ig")
    order = np.arange(len(t))
    order[ig] = ig[::-1]  # the ig rows (no seed) swapped among themselves, random rows in place
    t.iloc[order].to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"a\.npz: its rows do not match"):
        load_ablation([tmp_path / "a.tsv"], [tmp_path / "a.npz"])


def layout_scores(method: str, values: dict, layers: int = 2, sizes=None) -> pd.DataFrame:
    sizes = sizes or {"q_proj": 8, "k_proj": 8, "v_proj": 8, "out_proj": 8, "fc1": 32, "fc2": 8}
    layout = NeuronLayout.from_sizes(layers, sizes)
    rows = []
    for (layer, m), n in zip(layout.blocks, layout.sizes, strict=False):
        for i in range(n):
            rows.append((method, layer, m, i, values.get((layer, m, i), 0.0)))
    df = pd.DataFrame(rows, columns=["method", "layer", "module", "neuron", "score"])
    df["label"] = pd.array([None] * len(df), dtype="string")
    return df


def test_density_enrichment_and_null_interval():
    # 144 neurons; top 10% = 15 neurons: plant all of them in k_proj of layer 1 (8) and layer 0 (7)
    planted = {(1, "k_proj", i): 10.0 + i for i in range(8)} | {(0, "k_proj", i): 5.0 + i for i in range(7)}
    d = density(layout_scores("ig", planted), "ig", top_fraction=0.1)
    mt = d[d.level == "module_type"].set_index("module")
    assert d.n_total.iloc[0] == 144 and d.n_top.iloc[0] == 15
    assert mt.loc["k_proj", "count"] == 15
    assert np.isclose(mt.loc["k_proj", "enrichment"], (15 / 15) / (16 / 144))
    assert mt.loc["k_proj", "enrichment"] > mt.loc["k_proj", "null_hi"]
    assert mt.loc["k_proj", "p_enriched"] < 1e-6 and mt.loc["fc1", "count"] == 0
    assert mt.loc["fc1", "null_lo"] <= 1 <= mt.loc["fc1", "null_hi"]
    lm = d[(d.level == "layer_module") & (d.module == "k_proj")].set_index("layer")
    assert lm.loc[1, "count"] == 8 and lm.loc[0, "count"] == 7
    layer = d[d.level == "layer"].set_index("layer")
    assert layer["count"].sum() == 15


def test_density_of_random_scores_stays_inside_the_null_band():
    rng = np.random.default_rng(0)
    frames = []
    for seed in range(20):
        df = layout_scores("random", {}, layers=4)
        df["score"] = rng.random(len(df))
        df["seed"] = seed
        frames.append(df)
    scores = pd.concat(frames, ignore_index=True)
    scores["seed"] = scores["seed"].astype("Int64")
    d = density(scores, "random", top_fraction=0.1)
    mt = d[d.level == "module_type"]
    inside = ((mt.enrichment >= mt.null_lo) & (mt.enrichment <= mt.null_hi)).mean()
    assert inside >= 0.85  # nominal 95%; discrete quantiles make it conservative
    assert set(mt.module) == set(MODULE_TYPES) and mt.seed.nunique() == 20


# -- science: on planted motifs, scored neurons beat random ---------------------------------------
@pytest.fixture(scope="module")
def synthetic_ablation(trained_synthetic, tmp_path_factory):
    """Score (activation, IG, random) and ablate (global scope, preserve) on the trained synthetic model."""
    from kneurons.config import validate_config
    from kneurons.model.checkpoint import load_classifier
    from kneurons.scoring.base import score_layer
    from kneurons.scoring.subset import select_scoring_set

    out = tmp_path_factory.mktemp("synthetic_ablation")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, info = load_classifier(trained_synthetic.checkpoint)
        labels = list(info["labels"])
        cfg = validate_config({})
        classes = pd.DataFrame({"label": labels, "label_index": range(len(labels))})
        subset = select_scoring_set(trained_synthetic.split, classes, "train", 96, seed=0)
        split_path = out / "split.tsv"
        trained_synthetic.split.to_csv(split_path, sep="\t", index=False)
        accessions, seqs, y = load_test_set(split_path, labels)
        tables, preds = [], []
        for method in ("activation", "ig", "random"):
            scores = pd.concat(
                [
                    score_layer(model, subset, method, layer, cfg["score"])
                    for layer in range(model.num_layers)
                ],
                ignore_index=True,
            )
            result = run_ablation(
                model,
                seqs,
                y,
                labels,
                scores,
                method,
                "global",
                cfg["ablate"]["fractions"],
                ["preserve"],
                fill=Fill(),
                random_seeds=cfg["ablate"]["random_seeds"],
                accessions=accessions,
            )
            save_result(out / f"{method}.tsv", out / f"{method}.npz", result)
            tables.append(out / f"{method}.tsv")
            preds.append(out / f"{method}.npz")
    finally:
        torch.set_num_threads(threads)
    return load_ablation(tables, preds)


def test_activation_and_ig_preserve_curves_beat_random(synthetic_ablation):
    data = synthetic_ablation
    assert data.full_accuracy >= 0.9
    auc, per_f = random_comparison(data, n_boot=1000, seed=0)
    auc = auc.set_index("method")
    for method in ("activation", "ig"):
        row = auc.loc[method]
        assert row.auc_gap > 0 and row.ci_lo > 0, (
            f"{method}: gap {row.auc_gap:.3f} [{row.ci_lo:.3f}, {row.ci_hi:.3f}]"
        )
    # the intact and the fully filled model do not depend on the selection
    ends = per_f[per_f.f.isin([0.0, 1.0])]
    assert (ends.gap == 0).all()


def test_pooled_density_of_one_replicate_is_its_own_and_sums_counts_for_more():
    from kneurons.stats.density import pool_density

    layout = NeuronLayout.from_sizes(2, dict.fromkeys(MODULE_TYPES, 32))
    rows = [(layer, m, i) for layer, m in layout.blocks for i in range(32)]

    def table(seed: int) -> pd.DataFrame:
        df = pd.DataFrame(rows, columns=["layer", "module", "neuron"])
        df["score"] = np.random.default_rng(seed).random(len(df)) + (df["module"] == "k_proj") * 0.5
        return df

    one = density(table(1), "ig", 0.1)
    assert pool_density([one]) is one
    two = pool_density([one, density(table(2), "ig", 0.1)])
    k = two[(two["level"] == "module_type") & (two["module"] == "k_proj")].iloc[0]
    k1 = one[(one["level"] == "module_type") & (one["module"] == "k_proj")].iloc[0]
    assert k["count"] > k1["count"] and k["n_replicates"] == 2
    assert k["enrichment"] > k["null_hi"] and k["p_enriched"] < 1e-6
    # The null of the summed count: a random group's band is centred on enrichment 1.
    assert k["null_lo"] < 1 < k["null_hi"]


def test_pooling_a_replicate_with_itself_is_one_selection_with_twice_the_counts():
    """pool_density([d, d]) is d's enrichment with every count and the top-set size doubled, so the
    claim's share interval takes 2 count of 2 n_top (it used one replicate's n_top: +1 in log2)."""
    from kneurons.stats.claims import evaluate_claims
    from kneurons.stats.density import pool_density

    layout = NeuronLayout.from_sizes(2, dict.fromkeys(MODULE_TYPES, 32))
    df = pd.DataFrame(
        [(layer, m, i) for layer, m in layout.blocks for i in range(32)],
        columns=["layer", "module", "neuron"],
    )
    df["score"] = np.random.default_rng(3).random(len(df)) + (df["module"] == "k_proj") * 0.3
    one = density(df, "ig", 0.1)
    two = pool_density([one, one])
    assert (two["count"] == 2 * one["count"]).all() and (two["n_top"] == 2 * one["n_top"]).all()
    assert (two[["n_neurons", "n_total"]].to_numpy() == one[["n_neurons", "n_total"]].to_numpy()).all()
    np.testing.assert_allclose(two["enrichment"], one["enrichment"])
    np.testing.assert_allclose(
        two["enrichment"], (two["count"] / two["n_top"]) / (two["n_neurons"] / two["n_total"])
    )
    settings = {
        "confidence": 0.95,
        "top_fraction": 0.1,
        "claims": {"auc_margin": 0.01, "log2_enrichment_margin": 0.1, "specificity_margin": 0.02},
    }
    no_gap = pd.DataFrame(columns=["method", "scope", "mode", "auc_gap", "ci_lo", "ci_hi"])
    c1 = evaluate_claims(no_gap, one, None, settings).iloc[0]
    c2 = evaluate_claims(no_gap, two, None, settings).iloc[0]
    assert c2["estimate"] == pytest.approx(c1["estimate"])
    # Twice the selections: a narrower interval around the same estimate, never NaN.
    assert c1["ci_lo"] < c2["ci_lo"] < c2["estimate"] < c2["ci_hi"] < c1["ci_hi"]
