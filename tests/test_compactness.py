"""Claim 6's statistic at the same site: per SAE stream, method, fill and comparison, the features'
CPR gap to another basis of the stream per fraction and per directions kept, their minimum with its
paired bootstrap interval and p-value, against a hand computation; replicates, seeds, the refusal of
other proteins, and the job's tables round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kneurons.errors import InputError
from kneurons.jobs.stats import run_compactness
from kneurons.stats.compactness import COMPACTNESS_COLUMNS, compactness
from kneurons.stats.metrics import accuracy, macro_f1
from kneurons.tables import AblationData, AblationResult, read_stats_table, save_result

N = 128  # accuracies 0.25 + 0.75 k / reach are whole numbers of proteins
Y = np.arange(N) % 4
SIZES = {"features": 64, "dimensions": 16, "pca": 16, "random_basis": 16}
FRACTIONS = [0.0, 0.125, 0.25, 0.5, 1.0]
COUNTS = [0, 1, 2, 4, 8, 16]


def with_accuracy(acc: float) -> np.ndarray:
    """Predictions right on the first ``round(acc N)`` proteins."""
    pred = (Y + 1) % 4
    pred[: round(acc * N)] = Y[: round(acc * N)]
    return pred


def bases_result(acc_of, fills=("zero",), methods=("activation", "random")) -> AblationResult:
    """A same-site bases table of stream L2 as the bases job writes it: per basis, fill, method (random
    with seeds 0 and 1) and grid, preserve rows whose accuracy is ``acc_of(basis, kept)`` (the empty set
    at 0.25, every unit kept at 1.0)."""
    rows, preds = [], []
    for basis, size in SIZES.items():
        for fill in fills:
            for method in methods:
                for seed in (0, 1) if method == "random" else (None,):
                    grids = {"global": FRACTIONS, "directions": [k / size for k in COUNTS]}
                    for scope, fractions in grids.items():
                        for f in fractions:
                            kept = round(f * size)
                            acc = 0.25 if kept == 0 else 1.0 if kept == size else acc_of(basis, kept)
                            preds.append(with_accuracy(acc))
                            rows.append(
                                {
                                    "method": method,
                                    "scope": scope,
                                    "scope_name": f"L2.{basis}",
                                    "basis": basis,
                                }
                                | {"layer": 2, "module": "sae", "mode": "preserve", "f": f, "seed": seed}
                                | {"fill": fill, "n_scope": size, "n_selected": kept, "n_filled": size - kept}
                                | {"accuracy": accuracy(Y, preds[-1]), "macro_f1": macro_f1(Y, preds[-1], 4)}
                            )
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    table["layer"] = table["layer"].astype("Int64")
    accessions = np.array([f"P{i:03d}" for i in range(N)])
    return AblationResult(table, np.stack(preds), Y.copy(), Y, accessions, 0.0)


def as_data(result: AblationResult) -> AblationData:
    return AblationData(result.table, result.preds == Y[None, :], Y, result.full_pred, result.accessions)


def step(reach: dict[str, int]):
    """Each basis at accuracy 0.25 + 0.75 (kept / reach) up to ``reach[basis]`` directions, 1 after."""
    return lambda basis, kept: min(1.0, 0.25 + 0.75 * kept / reach[basis])


def test_the_statistic_by_hand():
    """F = (acc - 0.25) / 0.75 = kept / reach (capped at 1). The features' curve reaches F = 1 at 4 of
    64 features, the dimensions' at 16 of 16, PCA's at 2 of 16."""
    reach = {"features": 4, "dimensions": 16, "pca": 2, "random_basis": 8}
    raw = compactness([as_data(bases_result(step(reach)))], n_boot=0)
    assert list(raw.columns) == COMPACTNESS_COLUMNS
    table = raw.set_index("comparison")
    assert table.index.tolist() == ["dimensions", "pca", "random_basis"]

    def cpr(x: list[float], f_values: list[float]) -> float:  # the trapezoid over ln x / the log-span
        lx = np.log(x)
        return float(np.trapezoid(f_values, lx) / (lx[-1] - lx[0]))

    # per fraction (0.125, 0.25, 0.5, 1): features keep 8, 16, 32, 64 of 64 (F = 1 everywhere);
    # dimensions keep 2, 4, 8, 16 (F = 1/8, 1/4, 1/2, 1); PCA 2, 4, 8, 16 (F = 1)
    grid = [0.125, 0.25, 0.5, 1.0]
    feat_f = cpr(grid, [1, 1, 1, 1])
    dims_f = cpr(grid, [1 / 8, 1 / 4, 1 / 2, 1])
    # per direction (1, 2, 4, 8, 16): features F = 1/4, 1/2, 1, 1, 1; dims k/16; PCA 1/2, 1, 1, 1, 1
    counts = [1, 2, 4, 8, 16]
    feat_k = cpr(counts, [1 / 4, 1 / 2, 1, 1, 1])
    dims_k = cpr(counts, [k / 16 for k in counts])
    pca_k = cpr(counts, [1 / 2, 1, 1, 1, 1])
    dims, pca = table.loc["dimensions"], table.loc["pca"]
    assert dims.gap_fraction == pytest.approx(feat_f - dims_f) and dims.gap_fraction > 0
    assert dims.gap_directions == pytest.approx(feat_k - dims_k) and dims.gap_directions > 0
    assert dims.estimate == pytest.approx(min(feat_f - dims_f, feat_k - dims_k))
    assert pca.gap_fraction == pytest.approx(0.0) and pca.gap_directions == pytest.approx(feat_k - pca_k)
    assert feat_k - pca_k < 0
    assert pca.estimate == pytest.approx(feat_k - pca_k)
    assert dims.cpr_features_directions == pytest.approx(
        feat_k
    ) and pca.cpr_other_directions == pytest.approx(pca_k)
    # descriptive: where 95% of the intact accuracy is reached, in fractions and in directions
    assert (dims.f95_features, dims.f95_other, dims.k95_features, dims.k95_other) == (0.125, 1.0, 4, 16)
    assert (pca.k95_other, dims.n_features, dims.n_other, dims.directions) == (2, 64, 16, "1,2,4,8,16")
    assert np.isnan(dims.ci_lo) and np.isnan(dims.p_value) and dims.note == ""  # no bootstrap


def test_deterministic_curves_give_a_degenerate_interval_and_the_floor_p_value():
    """Every protein behaves alike in each row (right on the first ones): each resample moves both bases'
    accuracies together, so the interval is narrow around the estimate and no draw crosses 0."""
    reach = {"features": 4, "dimensions": 16, "pca": 2, "random_basis": 8}
    table = compactness([as_data(bases_result(step(reach)))], n_boot=200, seed=3).set_index("comparison")
    dims = table.loc["dimensions"]
    assert dims.ci_lo <= dims.estimate <= dims.ci_hi and dims.ci_lo > 0
    assert dims.p_value == pytest.approx(1 / 200) and dims.p_floor == pytest.approx(1 / 200)
    assert table.loc["pca", "ci_hi"] < 0 and table.loc["pca", "p_value"] == 1.0


def test_only_the_counts_both_bases_have_are_compared():
    """A basis evaluated on fewer counts (its size caps them) is compared on the counts both have."""
    reach = {"features": 4, "dimensions": 16, "pca": 2, "random_basis": 8}
    result = bases_result(step(reach))
    t = result.table
    drop = (t["basis"] == "dimensions") & (t["scope"] == "directions") & (t["n_selected"] == 16)
    keep = ~drop.to_numpy()
    cut = AblationResult(
        t[keep].reset_index(drop=True), result.preds[keep], Y.copy(), Y, result.accessions, 0.0
    )
    dims = compactness([as_data(cut)], n_boot=0).set_index("comparison").loc["dimensions"]
    assert dims.directions == "1,2,4,8"


def test_replicates_are_pooled_and_resampled_with_the_same_picks_for_both_bases():
    reach_a = {"features": 4, "dimensions": 16, "pca": 2, "random_basis": 8}
    reach_b = {"features": 8, "dimensions": 8, "pca": 2, "random_basis": 8}
    a, b = as_data(bases_result(step(reach_a))), as_data(bases_result(step(reach_b)))
    one = {k: compactness([d], n_boot=0).set_index("comparison") for k, d in (("a", a), ("b", b))}
    both = compactness([a, b], n_boot=300, seed=1).set_index("comparison")
    gaps = ("gap_fraction", "gap_directions")
    for g in gaps:
        assert both.loc["dimensions", g] == pytest.approx(
            (one["a"].loc["dimensions", g] + one["b"].loc["dimensions", g]) / 2
        )
    assert (both["n_replicates"] == 2).all()
    # resampling the replicates widens the interval: replicate b's features are not more compact per direction
    assert (
        both.loc["dimensions", "ci_lo"] < both.loc["dimensions", "estimate"] < both.loc["dimensions", "ci_hi"]
    )
    again = compactness([a, b], n_boot=300, seed=1)
    pd.testing.assert_frame_equal(again, both.reset_index()[again.columns])
    other = compactness([a, b], n_boot=300, seed=2).set_index("comparison")
    bounds = [
        "ci_lo",
        "ci_hi",
        "gap_fraction_lo",
        "gap_fraction_hi",
        "gap_directions_lo",
        "gap_directions_hi",
    ]
    assert not np.allclose(other[bounds].to_numpy(float), both[bounds].to_numpy(float))


def test_other_test_proteins_and_foreign_tables_are_refused():
    reach = {"features": 4, "dimensions": 16, "pca": 2, "random_basis": 8}
    a = as_data(bases_result(step(reach)))
    b = as_data(bases_result(step(reach)))
    b.accessions = b.accessions[::-1].copy()
    with pytest.raises(InputError, match="other test proteins"):
        compactness([a, b], n_boot=10)
    plain = AblationData(a.table.drop(columns=["basis"]), a.correct, Y, a.full_pred, a.accessions)
    with pytest.raises(InputError, match=r"lack column\(s\) \['basis'\]"):
        compactness([plain])


def test_every_fill_gets_its_rows_and_an_undefined_faithfulness_says_so():
    reach = {"features": 4, "dimensions": 16, "pca": 2, "random_basis": 8}
    result = bases_result(step(reach), fills=("zero", "resample"))
    table = compactness([as_data(result)], n_boot=0)
    assert table["fill"].tolist() == ["zero"] * 3 + ["resample"] * 3
    # an empty set as good as the intact model: F undefined for every basis, NaN with the reason
    flat = bases_result(lambda basis, kept: 1.0)
    flat.preds[:] = Y
    flat.table["accuracy"] = 1.0
    undefined = compactness([as_data(flat)], n_boot=20)
    assert undefined["estimate"].isna().all() and undefined["ci_lo"].isna().all()
    assert undefined["note"].str.startswith("F undefined").all()


def test_the_job_writes_claim_6_and_every_bases_curve_and_they_read_back(tmp_path):
    reach = {"features": 4, "dimensions": 16, "pca": 2, "random_basis": 8}
    paths = []
    for r in range(2):
        root = tmp_path / f"rep{r}"
        root.mkdir()
        t, p = root / "layer2.tsv", root / "layer2.pred.npz"
        save_result(t, p, bases_result(step(reach)))
        paths.append(([t], [p]))
    names = ("compactness", "bases_curves", "bases_summary", "bases_random_gap", "bases_faithfulness")
    out = {name: tmp_path / "stats" / f"{name}.tsv" for name in names}
    settings = {"stats": {"keep_accuracy": 0.95, "bootstrap": 50, "confidence": 0.95}, "seed": 0}
    frames = run_compactness([t for t, _ in paths], [p for _, p in paths], settings, out)
    back = read_stats_table(out["compactness"], "compactness")
    assert back["layer"].dtype == "Int64" and back["n_other"].tolist() == [16, 16, 16]
    assert back["estimate"].tolist() == pytest.approx(frames["compactness"]["estimate"].tolist())
    curves = read_stats_table(out["bases_curves"], "curves")
    assert set(curves["basis"]) == set(SIZES) and {"kept", "faithfulness_accuracy"} <= set(curves.columns)
    summary = read_stats_table(out["bases_summary"], "summary")
    pca = summary[summary["scope_name"] == "L2.pca"]
    assert len(pca) and (pca["cpr_accuracy"] > 0).all()
    faith = read_stats_table(out["bases_faithfulness"], "faithfulness")
    # each basis has its own random baseline: its scope name
    assert set(faith["scope_name"]) == {f"L2.{b}" for b in SIZES}
