"""Converged IG (issue #34): the completeness gap of every layer's module (or SAE) checked at run time,
IG's steps raised until it is within ``score.ig.tolerance`` (or the job fails naming the settings),
and every attribution table recording it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_sae import GOLD, SEQS, attach_interprot, fair_model

from kneurons.errors import ConfigError
from kneurons.scoring.completeness import PRECISION, completeness_gap
from kneurons.scoring.ig import GradientXActivation, IntegratedGradients, attribution_per_sequence
from kneurons.scoring.integration import integration_points
from kneurons.scoring.reference import target_at_scale
from kneurons.vocabulary import FEATURE_MODULE, MODULE_TYPES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCORING = pd.DataFrame({"sequence": SEQS, "label": list("acbc"), "label_index": GOLD})


def test_completeness_gap_is_the_error_over_the_effect():
    attributions = np.array([[0.1, 0.2], [0.0, -0.3], [0.5, 0.5]])
    effects = np.array([0.4, -0.2, 1.0])  # errors 0.1, 0.1, 0.0
    g = completeness_gap(attributions, effects, floor=0.0)
    assert g["gap"] == pytest.approx(0.2 / 1.6) and g["error"] == pytest.approx(0.2)
    assert g["median_gap"] == pytest.approx(0.25) and not g["within_rounding"]
    assert completeness_gap(attributions, effects, floor=0.25)["within_rounding"]
    assert completeness_gap(np.zeros((2, 3)), np.zeros(2), 0.0)["gap"] == 0.0


def test_ig_over_sae_features_raises_its_steps_until_complete(tmp_path):
    from kneurons.scoring.completeness import converged_attributions

    model = fair_model()
    attach_interprot(model, 1, tmp_path)
    method = IntegratedGradients(steps=2, rule="gausslegendre", bf16=False, tolerance=1e-3)
    table = method.score_layer(model, SCORING, 1, module_types=(FEATURE_MODULE,))
    (record,) = table.attrs["completeness"]
    steps = [a[0] for a in record["tried"]]
    proteins = [a[1] for a in record["tried"]]
    assert steps == [2 * 2**i for i in range(len(steps))] and len(steps) > 1
    assert proteins[0] == len(SEQS) and all(0 < n <= len(SEQS) for n in proteins[1:])
    assert record["tried"][0][2] == sum(len(s) + 2 for s in SEQS)  # the tokens of the first try
    assert record["gap"] <= 1e-3 < record["tried"][0][3] and record["passed"]
    assert record["steps"] == steps[-1] and sum(record["proteins_by_steps"].values()) == len(SEQS)
    # each protein's attributions are its IG at the steps it needed, and the table their mean
    attr, (again,) = converged_attributions(method, model, SEQS, GOLD, 1, [FEATURE_MODULE])
    assert again["tried"] == record["tried"]
    direct = {}
    for m in steps:
        alphas, weights = integration_points(m, "gausslegendre")
        direct[m] = attribution_per_sequence(
            model, SEQS, GOLD, 1, [FEATURE_MODULE], alphas, weights, bf16=False
        )
    used = []
    for i in range(len(SEQS)):
        match = [
            m
            for m in steps
            if np.allclose(attr[FEATURE_MODULE][i], direct[m][FEATURE_MODULE][i], rtol=1e-4, atol=1e-7)
        ]
        assert match, i
        used.append(max(match))
    assert sorted(used) == sorted(int(k) for k, n in record["proteins_by_steps"].items() for _ in range(n))
    scores = table[table["label"].isna()].sort_values("neuron")["score"].to_numpy()
    np.testing.assert_allclose(scores, attr[FEATURE_MODULE].mean(0), rtol=1e-6, atol=1e-9)
    # the gap recorded is the final attributions' against the effect, recomputed unbatched
    tokens, gold = model.tokenize(SEQS), torch.tensor(GOLD)
    effect = (
        target_at_scale(model, tokens, gold, 1, FEATURE_MODULE, 1.0)
        - target_at_scale(model, tokens, gold, 1, FEATURE_MODULE, 0.0)
    ).numpy()
    assert record["effect"] == pytest.approx(np.abs(effect).sum(), rel=1e-5)
    error = np.abs(attr[FEATURE_MODULE].sum(1) - effect).sum()
    assert record["gap"] == pytest.approx(error / np.abs(effect).sum(), rel=1e-3, abs=1e-7)


def test_ig_fails_naming_the_settings_when_the_cap_is_not_enough(tmp_path):
    model = fair_model()
    attach_interprot(model, 1, tmp_path)
    method = IntegratedGradients(steps=2, rule="gausslegendre", bf16=False, tolerance=1e-9, max_steps=4)
    with pytest.raises(
        ConfigError,
        match=r"ig layer 1: the completeness gap stays above score.ig.tolerance = 1e-09 at "
        r"score.ig.max_steps = 4 \(sae: ",
    ):
        method.score_layer(model, SCORING, 1, module_types=(FEATURE_MODULE,))


def test_neurons_and_gradxact_record_their_gap_per_module():
    model = fair_model()
    ig = IntegratedGradients(steps=8, rule="gausslegendre", bf16=False, tolerance=0.01)
    records = ig.score_layer(model, SCORING, 0).attrs["completeness"]
    assert [r["module"] for r in records] == list(MODULE_TYPES)
    assert all(r["passed"] and r["steps"] == 8 for r in records)  # this random model: complete at 8
    # without a tolerance the gap is recorded and nothing is raised (passed: None)
    loose = IntegratedGradients(steps=2, rule="gausslegendre", bf16=False).score_layer(model, SCORING, 0)
    assert all(r["passed"] is None and r["steps"] == 2 for r in loose.attrs["completeness"])
    gx = GradientXActivation(bf16=False).score_layer(model, SCORING, 0).attrs["completeness"]
    assert all(r["steps"] == 1 and len(r["tried"]) == 1 for r in gx)  # one point: recorded, never raised
    assert max(r["gap"] for r in gx) > max(r["gap"] for r in records)
    assert PRECISION["float32"] < PRECISION["bfloat16"]


def test_score_jobs_record_the_completeness_in_their_tables(tmp_path):
    from test_reliability_model import CFG, LABELS, SPEC, sequences

    from kneurons.jobs.score import run_score_job
    from kneurons.model.checkpoint import save_classifier
    from kneurons.settings import job_settings
    from kneurons.tables import gather_score_tables, read_score_table

    torch.manual_seed(0)
    from kneurons.model.classifier import EsmClassifier, build_backbone

    save_classifier(
        tmp_path / "a.pt", EsmClassifier(build_backbone(SPEC), 3).eval(), SPEC, LABELS, {"seed": 0}
    )
    seqs = sequences(8)
    pd.DataFrame(
        {
            "accession": [f"P{i}" for i in range(8)],
            "sequence": seqs,
            "label": [LABELS[i % 3] for i in range(8)],
            "label_index": [i % 3 for i in range(8)],
        }
    ).to_csv(tmp_path / "set.tsv", sep="\t", index=False)
    parts = []
    for method in ("ig", "gradxact", "activation"):
        settings = job_settings("score_layers", CFG, method=method)
        for layer in (0, 1):
            path = tmp_path / method / f"layers{layer}-{layer}.parquet"
            run_score_job(tmp_path / "a.pt", tmp_path / "set.tsv", method, [layer], settings, path)
            parts.append(path)
    _, meta = read_score_table(tmp_path / "ig" / "layers1-1.parquet")
    assert [(r["layer"], r["module"]) for r in meta["completeness"]] == [(1, t) for t in MODULE_TYPES]
    assert meta["settings"]["tolerance"] == 0.01 and meta["settings"]["max_steps"] == 256
    _, gathered = gather_score_tables([p for p in parts if p.parent.name == "ig"])
    assert [r["layer"] for r in gathered["completeness"]] == [0] * 6 + [1] * 6
    _, act = read_score_table(tmp_path / "activation" / "layers0-0.parquet")
    assert "completeness" not in act  # no attribution, nothing to complete
