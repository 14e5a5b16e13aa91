"""Normalised faithfulness (issue 33, part B): F, CPR and CMD against a hand computation on a tiny
curve, the undefined case m(empty) = m(full), the log-probability metric, the per-fill statistics
tables, and the claims that read their areas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_claims import SETTINGS as CLAIM_SETTINGS

from kneurons.jobs.stats import curve_statistics
from kneurons.stats.claims import evaluate_claims
from kneurons.stats.faithfulness import (
    NO_EMPTY_NOTE,
    UNDEFINED_NOTE,
    cmd,
    cpr,
    faithfulness_per_row,
    log_area_weights,
    normalised,
)
from kneurons.stats.random import compare_with_random, random_comparison
from kneurons.tables import AblationData

GRID = [0.0, 0.01, 0.1, 1.0]
LN10 = math.log(10)
#: The claims' settings (tests/test_claims.py's), claim 6's margin in normalised-faithfulness units.
SETTINGS = CLAIM_SETTINGS | {"claims": CLAIM_SETTINGS["claims"] | {"compactness_margin": 0.02}}


def test_normalised_faithfulness_and_its_areas_by_hand():
    """F = (m - empty) / (full - empty); CPR and CMD the trapezoid areas of F and |1 - F| over ln f
    across the positive grid, divided by its log-span ln(1 / 0.01) = 2 ln 10."""
    f = normalised(np.array([0.25, 0.5, 0.75, 1.0]), 0.25, 1.0)
    assert f.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # by hand: intervals [0.01, 0.1] and [0.1, 1] are ln 10 wide each
    cpr_hand = (LN10 * (1 / 3 + 2 / 3) / 2 + LN10 * (2 / 3 + 1) / 2) / (2 * LN10)
    cmd_hand = (LN10 * (2 / 3 + 1 / 3) / 2 + LN10 * (1 / 3 + 0) / 2) / (2 * LN10)
    assert cpr(f, GRID) == pytest.approx(cpr_hand) == pytest.approx(2 / 3)
    assert cmd(f, GRID) == pytest.approx(cmd_hand) == pytest.approx(1 / 3)
    # f = 0 carries no weight (ln 0 is not defined); MIB's unnormalised area is the log-span times ours
    w = log_area_weights(np.array(GRID))
    assert w[0] == 0 and w.sum() == pytest.approx(1.0)
    assert cpr(f, GRID) * 2 * LN10 == pytest.approx(np.trapezoid(f[1:], np.log(GRID[1:])))
    # an intact curve everywhere: CPR 1, CMD 0; a grid of one positive f has no area
    assert cpr(np.ones(4), GRID) == pytest.approx(1) and cmd(np.ones(4), GRID) == pytest.approx(0)
    assert np.isnan(cpr(np.ones(2), [0.0, 0.5]))


def test_m_empty_equal_to_m_full_gives_nan_never_a_division_by_zero():
    with np.errstate(all="raise"):  # a division by zero would raise here
        f = normalised(np.array([0.4, 0.5, 0.4]), 0.4, 0.4)
    assert np.isnan(f).all()
    assert np.isnan(cpr(f, [0.01, 0.1, 1.0])) and np.isnan(cmd(f, [0.01, 0.1, 1.0]))
    assert normalised(0.5, np.array([0.2, 0.5]), np.array([1.0, 0.5])).tolist()[0] == pytest.approx(0.375)
    assert np.isnan(normalised(0.5, np.array([0.2, 0.5]), np.array([1.0, 0.5]))[1])


def _row(method, mode, f, seed, n_filled, fill="zero"):
    return {
        "method": method,
        "scope": "global",
        "scope_name": "global",
        "layer": pd.NA,
        "module": None,
        "mode": mode,
        "f": f,
        "seed": seed,
        "fill": fill,
        "n_scope": 100,
        "n_filled": n_filled,
    }


def tiny_data(correct: dict[str, list[list[int]]], full: list[int], logp_shift: float = 0.0) -> AblationData:
    """Preserve curves on GRID: ``correct[method]`` per f (the random method one seed),
    the intact model's correctness ``full``; the log-probabilities are ``log(0.9)`` where correct and
    ``log(0.2) + logp_shift`` where not."""
    rows, corr = [], []
    for method, per_f in correct.items():
        seed = 0 if method == "random" else None
        for f, c in zip(GRID, per_f, strict=True):
            rows.append(_row(method, "preserve", f, seed, 100 - round(100 * f)))
            corr.append(c)
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    table["layer"] = table["layer"].astype("Int64")
    table["accuracy"] = table["macro_f1"] = [np.mean(c) for c in corr]
    correct_arr = np.array(corr, dtype=bool)
    y = np.zeros(len(full), dtype=np.int64)
    full_pred = np.where(np.array(full, dtype=bool), 0, 1)
    logp = np.where(correct_arr, np.log(0.9), np.log(0.2) + logp_shift)
    full_logp = np.where(np.array(full, dtype=bool), np.log(0.9), np.log(0.2) + logp_shift)
    return AblationData(
        table, correct_arr, y, full_pred, np.array([f"P{i}" for i in range(len(full))]), logp, full_logp
    )


#: Method: 1, 2, 3, 4 of 4 proteins right at f = 0, 0.01, 0.1, 1; random: 1, 1, 2, 4. Intact: all right.
METHOD = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
RANDOM = [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]]


def test_the_faithfulness_table_by_hand():
    data = tiny_data({"ig": METHOD, "random": RANDOM}, full=[1, 1, 1, 1])
    faith = compare_with_random(data, n_boot=0)["faithfulness"]
    acc = faith[faith["metric"] == "accuracy"].iloc[0]
    # method F = 0, 1/3, 2/3, 1 (CPR 2/3, CMD 1/3); random F = 0, 0, 1/3, 1 (m(empty) = 1/4)
    cpr_random = (LN10 * (0 + 1 / 3) / 2 + LN10 * (1 / 3 + 1) / 2) / (2 * LN10)
    assert acc.cpr_method == pytest.approx(2 / 3) and acc.cpr_random == pytest.approx(cpr_random)
    assert acc.cpr_gap == pytest.approx(2 / 3 - cpr_random)
    assert acc.cmd_method == pytest.approx(1 / 3) and acc.cmd_random == pytest.approx(1 - cpr_random)
    assert (acc.m_empty, acc.m_full, acc.fill, acc.note) == (0.25, 1.0, "zero", "")
    assert np.isnan(acc.ci_lo) and np.isnan(acc.p_value)  # no bootstrap asked for
    # the log-probability metric: m = mean of log 0.9 / log 0.2 over the proteins
    lp = faith[faith["metric"] == "logp"].iloc[0]
    hi, lo = math.log(0.9), math.log(0.2)
    m = np.array([(hi + 3 * lo) / 4, (2 * hi + 2 * lo) / 4, (3 * hi + lo) / 4, hi])
    f = (m - m[0]) / (hi - m[0])
    assert lp.cpr_method == pytest.approx(cpr(f, GRID))


def test_the_bootstrap_of_the_areas_is_that_of_the_gap_to_random():
    """The same draws as the accuracy gap (the AUC table is unchanged by the new table), an interval
    around the estimate, and a p-value at the bootstrap's floor for a clear gap."""
    rng = np.random.default_rng(0)
    n = 60
    per_f_m, per_f_r = [0.25, 0.6, 0.85, 1.0], [0.25, 0.3, 0.45, 1.0]
    correct = {
        "ig": [list(rng.random(n) < p) for p in per_f_m],
        "random": [list(rng.random(n) < p) for p in per_f_r],
    }
    correct["random"][0] = correct["ig"][0]  # the all-filled mask is one mask for every method
    data = tiny_data({k: [list(map(int, c)) for c in v] for k, v in correct.items()}, full=[1] * n)
    out = compare_with_random(data, n_boot=400, seed=3)
    auc, _ = random_comparison(data, n_boot=400, seed=3)
    pd.testing.assert_frame_equal(out["random_gap"], auc)
    acc = out["faithfulness"].query("metric == 'accuracy'").iloc[0]
    assert acc.ci_lo < acc.cpr_gap < acc.ci_hi and acc.ci_lo > 0 and acc.excludes_zero
    assert acc.p_value == pytest.approx(1 / 400)
    assert acc.cmd_ci_lo < acc.cmd_gap < acc.cmd_ci_hi < 0  # closer to the intact model than random


def test_undefined_faithfulness_is_nan_with_a_note_and_an_inconclusive_claim():
    """A scope whose full ablation changes nothing (m(empty) = m(full) = 1): F, the areas and their
    intervals are NaN, the table says why, and the claim is inconclusive with that note."""
    flat = [[1, 1, 1, 1]] * 4
    data = tiny_data({"activation": flat, "random": flat}, full=[1, 1, 1, 1])
    faith = compare_with_random(data, n_boot=100, seed=0)["faithfulness"]
    acc = faith[faith["metric"] == "accuracy"].iloc[0]
    assert np.isnan(acc.cpr_gap) and np.isnan(acc.ci_lo) and np.isnan(acc.p_value)
    assert acc.note == UNDEFINED_NOTE
    gap, _ = random_comparison(data, n_boot=100, seed=0)
    claims = evaluate_claims(gap, None, None, SETTINGS, faithfulness=faith)
    one = claims[claims["claim"] == "1"].iloc[0]
    assert one.verdict == "inconclusive" and one.note == UNDEFINED_NOTE
    assert one.source == "stats/faithfulness.tsv"
    # a grid without the all-filled mask: NaN too, and why
    no_empty = tiny_data({"activation": flat, "random": flat}, full=[1, 1, 1, 1])
    no_empty.table["n_filled"] = 50
    faith = compare_with_random(no_empty, n_boot=0)["faithfulness"]
    assert set(faith["note"]) == {NO_EMPTY_NOTE} and faith["cpr_gap"].isna().all()


def test_curve_statistics_carry_f_per_row_and_the_areas_per_curve_for_every_fill():
    a = tiny_data({"ig": METHOD, "random": RANDOM}, full=[1, 1, 1, 1])
    b = tiny_data({"ig": RANDOM, "random": RANDOM}, full=[1, 1, 1, 1])
    b.table["fill"] = "resample"
    both = AblationData(
        pd.concat([a.table, b.table], ignore_index=True),
        np.concatenate([a.correct, b.correct]),
        a.y_true,
        a.full_pred,
        a.accessions,
        np.concatenate([a.logp, b.logp]),
        a.full_logp,
    )
    frames = curve_statistics(
        [both], {"stats": {"keep_accuracy": 0.95, "bootstrap": 50, "confidence": 0.95}, "seed": 0}
    )
    curves = frames["curves"]
    ig = curves[(curves["method"] == "ig") & (curves["fill"] == "zero")]
    assert ig["faithfulness_accuracy"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    summary = frames["summary"].set_index(["method", "fill"])
    assert summary.loc[("ig", "zero"), "cpr_accuracy"] == pytest.approx(2 / 3)
    assert summary.loc[("ig", "zero"), "cmd_accuracy"] == pytest.approx(1 / 3)
    assert summary.loc[("ig", "resample"), "cpr_accuracy"] == pytest.approx(
        summary.loc[("random", "resample"), "cpr_accuracy"]
    )
    faith = frames["faithfulness"]
    assert sorted(faith["fill"].unique()) == ["resample", "zero"]
    # per row, averaged over replicates: each replicate normalised by its own intact and empty values
    other = tiny_data({"ig": METHOD, "random": RANDOM}, full=[1, 1, 1, 0])
    per_row, notes = faithfulness_per_row([a, other])
    alone = (np.array([0.25, 0.5, 0.75, 1.0]) - 0.25) / (0.75 - 0.25)
    assert per_row["accuracy"][:4] == pytest.approx((np.array([0, 1 / 3, 2 / 3, 1]) + alone) / 2)
    assert notes == [""] * len(a.table)


def test_claims_read_the_areas_per_fill_and_say_whether_the_verdict_holds_under_both():
    rows = []
    for fill, (gap, lo, hi) in {"zero": (0.2, 0.1, 0.3), "resample": (0.01, -0.05, 0.08)}.items():
        for method, mode in (("activation", "preserve"), ("ig", "preserve"), ("ig", "suppress")):
            rows.append(
                {
                    "method": method,
                    "scope": "global",
                    "scope_name": "global",
                    "mode": mode,
                    "fill": fill,
                    "metric": "accuracy",
                    "cpr_gap": gap if mode == "preserve" else -gap,
                    "ci_lo": lo if mode == "preserve" else -hi,
                    "ci_hi": hi if mode == "preserve" else -lo,
                    "p_value": 0.001,
                    "n_boot": 1000,
                    "note": "",
                }
            )
    faith = pd.DataFrame(rows)
    claims = evaluate_claims(
        pd.DataFrame(columns=["method", "scope", "mode", "auc_gap"]), None, None, SETTINGS, faithfulness=faith
    )
    got = {(r.claim, r.fill): (r.verdict, r.robust, r.other_fills) for r in claims.itertuples()}
    assert got[("1", "zero")] == ("supported", False, "resample: inconclusive")
    assert got[("1", "resample")] == ("inconclusive", False, "zero: supported")
    assert got[("4", "zero")][0] == "supported" and got[("4", "resample")][0] == "inconclusive"
    assert claims.iloc[0].statistic == "CPR gap to random (accuracy; global, preserve)"
    same = faith.assign(fill="zero")
    one_fill = evaluate_claims(
        pd.DataFrame(columns=["method"]), None, None, SETTINGS, faithfulness=same.iloc[:3]
    )
    assert one_fill["robust"].isna().all() and (one_fill["other_fills"] == "").all()
