"""A verdict per claim: the decision rule, the statistics behind each claim, and the science on the
planted-motif model (claims 1 and 2 supported; random numbers named ``ig`` never are)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from kneurons.errors import InputError
from kneurons.jobs.claims import run_claims
from kneurons.stats.claims import CLAIM_COLUMNS, evaluate_claims, rule_text, verdict
from kneurons.stats.metrics import classification_metrics
from kneurons.tables import read_claims, write_json_result, write_result_table, write_stats_tables

SETTINGS = {
    "confidence": 0.95,
    "top_fraction": 0.01,
    "claims": {
        "auc_margin": 0.01,
        "log2_enrichment_margin": 0.1,
        "specificity_margin": 0.02,
        "compactness_margin": 0.5,
    },
}


@pytest.mark.parametrize(
    ("lo", "hi", "direction", "expected"),
    [
        (0.02, 0.10, +1, "supported"),
        (-0.10, -0.02, +1, "not supported"),  # the other direction
        (-0.005, 0.008, +1, "not supported"),  # within the equivalence margin
        (-0.05, 0.10, +1, "inconclusive"),
        (-0.10, -0.02, -1, "supported"),  # a claimed decrease
        (0.02, 0.10, -1, "not supported"),
        (-0.05, 0.10, -1, "inconclusive"),
        (float("nan"), 0.1, +1, "inconclusive"),
    ],
)
def test_decision_rule(lo, hi, direction, expected):
    assert verdict(lo, hi, direction, margin=0.01) == expected


def test_rule_text_names_the_interval_side_and_margin():
    text = rule_text(-1, 0.01, 0.95)
    assert "95% interval lies below 0" in text and "±0.01" in text


def _random_gap(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "method": m,
                "scope": "global",
                "scope_name": "all",
                "mode": mode,
                "auc_gap": g,
                "ci_lo": lo,
                "ci_hi": hi,
                "p_value": 0.01,
            }
            for m, mode, g, lo, hi in rows
        ]
    )


def _density(method: str, count: int, n_top: int = 100, n_neurons: int = 1000, total: int = 6000):
    return pd.DataFrame(
        [
            {
                "method": method,
                "seed": pd.NA,
                "level": "module_type",
                "layer": pd.NA,
                "module": "k_proj",
                "n_neurons": n_neurons,
                "n_total": total,
                "n_top": n_top,
                "count": count,
                "enrichment": count / (n_top * n_neurons / total),
                "p_enriched": 0.5,
                "q_enriched": 0.5,
            }
        ]
    )


def test_claims_from_tables():
    gap = _random_gap(
        [
            ("activation", "preserve", 0.2, 0.1, 0.3),
            ("ig", "preserve", 0.0, -0.05, 0.06),
            ("ig", "suppress", -0.2, -0.3, -0.1),
        ]
    )
    dens = pd.concat([_density("activation", 40), _density("ig", 17)], ignore_index=True)
    spec = pd.DataFrame(
        {"class": ["a", "b", "c"], "drop_own": [0.5, 0.6, 0.4], "drop_other": [0.0, 0.1, 0.0]}
    )
    claims = evaluate_claims(gap, dens, spec, SETTINGS)
    assert list(claims.columns) == CLAIM_COLUMNS
    got = {(r.claim, r.method): r.verdict for r in claims.itertuples()}
    assert got == {
        ("1", "activation"): "supported",
        ("2", "ig"): "inconclusive",
        ("3", "activation"): "supported",  # 40 of 100 where 1/6 is expected
        ("3", "ig"): "inconclusive",  # 17 of 100: the expected share
        ("4", "ig"): "supported",
        ("5", "ig"): "supported",
    }
    k = claims[(claims["claim"] == "3") & (claims["method"] == "activation")].iloc[0]
    lo, hi = sps.binomtest(40, 100).proportion_ci(0.95, method="exact")
    assert k.estimate == pytest.approx(math.log2(0.4 * 6))
    assert (k.ci_lo, k.ci_hi) == pytest.approx((math.log2(lo * 6), math.log2(hi * 6)))
    five = claims[claims["claim"] == "5"].iloc[0]
    d = np.array([0.5, 0.5, 0.4])
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert (five.ci_lo, five.ci_hi) == pytest.approx((d.mean() - half, d.mean() + half))
    assert set(claims["figure"]) >= {"figures/accuracy_preserve.png", "figures/density.png"}


def _compactness(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    """stats/compactness.tsv rows ``(method, comparison, estimate, ci_lo, ci_hi)`` of stream L2, zero
    fill (the per-reading gaps made up around the estimate)."""
    return pd.DataFrame(
        [
            {
                "layer": 2,
                "method": m,
                "comparison": c,
                "fill": "zero",
                "estimate": e,
                "ci_lo": lo,
                "ci_hi": hi,
                "p_value": 0.002,
                "p_floor": 0.001,
                "gap_fraction": e + 0.1,
                "gap_directions": e,
                "note": "",
            }
            for m, c, e, lo, hi in rows
        ]
    )


def test_claim_6_is_one_row_per_method_comparison_and_fill_of_the_compactness_table():
    """Features more compact than the stream's dimensions ([0.1, 0.3]): supported; a gap to PCA within
    ±0.02: not supported; an interval across 0 and past the margin: inconclusive; the random basis is
    the null, no claim. No table: no claim 6."""
    margins = SETTINGS | {"claims": SETTINGS["claims"] | {"compactness_margin": 0.02}}
    gap = _random_gap([("ig", "preserve", 0.2, 0.1, 0.3)])
    table = _compactness(
        [
            ("activation", "dimensions", 0.2, 0.1, 0.3),
            ("activation", "pca", 0.001, -0.01, 0.015),
            ("ig", "dimensions", 0.05, -0.1, 0.2),
            ("ig", "random_basis", 0.3, 0.2, 0.4),
        ]
    )
    claims = evaluate_claims(gap, None, None, margins, compactness=table)
    six = claims[claims["claim"] == "6"]
    got = {(r.method, r.statistic.split(" - ")[1].split(" ")[0]): r.verdict for r in six.itertuples()}
    assert got == {
        ("activation", "dimensions"): "supported",
        ("activation", "pca"): "not supported",
        ("ig", "dimensions"): "inconclusive",
    }
    act = six.iloc[0]
    assert (act.estimate, act.ci_lo, act.ci_hi, act.p_value, act.p_floor) == (0.2, 0.1, 0.3, 0.002, 0.001)
    assert act.statement == "knowledge is more compact in SAE features than in the stream's own dimensions"
    assert act.statistic == (
        "smaller CPR gap (per fraction of the basis, per directions kept), SAE features - dimensions "
        "(stream L2, preserve)"
    )
    assert (act.direction, act.margin, act.figure, act.fill) == (
        "greater",
        0.02,
        "figures/compactness.png",
        "zero",
    )
    assert act.source == "stats/compactness.tsv" and act.rule == rule_text(+1, 0.02, 0.95)
    assert "6" not in set(evaluate_claims(gap, None, None, margins)["claim"])
    # the baseline rule makes claim 6 inconclusive as every other claim of its set
    from kneurons.stats.claims import IntactModel

    at_baseline = IntactModel(accuracy=0.31, n=300, majority=0.31)
    claims = evaluate_claims(gap, None, None, margins, intact=at_baseline, compactness=table)
    six = claims[claims["claim"] == "6"]
    assert set(six["verdict"]) == {"inconclusive"} and six["note"].str.startswith("model at baseline").all()


def test_a_missing_measurement_is_not_a_verdict():
    """No ig rows, no characterisation: claims 2, 3 (ig), 4 and 5 are absent, not 'inconclusive'."""
    gap = _random_gap([("activation", "preserve", 0.2, 0.1, 0.3)])
    claims = evaluate_claims(gap, _density("activation", 30), None, SETTINGS)
    assert sorted(zip(claims["claim"], claims["method"], strict=True)) == [
        ("1", "activation"),
        ("3", "activation"),
    ]


def _model_metrics(path: Path, y: np.ndarray, pred: np.ndarray, labels: list[str]) -> Path:
    """``model/metrics.json`` as fine-tuning writes it (its test part), for predictions ``pred``."""
    write_json_result(path, {"test": classification_metrics(y, pred, labels)})
    return path


def test_claims_job_writes_the_table(tmp_path):
    gap = _random_gap([("ig", "preserve", 0.2, 0.1, 0.3), ("ig", "suppress", -0.1, -0.2, 0.05)])
    paths = {"random_gap": tmp_path / "random_gap.tsv", "density": tmp_path / "density.tsv"}
    write_stats_tables({"random_gap": gap, "density": _density("ig", 30)}, paths)
    y = np.arange(200) % 4
    _, intact = _write_ablation(tmp_path, "ig", y, y, lambda mode, f, seed: y)  # a model that learned
    out = tmp_path / "claims.tsv"
    run_claims({**{k: str(v) for k, v in paths.items()}, "intact": [str(intact)]}, {"stats": SETTINGS}, out)
    back = read_claims(out)
    assert list(back["claim"]) == ["2", "3", "4"]
    assert list(back["verdict"]) == ["supported", "supported", "inconclusive"]
    assert list(back["note"]) == ["", "", ""]
    # with the compactness table (SAE features ablated): claim 6 is read from it
    write_stats_tables(
        {"compactness": _compactness([("ig", "pca", 1.0, 0.6, 1.4)])}, {"compactness": tmp_path / "c.tsv"}
    )
    inputs = {
        **{k: str(v) for k, v in paths.items()},
        "intact": [str(intact)],
        "compactness": str(tmp_path / "c.tsv"),
    }
    run_claims(inputs, {"stats": SETTINGS}, out)
    back = read_claims(out)
    assert list(back["claim"]) == ["2", "3", "4", "6"]
    assert back["verdict"].iloc[-1] == "supported" and back["p_value"].iloc[-1] == "0.002"


# -- the baseline rule: a model that learned nothing -------------------------------------------------
FRACS = [0.0, 0.05, 0.2, 0.5, 1.0]
SEEDS = [0, 1, 2]
FILLS = ("zero", "resample")


def _write_ablation(
    root: Path,
    method: str,
    y: np.ndarray,
    full_pred: np.ndarray,
    pred_of,
    n_classes: int = 4,
    fills: tuple[str, ...] = ("zero",),
) -> tuple[Path, Path]:
    """One ablation job's table and predictions (global scope, both modes, ``FRACS``, fill-major over
    ``fills``) where ``pred_of(mode, f, seed[, fill])`` gives the predictions of each mask (the fill
    passed only with several fills), written by the ablation writer."""
    from kneurons.stats.metrics import accuracy, macro_f1
    from kneurons.tables import AblationResult, save_result

    rows, preds = [], []
    for fill in fills:
        for seed in SEEDS if method == "random" else [None]:
            for mode in ("preserve", "suppress"):
                for f in FRACS:
                    pred = pred_of(mode, f, seed, fill) if len(fills) > 1 else pred_of(mode, f, seed)
                    preds.append(pred)
                    k = round(f * 144)
                    row = {"method": method, "scope": "global", "scope_name": "global", "layer": pd.NA}
                    row |= {"module": None, "mode": mode, "f": f, "seed": seed, "fill": fill, "n_scope": 144}
                    row |= {"n_filled": 144 - k if mode == "preserve" else k}
                    rows.append(
                        row | {"accuracy": accuracy(y, pred), "macro_f1": macro_f1(y, pred, n_classes)}
                    )
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    table["layer"] = table["layer"].astype("Int64")
    accessions = np.array([f"P{i}" for i in range(len(y))])
    result = AblationResult(table, np.stack(preds), full_pred, y, accessions, 0.0)
    paths = root / f"{method}.tsv", root / f"{method}.pred.npz"
    save_result(*paths, result)
    return paths


def _one_class_model_files(root: Path, learned: bool) -> dict[str, Path | list[Path]]:
    """A model that predicts one class (``learned`` False: the intact accuracy is the majority
    share 0.31), or one that predicts every protein right; either way, preserving the IG neurons
    keeps its predictions while random selections move them all to a rare class (10% of the
    proteins), and suppressing the IG neurons moves them there too: AUC gaps far from zero."""
    root.mkdir(parents=True, exist_ok=True)
    y = np.repeat([0, 1, 2, 3], [93, 30, 90, 87])  # shares 0.31, 0.10, 0.30, 0.29
    intact = y.copy() if learned else np.zeros_like(y)
    rare = np.ones_like(y)
    ig = _write_ablation(
        root, "ig", y, intact, lambda mode, f, seed: intact if (mode == "preserve" or f == 0) else rare
    )
    rnd = _write_ablation(
        root, "random", y, intact, lambda mode, f, seed: intact if (mode == "suppress" or f == 1) else rare
    )
    metrics = _model_metrics(root / "metrics.json", y, intact, ["1", "2", "3", "4"])
    return {"tables": [ig[0], rnd[0]], "preds": [ig[1], rnd[1]], "metrics": metrics}


@pytest.mark.parametrize("learned", [False, True])
def test_a_model_at_baseline_makes_every_claim_of_its_set_inconclusive(tmp_path, learned):
    """The issue's real-data case: the intact model predicts one class (accuracy = majority share),
    and ablation moves that constant prediction to another class. Claims 2 and 4 would be
    'supported' on the test split and on an external set; the baseline rule makes them
    inconclusive, statistics kept, with the reason in ``note``. A model that learned keeps them."""
    from kneurons.jobs.external import run_external_stats
    from kneurons.stats.random import random_comparison
    from kneurons.tables import load_ablation

    files = _one_class_model_files(tmp_path / "run", learned)
    # the test split: random_gap from the pooled statistics, model/metrics.json from fine-tuning
    gap, _ = random_comparison([load_ablation(files["tables"], files["preds"])], n_boot=500, seed=0)
    main = {"random_gap": tmp_path / "random_gap.tsv", "density": tmp_path / "density.tsv"}
    write_stats_tables({"random_gap": gap, "density": _density("ig", 40)}, main)
    # an external set: its job writes random_gap.tsv and metrics.json from the same kind of tables
    ext = {
        k: tmp_path / "ext" / f"{k}.{e}"
        for k, e in (("curves", "tsv"), ("random_gap", "tsv"), ("metrics", "json"))
    }
    run_external_stats(
        [files["tables"]], [files["preds"]], {"stats": {"bootstrap": 500, "confidence": 0.95}, "seed": 0}, ext
    )
    # the intact model on the test split's evaluated proteins: an ablation job's predictions
    inputs = {k: str(v) for k, v in main.items()} | {"intact": [str(files["preds"][0])]}
    inputs |= {"external": [str(ext["random_gap"])], "external_metrics": [str(ext["metrics"])]}
    settings = {"stats": SETTINGS, "replicates": 1, "external": ["new"], "ablate": {"max_sequences": 300}}
    claims = run_claims(inputs, settings, tmp_path / "c.tsv")
    curve = claims[claims["claim"].isin(["2", "4"])]
    assert len(curve) == 4 and (curve["ci_lo"] * curve["ci_hi"] > 0).all()  # intervals clear of zero
    assert (curve["estimate"].abs() > 0.1).all(), curve.to_string()
    assert set(claims["verdict"]) == {"supported" if learned else "inconclusive"}, claims.to_string()
    # both metrics files report the majority baseline beside the accuracy
    from kneurons.tables import read_intact_metrics

    ext_metrics = read_intact_metrics(ext["metrics"])
    assert ext_metrics["majority_baseline"] == pytest.approx(0.31)
    assert ext_metrics["accuracy"] == pytest.approx(1.0 if learned else 0.31) and ext_metrics["n"] == 300
    assert read_intact_metrics(files["metrics"], "test") == ext_metrics
    written = read_claims(tmp_path / "c.tsv")
    if learned:
        assert set(claims["note"]) == set(written["note"]) == {""}, claims.to_string()
        return
    # the note names the proteins: the cap drew all 300 of each set
    for note in (*claims["note"], *written["note"]):
        assert re.fullmatch(
            r"model at baseline: accuracy 0\.310 \[0\.\d{3}, 0\.\d{3}\], majority 0\.310 "
            r"\(n = 300; the (test|new) proteins of ablate\.max_sequences\)",
            note,
        ), note
    assert set(written["source"]) == {
        "stats/random_gap.tsv",
        "external/new/random_gap.tsv",
        "stats/density.tsv",
    }


def test_the_baseline_rule_is_judged_on_the_proteins_each_claim_was_measured_on(tmp_path):
    """Issue 38's case: on all 708 test proteins the model passes (0.461 vs a majority of 0.397), but
    the claims are measured on the 200 of ``ablate.max_sequences``, where it is at baseline (0.460
    [0.389, 0.532] vs 0.395). The rule reads the ablation's own predictions, pooled over the
    replicates, and the note says which proteins; claim 5 is judged on its held-out proteins."""
    from kneurons.jobs.characterise import held_out_intact
    from kneurons.jobs.claims import intact_from_predictions

    gap = _random_gap([("ig", "preserve", 0.2, 0.1, 0.3), ("ig", "suppress", -0.3, -0.4, -0.2)])
    paths = {"random_gap": tmp_path / "random_gap.tsv", "density": tmp_path / "density.tsv"}
    write_stats_tables({"random_gap": gap, "density": _density("ig", 30)}, paths)
    y = np.repeat([0, 1, 2, 3], [79, 50, 40, 31])  # majority 79 / 200 = 0.395
    preds = []
    for r, right in enumerate((92, 92)):  # 92 / 200 = 0.460 in both replicates
        full = np.where(np.arange(200) < right, y, (y + 1) % 4)
        (tmp_path / f"r{r}").mkdir()
        preds.append(
            _write_ablation(tmp_path / f"r{r}", "ig", y, full, lambda mode, f, seed, full=full: full)[1]
        )
    # claim 5's held-out proteins: 150 of characterise.max_proteins, where the model does well
    matrix = pd.DataFrame(
        {
            "suppressed": "1",
            "evaluated": ["1", "2"],
            "recall_base": [0.9, 0.8],
            "recall": 0.0,
            "recall_change": 0.0,
        }
    )
    held = held_out_intact(matrix, pd.Series(["1"] * 100 + ["2"] * 50))
    assert held == {"accuracy": (90 + 40) / 150, "n": 150, "majority_baseline": 100 / 150}
    summaries = []
    for r in range(2):
        summaries.append(tmp_path / f"r{r}" / "class_summary.json")
        write_json_result(summaries[-1], {"intact": held})
    spec = pd.DataFrame(
        {"class": ["1", "2", "3"], "n_neurons": 5, "drop_own": [0.5, 0.6, 0.4], "drop_other": [0.1, 0.0, 0.1]}
    )
    write_result_table(spec, tmp_path / "spec.tsv")
    inputs = {k: str(v) for k, v in paths.items()} | {
        "intact": [str(p) for p in preds],
        "class_specificity": [str(tmp_path / "spec.tsv")] * 2,
        "class_summary": [str(p) for p in summaries],
    }
    settings = {
        "stats": SETTINGS,
        "replicates": 2,
        "ablate": {"max_sequences": 200},
        "characterise": {"split": "test", "max_proteins": 150},
    }
    claims = run_claims(inputs, settings, tmp_path / "c.tsv").set_index("claim")
    note = (
        "model at baseline: accuracy 0.460 [0.389, 0.532], majority 0.395 "
        "(n = 200; the test proteins of ablate.max_sequences)"
    )
    assert claims.loc[["2", "3", "4"], "note"].tolist() == [note] * 3
    assert set(claims.loc[["2", "3", "4"], "verdict"]) == {"inconclusive"}
    assert claims.loc["5", "note"] == "" and claims.loc["5", "verdict"] == "supported"
    # replicates evaluated on other proteins cannot be pooled
    other = _write_ablation(
        tmp_path, "ig", y[::-1].copy(), y[::-1].copy(), lambda mode, f, seed: y[::-1].copy()
    )[1]
    with pytest.raises(InputError, match="evaluated other proteins"):
        intact_from_predictions([preds[0], other])


def test_the_atlas_shows_the_note(tmp_path):
    from kneurons.atlas.build import _claims_view
    from kneurons.stats.claims import IntactModel
    from kneurons.tables import write_claims

    gap = _random_gap([("ig", "preserve", 0.2, 0.1, 0.3)])
    intact = IntactModel(accuracy=0.31, n=300, majority=0.31)
    write_claims(evaluate_claims(gap, None, None, SETTINGS, intact=intact), tmp_path / "c.tsv")
    view = _claims_view(read_claims(tmp_path / "c.tsv"))
    assert view["verdict"].tolist() == ["inconclusive"]
    assert view["note"].iloc[0].startswith("model at baseline: accuracy 0.310 [")


# -- an independent recomputation of every claim, for 1, 2 and 3 replicates -----------------------
def _score_table(method: str, rng: np.random.Generator, k_boost: float) -> pd.DataFrame:
    """Scores of a 2-layer model with 8-unit modules (fc1: 32), k_proj scores raised by ``k_boost``."""
    from kneurons.ranking import NeuronLayout

    layout = NeuronLayout.from_sizes(
        2, {"q_proj": 8, "k_proj": 8, "v_proj": 8, "out_proj": 8, "fc1": 32, "fc2": 8}
    )
    rows = [
        (method, layer, m, i)
        for (layer, m), n in zip(layout.blocks, layout.sizes, strict=True)
        for i in range(n)
    ]
    df = pd.DataFrame(rows, columns=["method", "layer", "module", "neuron"])
    df["score"] = rng.random(len(df)) + k_boost * (df["module"] == "k_proj")
    df["label"] = pd.array([None] * len(df), dtype="string")
    return df


def _replicate_files(root: Path, r: int, y: np.ndarray, rng: np.random.Generator, at_baseline: bool) -> dict:
    """Replicate ``r``'s ablation tables, score-table density, class specificity and metrics."""
    from kneurons.stats.density import density

    root.mkdir(parents=True, exist_ok=True)
    n = len(y)

    def noisy(p_correct: float) -> np.ndarray:
        right = rng.random(n) < p_correct
        return np.where(right, y, (y + 1 + rng.integers(0, 3, n)) % 4)

    intact = np.zeros_like(y) if at_baseline else noisy(0.9)
    # the all-filled mask (preserve f = 0, suppress f = 1) is one mask for every method and seed
    empty = {fill: noisy(0.3) for fill in FILLS}
    # under resample, activation's neurons do no better than random's (a verdict that is not robust)
    p_method = {("activation", "zero"): 0.75, ("ig", "zero"): 0.8, ("activation", "resample"): 0.5}
    p_method[("ig", "resample")] = 0.85
    files = {"tables": [], "preds": []}
    for method in ("activation", "ig", "random"):

        def pred_of(mode, f, seed, fill, method=method):
            if (mode == "preserve" and f == 1) or (mode == "suppress" and f == 0):
                return intact
            if (mode == "preserve" and f == 0) or (mode == "suppress" and f == 1):
                return empty[fill]
            if method == "random":
                return noisy(0.5)
            return noisy(p_method[method, fill] if mode == "preserve" else 0.3)

        t, p = _write_ablation(root, method, y, intact, pred_of, fills=FILLS)
        files["tables"].append(t)
        files["preds"].append(p)
    files["density"] = pd.concat(
        [density(_score_table(m, rng, boost), m, 0.1) for m, boost in (("activation", 0.3), ("ig", 0.6))],
        ignore_index=True,
    )
    spec = pd.DataFrame({"class": ["1", "2", "3", "4"] * 2, "n_neurons": 5, "fill": np.repeat(FILLS, 4)})
    spec["drop_own"], spec["drop_other"] = rng.uniform(0.2, 0.6, 8), rng.uniform(0.0, 0.2, 8)
    files["class_specificity"] = root / "class_specificity.tsv"
    write_result_table(spec, files["class_specificity"])
    # claim 5's held-out proteins (characterise.max_proteins 100, majority 0.4): the intact model
    # at their baseline exactly when it is not at the ablation subset's, so claim 5's verdict flips
    held_out = {"accuracy": 0.4 if not at_baseline else 0.85 + 0.01 * r, "n": 100, "majority_baseline": 0.4}
    files["class_summary"] = root / "class_summary.json"
    write_json_result(files["class_summary"], {"intact": held_out, "held_out_proteins": 100})
    return files


@pytest.mark.parametrize(("n_rep", "at_baseline"), [(1, False), (2, False), (3, False), (3, True)])
def test_claims_equal_an_independent_recomputation(tmp_path, n_rep, at_baseline):
    """Claims 1-5 from the project's own statistics (gap to random, density per replicate pooled,
    class specificity per replicate, metrics per replicate) equal a recomputation by other code
    (tests/claims_check.py): estimates, intervals, p-values, verdicts, notes and sources, at full
    precision in the job's frame and to three significant digits in the written claims.tsv. The
    pooled density's count and n_top are the replicates' sums (item 1 of issue #25)."""
    from claims_check import Compactness, SetFiles, compare, recompute

    from kneurons.jobs.stats import run_compactness
    from kneurons.stats.density import pool_density, with_q_values
    from kneurons.stats.random import compare_with_random
    from kneurons.tables import load_ablation

    rng = np.random.default_rng(100 + n_rep)
    y = np.repeat([0, 1, 2, 3], [70, 50, 40, 40])
    reps = [_replicate_files(tmp_path / f"rep{r}", r, y, rng, at_baseline) for r in range(n_rep)]
    compared = compare_with_random([load_ablation(f["tables"], f["preds"]) for f in reps], n_boot=400, seed=0)
    gap = compared["random_gap"]
    # as the statistics job pools them (kneurons.jobs.stats), q-values included
    pooled = with_q_values(pool_density([f["density"] for f in reps]))

    def k_proj(d: pd.DataFrame) -> pd.DataFrame:
        return d[(d["level"] == "module_type") & (d["module"] == "k_proj")].set_index("method")

    for col in ("count", "n_top"):
        assert (k_proj(pooled)[col] == sum(k_proj(f["density"])[col] for f in reps)).all(), col
    assert (pooled["n_replicates"] == n_rep).all()
    stats = {name: tmp_path / f"{name}.tsv" for name in ("random_gap", "density", "faithfulness")}
    write_stats_tables(
        {"random_gap": gap, "density": pooled, "faithfulness": compared["faithfulness"]}, stats
    )
    inputs = {name: str(v) for name, v in stats.items()} | {"intact": [str(f["preds"][0]) for f in reps]}
    inputs["class_specificity"] = [str(f["class_specificity"]) for f in reps]
    inputs["class_summary"] = [str(f["class_summary"]) for f in reps]
    # claim 6: the same-site bases of one SAE stream per replicate: activation's features more
    # compact than the stream's dimensions, ig's features no better than its PCA components
    bases = [_bases_files(tmp_path / f"rep{r}" / "bases", y, f, rng) for r, f in enumerate(reps)]
    stats["compactness"] = tmp_path / "compactness.tsv"
    run_compactness(
        [[t] for t, _ in bases],
        [[p] for _, p in bases],
        {"stats": {"keep_accuracy": 0.95, "bootstrap": 200, "confidence": 0.95}, "seed": 7},
        stats,
    )
    inputs["compactness"] = str(stats["compactness"])
    settings = {
        "stats": SETTINGS,
        "replicates": n_rep,
        "characterise": {"split": "test", "max_proteins": 100},
    }
    claims = run_claims(inputs, settings, tmp_path / "claims.tsv")

    test_set = SetFiles("test", stats["random_gap"], [f["preds"][0] for f in reps], "every test protein")
    test_set.density = stats["density"]
    test_set.faithfulness = stats["faithfulness"]
    test_set.ablation = [f["tables"] for f in reps]
    test_set.class_specificity = [f["class_specificity"] for f in reps]
    test_set.class_summary = [f["class_summary"] for f in reps]
    test_set.class_proteins = "the test proteins of characterise.max_proteins"
    test_set.compactness = Compactness(
        stats["compactness"], bases=[([t], [p]) for t, p in bases], n_boot=200, seed=7
    )
    want = recompute([test_set], SETTINGS)
    # claims 1, 2, 4 and 5 under both fills, 3 (two methods) and 6 (two methods x two comparisons x
    # two fills)
    assert len(want) == 18
    # each claim judged on its own proteins: claim 5 on the held-out ones, the others on the ablation's
    five = want["claim"] == "5"
    assert bool((want.loc[~five, "baseline"] != "").all()) == at_baseline
    assert bool((want.loc[five, "baseline"] != "").all()) != at_baseline
    assert compare(claims, want, rel=1e-9) == []
    assert compare(read_claims(tmp_path / "claims.tsv"), want, rel=5e-3) == []
    assert set(claims.loc[claims["claim"].isin(["1", "2", "4"]), "source"]) == {"stats/faithfulness.tsv"}
    if not at_baseline:  # the rules are exercised, not only the baseline
        assert {"supported"} <= set(want["verdict"]), want.to_string()
        one = want[want["claim"] == "1"].set_index("fill")
        assert one.loc["zero", "verdict"] == "supported" and one.loc["resample", "verdict"] != "supported"
        assert not one["robust"].any() and one.loc["zero", "other_fills"].startswith("resample: ")
        six = want[want["claim"] == "6"].set_index(["method", "detail", "fill"])
        assert six.loc[("activation", "dimensions L2", "zero"), "verdict"] == "supported", six.to_string()
        assert six.loc[("ig", "pca L2", "zero"), "estimate"] < 0, six.to_string()
        assert (six["ci_lo"] <= six["estimate"]).all() and (six["estimate"] <= six["ci_hi"]).all()


def _bases_files(
    root: Path, y: np.ndarray, neuron_files: dict, rng: np.random.Generator
) -> tuple[Path, Path]:
    """One replicate's same-site bases table of the SAE stream entering layer 2 (activation, ig, random;
    both fills), written by the ablation writer, on the intact model of its neuron tables: the SAE's 64
    features keep the intact predictions from 4 directions on under activation; the stream's 16
    dimensions need 16, its PCA components 2 (and ig's features never beat them)."""
    from kneurons.stats.metrics import accuracy, macro_f1
    from kneurons.tables import AblationResult, read_predictions, save_result

    intact = read_predictions(neuron_files["preds"][0])[2]
    n = len(y)
    empty = {fill: np.where(rng.random(n) < 0.3, intact, (intact + 1) % 4) for fill in FILLS}
    reach = {"features": 4, "dimensions": 16, "pca": 2, "random_basis": 12}
    sizes = {"features": 64, "dimensions": 16, "pca": 16, "random_basis": 16}

    def pred(basis: str, method: str, kept: int, fill: str) -> np.ndarray:
        if kept == 0:
            return empty[fill]
        if kept >= sizes[basis]:
            return intact
        need = (
            reach[basis]
            * (3 if method == "random" else 1)
            * (2 if (method, basis) == ("ig", "features") else 1)
        )
        p_keep = min(1.0, 0.4 + 0.6 * kept / need)
        return np.where(rng.random(n) < p_keep, intact, (intact + 1) % 4)

    rows, preds = [], []
    for basis, size in sizes.items():
        for fill in FILLS:
            for method in ("activation", "ig", "random"):
                for seed in SEEDS if method == "random" else [None]:
                    grids = {
                        "global": [0.0, 0.05, 0.25, 1.0],
                        "directions": [k / size for k in (0, 1, 2, 4, 8, 16)],
                    }
                    for scope, fractions in grids.items():
                        for f in fractions:
                            kept = round(f * size)
                            p = pred(basis, method, kept, fill)
                            preds.append(p)
                            row = {
                                "method": method,
                                "scope": scope,
                                "scope_name": f"L2.{basis}",
                                "basis": basis,
                            }
                            row |= {"layer": 2, "module": "sae", "mode": "preserve", "f": f, "seed": seed}
                            row |= {
                                "fill": fill,
                                "n_scope": size,
                                "n_selected": kept,
                                "n_filled": size - kept,
                            }
                            rows.append(row | {"accuracy": accuracy(y, p), "macro_f1": macro_f1(y, p, 4)})
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    table["layer"] = table["layer"].astype("Int64")
    root.mkdir(parents=True, exist_ok=True)
    paths = root / "layer2.tsv", root / "layer2.pred.npz"
    accessions = np.array([f"P{i}" for i in range(n)])
    save_result(*paths, AblationResult(table, np.stack(preds), intact, y, accessions, 0.0))
    return paths


# -- what people read: claims.tsv rounded, the verdict table rendered ----------------------------
def test_numbers_are_rounded_to_what_the_interval_supports():
    from kneurons.tables.claims import interval_texts, p_text, significant

    # the interval's width to 3 significant digits sets the decimals of all three numbers
    assert interval_texts(0.09570138888, 0.05277708333, 0.14366527777) == ("0.0957", "0.0528", "0.1437")
    assert interval_texts(-2.415037499, -7.719121648, -0.005397909) == ("-2.42", "-7.72", "-0.01")
    assert interval_texts(0.111, 1.7578531223231644e-17, 0.2884259259) == ("0.111", "0.000", "0.288")
    assert interval_texts(0.5, 0.5, 0.5) == ("0.500", "0.500", "0.500")  # no width: 3 significant digits
    assert interval_texts(-1.0, float("-inf"), 2.9) == ("-1.00", "-inf", "2.90")
    assert [significant(x) for x in (0.0140709, 1.76e-17, 1234.5, 0.0, float("nan"))] == [
        "0.0141",
        "1.76e-17",
        "1230",
        "0",
        "",
    ]
    # a bootstrap p-value at its floor 1/B says so; above it, 3 significant digits
    assert p_text(0.001, 0.001) == "< 0.001" and p_text(0.002, 0.001) == "0.002"
    # a permutation test's floor 1 / (B + 1) is written short and still a bound: rounded up
    assert p_text(1 / 1001, 1 / 1001) == "< 0.001" and p_text(1 / 999, 1 / 999) == "< 0.00101"
    assert p_text(1.7e-17, float("nan")) == "1.7e-17" and p_text(0.0140709) == "0.0141"  # exact tails


def test_claims_table_is_written_rounded_and_reads_back(tmp_path):
    gap = _random_gap([("ig", "preserve", 0.09570138888, 0.05277708333, 0.14366527777)])
    gap["n_boot"], gap["p_value"] = 1000, 0.001  # no draw crossed zero: the bootstrap's floor
    claims = evaluate_claims(gap, _density("ig", 30), None, SETTINGS, n_replicates=2)
    path = tmp_path / "claims.tsv"
    from kneurons.tables import write_claims

    write_claims(claims, path)
    back = read_claims(path)
    row = back[back["claim"] == "2"].iloc[0]
    assert (row.estimate, row.ci_lo, row.ci_hi) == ("0.0957", "0.0528", "0.1437")
    assert row.p_value == "< 0.001" and row.p_floor == "0.001" and row.verdict == "supported"
    three = back[back["claim"] == "3"].iloc[0]
    assert three.p_floor == "" and not three.p_value.startswith("<")  # hypergeometric: exact tail
    assert "e-1" not in path.read_text() and list(back.columns) == CLAIM_COLUMNS
    # the verdicts are decided on full precision: a lower bound that rounds to 0.000 still counts
    gap = _random_gap([("ig", "preserve", 0.1, 0.00004, 0.2)])
    claims = evaluate_claims(gap, None, None, SETTINGS)
    write_claims(claims, path)
    row = read_claims(path).iloc[0]
    assert row.ci_lo == "0.000" and row.verdict == "supported"


def test_verdict_table_for_the_report_links_each_claims_figure_and_the_atlas():
    from kneurons.tables.claims import render_verdicts

    gap = _random_gap([("ig", "preserve", 0.2, 0.1, 0.3), ("ig", "suppress", -0.1, -0.2, 0.05)])
    claims = evaluate_claims(gap, _density("ig", 30), None, SETTINGS, n_replicates=2)
    out = render_verdicts(claims)
    rows = out[out.index("<tbody>") : out.index("</tbody>")].split("<tr>")[1:]
    assert len(rows) == len(claims) == 3
    for row, (_, claim) in zip(rows, claims.iterrows(), strict=True):
        assert f">{claim.verdict}</td>" in row and claim.statement in row
        figure = claim.figure.rsplit(".", 1)[0]  # linked by path without extension (png or pdf)
        assert "})(&#x27;" + figure + "&#x27;)" in row, row
    assert "})(&#x27;atlas/index&#x27;)" in out and "open the neuron atlas" in out
    assert "Pooled over 2 fine-tuning replicate(s)" in out and 'class="note"' not in out
    assert "1 evaluation set judged (test); the model beats its majority baseline on each." in out
    # #25's note, where a claim has one, wraps under its statement (no column of its own: the table
    # fits 1280 px), and the first lines count the sets at baseline
    claims["note"] = ["", "model at baseline: accuracy 0.31, majority 0.31", ""]
    out = render_verdicts(claims)
    rows = out[out.index("<tbody>") : out.index("</tbody>")].split("<tr>")[1:]
    assert '<span class="note">model at baseline: accuracy 0.31, majority 0.31</span></td>' in rows[1]
    assert "<th>note</th>" not in out and "note" not in rows[0] + rows[2]
    assert "the model beats its majority baseline on each, but not on the proteins of claim 3 of test" in out
    # a note the row above in its set shows is said once, then shortened
    claims["note"] = [
        "",
        "model at baseline: accuracy 0.31, majority 0.31",
        "model at baseline: accuracy 0.31, majority 0.31",
    ]
    rows = render_verdicts(claims).split("<tbody>")[1].split("<tr>")[1:]
    assert '<span class="note">model at baseline: accuracy 0.31, majority 0.31</span>' in rows[1]
    assert '<span class="note">model at baseline (as above)</span></td>' in rows[2]
    # method, set and fill (where the table has one: claim 3 has none) stacked in one cell
    assert "<th>method / set / fill</th>" in out
    assert (
        '<td class="short">ig<br><span class="foot">test</span><br><span class="foot">zero</span></td>'
        in rows[0]
    )
    assert '<td class="short">ig<br><span class="foot">test</span></td>' in rows[1]
    assert "<th>method / set</th>" in render_verdicts(claims.assign(fill=""))
    # an external set's row has a table, not a figure: named, not linked
    claims.loc[0, "figure"] = "external/new/curves.tsv"
    assert "none (a table)" in render_verdicts(claims)


def test_the_first_screen_counts_the_sets_judged_and_those_at_baseline():
    from kneurons.tables.claims import sets_summary

    base = "model at baseline: accuracy 0.5, majority 0.5 (n = 80; every new392 protein)"
    claims = pd.DataFrame(
        {
            "claim": ["1", "2", "5", "1", "2", "1"],
            "set": ["test", "test", "test", "new392", "new392", "price149"],
            "note": ["", "", "model at baseline: ...", base, base, ""],
        }
    )
    assert sets_summary(claims) == (
        "3 evaluation sets judged (test, new392, price149); the model is at its majority baseline on 1 of "
        "them: new392, whose claims are inconclusive, and on the proteins of claim 5 of test (the note "
        "under each claim says on which proteins)."
    )
    assert sets_summary(claims.assign(note="")).endswith("the model beats its majority baseline on each.")


# -- science: the planted-motif model -------------------------------------------------------------
FRACTIONS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
RANDOM_SEEDS = [0, 1, 2, 3, 4]


def _claims_for(trained_synthetic, tmp_path, scorers: dict[str, pd.DataFrame], model) -> pd.DataFrame:
    """Ablate (global scope, both modes) every score table and the random baseline, then the claims."""
    from kneurons.ablation.run import run_ablation
    from kneurons.stats.density import density
    from kneurons.stats.random import random_comparison
    from kneurons.tables import load_ablation, save_result

    labels = trained_synthetic.labels
    test = trained_synthetic.split[trained_synthetic.split["split"] == "test"]
    seqs = test["sequence"].tolist()
    y = test["label"].astype(str).map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    tables, preds = [], []
    for method, scores in scorers.items():
        res = run_ablation(
            model,
            seqs,
            y,
            labels,
            scores,
            method,
            "global",
            FRACTIONS,
            random_seeds=RANDOM_SEEDS if method == "random" else None,
            token_budget=4096,
        )
        t, p = tmp_path / f"{method}.tsv", tmp_path / f"{method}.pred.npz"
        save_result(t, p, res)
        tables.append(t)
        preds.append(p)
    gap, _ = random_comparison(load_ablation(tables, preds), n_boot=1000, seed=0)
    dens = pd.concat([density(s, m, 0.05) for m, s in scorers.items()], ignore_index=True)
    return evaluate_claims(gap, dens, None, {**SETTINGS, "top_fraction": 0.05})


@pytest.fixture(scope="module")
def planted_scores(trained_synthetic):
    from kneurons.model.checkpoint import load_classifier
    from kneurons.scoring.base import score_layer
    from kneurons.scoring.subset import select_scoring_set

    model, info = load_classifier(trained_synthetic.checkpoint)
    labels = list(info["labels"])
    classes = pd.DataFrame({"label_index": range(len(labels)), "label": labels})
    subset = select_scoring_set(trained_synthetic.split, classes, "train", 48, seed=0)
    cfg = {
        "token_budget": 4096,
        "bf16": True,
        "split": "train",
        "max_sequences": None,
        "activation": {"reduce": "abs_mean", "class_conditional": False},
        "ig": {"steps": 8, "method": "gausslegendre", "target": "prob", "class_conditional": False},
        "random": {"seeds": RANDOM_SEEDS},
    }
    tables = {
        m: pd.concat([score_layer(model, subset, m, layer, cfg) for layer in range(model.num_layers)])
        for m in ("activation", "ig", "random")
    }
    return model, tables


def test_planted_motifs_support_claims_1_and_2(trained_synthetic, planted_scores, tmp_path, one_torch_thread):
    model, tables = planted_scores
    claims = _claims_for(trained_synthetic, tmp_path, tables, model)
    verdicts = {(r.claim, r.method): r.verdict for r in claims.itertuples()}
    assert verdicts[("1", "activation")] == "supported", claims.to_string()
    assert verdicts[("2", "ig")] == "supported", claims.to_string()


def test_random_numbers_named_ig_never_support_claim_2(
    trained_synthetic, planted_scores, tmp_path, one_torch_thread
):
    """A scorer returning random numbers under the name ``ig``: claim 2 is not supported or inconclusive."""
    model, tables = planted_scores
    fake = tables["ig"].copy()
    fake["score"] = np.random.default_rng(12345).random(len(fake))
    claims = _claims_for(trained_synthetic, tmp_path, {"ig": fake, "random": tables["random"]}, model)
    two = claims[claims["claim"] == "2"]
    assert len(two) == 1 and two["verdict"].iloc[0] in ("not supported", "inconclusive"), claims.to_string()
