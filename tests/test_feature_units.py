"""SAE features as units beside neurons (issue #26): layouts, the ablation engine on feature masks
(against the naive loop, on every backend, the final-norm SAE included), random features drawn
among the active ones, the units config checks, and the feature jobs end to end on a tiny
fine-tuned run (SAE training and report, scoring, ablation)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_sae import BACKENDS, SEQS, attach_interprot, fair_model
from workflow_rules import REPO

from kneurons.ablation.engine import evaluate_masks
from kneurons.ablation.masks import build_masks, layout_of, unit_sizes
from kneurons.ablation.naive import evaluate_masks_naive
from kneurons.config import validate_config
from kneurons.errors import ConfigError, InputError
from kneurons.features.quality import active_features, stream_tokens
from kneurons.ranking import NeuronLayout
from kneurons.scoring.random import INELIGIBLE, RandomScores, random_scores
from kneurons.vocabulary import FEATURE_MODULE, MODULE_TYPES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = validate_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


def test_feature_layouts_beside_neuron_layouts(tmp_path):
    model = fair_model()
    neurons = layout_of(model)
    attach_interprot(model, 1, tmp_path)
    attach_interprot(model, model.num_layers, tmp_path, seed=1)
    assert layout_of(model) == neurons  # the neuron layout does not change with SAEs attached
    features = layout_of(model, (FEATURE_MODULE,))
    assert features.blocks == ((1, FEATURE_MODULE), (model.num_layers, FEATURE_MODULE))
    assert features.sizes == (96, 96)
    sizes = unit_sizes(model)
    assert sizes[(1, FEATURE_MODULE)] == 96 and sizes[(0, "fc1")] == model.neuron_count("fc1")
    # a layer's features come before its neurons (the stream enters the layer first)
    both = layout_of(model, (FEATURE_MODULE, *MODULE_TYPES))
    assert both.blocks.index((1, FEATURE_MODULE)) == both.blocks.index((1, "q_proj")) - 1
    # score tables of features read back into the same layout
    scores = random_scores({FEATURE_MODULE: 96}, 1, [0])
    assert NeuronLayout.from_scores(scores).blocks == ((1, FEATURE_MODULE),)


def balanced(model):
    """Centre the head's logits over SEQS, so a random model's predictions differ between proteins
    and masks can change them (a random head tends to predict one class everywhere)."""
    with torch.no_grad():
        model.head.bias -= model(model.tokenize(SEQS)).mean(0)
    return model


def _feature_masks(model, rng, n=6):
    layout = layout_of(model, (FEATURE_MODULE,))
    masks = []
    for _ in range(n):
        masks.append({b: rng.random(size) < 0.3 for b, size in zip(layout.blocks, layout.sizes, strict=True)})
    masks.append({layout.blocks[-1]: np.ones(layout.sizes[-1], dtype=bool)})  # only the last SAE
    return masks


@pytest.mark.parametrize("backend", ["fair-esm", "hf", "esmc"])
def test_engine_equals_naive_loop_on_feature_masks(backend, tmp_path):
    model = balanced(BACKENDS[backend]())
    attach_interprot(model, 1, tmp_path)
    attach_interprot(model, model.num_layers, tmp_path, seed=1)  # after the final layer norm
    masks = _feature_masks(model, np.random.default_rng(0))
    fast = evaluate_masks(model, SEQS, [*masks, {}], token_budget=60, masks_per_pass=3)
    naive = evaluate_masks_naive(model, SEQS, [*masks, {}], token_budget=60)
    assert (fast == naive).all()
    # the masks change predictions (so equality is not that of untouched models)
    assert (fast[:-1] != fast[-1]).any()


def test_a_mask_on_the_final_norm_sae_alone_is_applied(tmp_path):
    """Masks that start after the last layer (only the final stream's features) still get their hooks."""
    model = fair_model()
    sae = attach_interprot(model, model.num_layers, tmp_path)
    only_last = {(model.num_layers, FEATURE_MODULE): np.ones(sae.n_features, dtype=bool)}
    preds = evaluate_masks(model, SEQS, [only_last, {}])
    tokens = model.tokenize(SEQS)
    with torch.no_grad():
        model.module(model.num_layers, FEATURE_MODULE)
        from kneurons.model.hooks import module_output_hook

        with module_output_hook(model.module(model.num_layers, FEATURE_MODULE), torch.zeros_like):
            zeroed = model(tokens).argmax(-1).numpy()
        intact = model(tokens).argmax(-1).numpy()
    assert (preds[0] == zeroed).all() and (preds[1] == intact).all()


def test_random_features_are_drawn_among_the_active_ones(tmp_path):
    model = fair_model()
    sae = attach_interprot(model, 1, tmp_path)
    scoring = pd.DataFrame({"sequence": SEQS, "label": ["a", "b", "c", "b"], "label_index": [0, 1, 2, 1]})
    table = RandomScores(seeds=(0, 1)).score_layer(model, scoring, 1, module_types=(FEATURE_MODULE,))
    active = active_features(sae, stream_tokens(model, SEQS, [1])[1]).numpy()
    assert 0 < active.sum() < sae.n_features  # some features never fire on these proteins
    for seed in (0, 1):
        rows = table[table["seed"] == seed].sort_values("neuron")
        scores = rows["score"].to_numpy()
        assert (scores[~active] == INELIGIBLE).all()
        assert ((scores[active] >= 0) & (scores[active] < 1)).all()
        # the eligible draws are those of the plain seeded stream
        plain = random_scores({FEATURE_MODULE: sae.n_features}, 1, [seed])["score"].to_numpy()
        np.testing.assert_array_equal(scores[active], plain[active])
    # a top-k selection of k <= active features never picks a dead one
    keys, masks = build_masks(
        table, layout_of(model, (FEATURE_MODULE,)), "random", "global", [0.05], ["suppress"], seeds=[0]
    )
    filled = masks[0][(1, FEATURE_MODULE)]
    assert filled.sum() == keys["n_selected"].iloc[0] and active[filled].all()
    # neuron draws are unchanged by the features' stream index
    neuron = random_scores({"k_proj": 8}, 1, [0])["score"].to_numpy()
    np.testing.assert_array_equal(
        neuron, np.random.default_rng([0, 1, MODULE_TYPES.index("k_proj")]).random(8)
    )


def _with(**changes):
    cfg = copy.deepcopy(BASE)
    for key, value in changes.items():
        section, name = key.split("__")
        cfg[section][name] = value
    return cfg


def test_units_config_checks(tmp_path):
    assert BASE["units"]["features"] == [{"layer": 2, "sae": "train", "format": "kneurons", "k": None}]
    n = BASE["model"]["custom"]["num_layers"]
    bad = {
        "layer": ([{"layer": n + 1}], rf"units.features\[0\].layer: {n + 1} is not a stream"),
        "format": (
            [{"layer": 1, "format": "interplm"}],
            r"a trained SAE \(sae: train\) is written in format kneurons",
        ),
        "missing": ([{"layer": 1, "sae": str(tmp_path / "none.pt"), "format": "interplm"}], "does not exist"),
        "twice": ([{"layer": 1}, {"layer": 1}], r"one SAE per layer; layer\(s\) \[1\]"),
    }
    for name, (features, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            validate_config(_with(units__features=features))
        assert name
    with pytest.raises(ConfigError, match="add `random` to score.methods"):
        validate_config(_with(score__methods=["activation", "ig"]))
    with pytest.raises(ConfigError, match="keep `global` in ablate.scopes"):
        validate_config(_with(ablate__scopes=["module_type"]))
    assert validate_config(_with(units__features=[{"layer": n}]))["units"]["features"][0]["layer"] == n
    assert validate_config(_with(units__features=[], score__methods=["activation", "ig"]))  # neurons only


@pytest.fixture(scope="module")
def feature_jobs(trained_synthetic, tmp_path_factory):
    """The feature jobs of one tiny run: train an SAE on layer 1, report, score, ablate."""
    from kneurons.jobs.ablate import run_ablation_job
    from kneurons.jobs.features import run_sae_report, run_train_sae, sae_specs
    from kneurons.jobs.score import run_score_job
    from kneurons.settings import job_settings
    from kneurons.tables import write_split

    out = tmp_path_factory.mktemp("feature_jobs")
    split_path = out / "split.tsv"
    write_split(trained_synthetic.split, split_path)
    cfg = copy.deepcopy(BASE)
    cfg["units"]["features"] = [{"layer": 1, "sae": "train", "format": "kneurons", "k": None}]
    cfg["sae"]["epochs"] = 5
    cfg["ablate"]["fractions"] = [0.05, 0.5, 1.0]
    cfg["score"]["ig"]["steps"] = 4
    ckpt = trained_synthetic.checkpoint
    sae_path = out / "layer1.pt"
    run_train_sae(ckpt, split_path, 1, job_settings("train_sae", cfg), sae_path)
    specs = sae_specs(cfg["units"]["features"], [sae_path])
    report = run_sae_report(ckpt, split_path, specs, job_settings("sae_report", cfg), out / "saes.json")
    scoring = out / "scoring_set.tsv"
    subset = trained_synthetic.split[trained_synthetic.split["split"] == "train"].iloc[:32].copy()
    subset["label_index"] = subset["label"].map({lab: i for i, lab in enumerate(trained_synthetic.labels)})
    subset[["accession", "sequence", "label", "label_index"]].to_csv(scoring, sep="\t", index=False)
    tables, results = {}, {}
    for method in ("activation", "random"):
        settings = job_settings("score_features", cfg, method=method)
        tables[method] = run_score_job(
            ckpt, scoring, method, None, settings, out / f"{method}.parquet", saes=specs
        )
        ab = job_settings("ablate_features", cfg)
        results[method] = run_ablation_job(
            ckpt,
            split_path,
            out / f"{method}.parquet",
            method,
            "global",
            ab,
            out / f"{method}.tsv",
            out / f"{method}.pred.npz",
            scoring_set_path=scoring,  # the resample fill's donors
            saes=specs,
        )
    return {
        "out": out,
        "report": report,
        "tables": tables,
        "results": results,
        "specs": specs,
        "cfg": cfg,
        "scoring": scoring,
    }


def test_feature_jobs_end_to_end(feature_jobs):
    report = json.loads((feature_jobs["out"] / "saes.json").read_text())
    assert report == json.loads(json.dumps(feature_jobs["report"]))
    (row,) = report["saes"]
    assert row["layer"] == 1 and row["format"] == "kneurons" and row["n_features"] == 256
    assert set(row["fvu"]) == {"0", "1", "2"} and row["fvu_own"] == row["fvu"]["1"]
    assert row["fvu_own"] < min(row["fvu"]["0"], row["fvu"]["2"])  # its own layer fits best
    assert 0 <= row["dead_share"] < 1 and row["n_tokens"] > 0 and row["training"]["epochs"] == 5
    for method, table in feature_jobs["tables"].items():
        assert set(table["module"]) == {FEATURE_MODULE} and set(table["layer"]) == {1}, method
    from kneurons.tables import read_score_table

    _, meta = read_score_table(feature_jobs["out"] / "activation.parquet")
    assert meta["saes"][0]["layer"] == 1 and set(meta["saes"][0]["sha256"]) == {"layer1.pt"}
    act = feature_jobs["results"]["activation"].table
    assert set(act["scope"]) == {"global"} and (act["n_scope"] == 256).all()
    assert list(act["fill"].unique()) == ["zero", "resample"]  # the embedded default's fills, in order
    full = feature_jobs["results"]["activation"]
    intact = (full.full_pred == full.y_true).mean()
    keep_all = act[(act["mode"] == "preserve") & (act["f"] == 1.0)]["accuracy"]
    assert (keep_all == intact).all()  # preserving every feature is the intact model (the error term kept)
    # resample puts other proteins' feature values in: not the zero fill's predictions
    zero, resample = (full.preds[(act["fill"] == f).to_numpy()] for f in ("zero", "resample"))
    assert (zero != resample).any()
    rnd = feature_jobs["results"]["random"].table
    assert sorted(rnd["seed"].dropna().unique()) == list(BASE["ablate"]["random_seeds"])


def test_feature_ablation_refuses_scores_of_other_saes(feature_jobs, trained_synthetic):
    from kneurons.jobs.ablate import run_ablation_job
    from kneurons.jobs.features import run_train_sae, sae_specs
    from kneurons.settings import job_settings

    out, cfg = feature_jobs["out"], feature_jobs["cfg"]
    other = out / "other" / "layer1.pt"
    other.parent.mkdir()
    run_train_sae(
        trained_synthetic.checkpoint,
        out / "split.tsv",
        1,
        {**job_settings("train_sae", cfg), "seed": 7},
        other,
    )
    ab = job_settings("ablate_features", cfg)
    with pytest.raises(InputError, match="scored with other SAEs"):
        run_ablation_job(
            trained_synthetic.checkpoint,
            out / "split.tsv",
            out / "activation.parquet",
            "activation",
            "global",
            ab,
            out / "x.tsv",
            out / "x.pred.npz",
            saes=sae_specs(cfg["units"]["features"], [other]),
        )
    with pytest.raises(InputError, match="SAE features take the fills zero, mean, resample"):
        run_ablation_job(
            trained_synthetic.checkpoint,
            out / "split.tsv",
            out / "activation.parquet",
            "activation",
            "global",
            {**ab, "ablate": {**ab["ablate"], "fills": ["pretrained"]}},
            out / "x.tsv",
            out / "x.pred.npz",
            saes=feature_jobs["specs"],
        )
    # a run's pretrained fill is skipped for features (said in the log), the others apply
    mean = run_ablation_job(
        trained_synthetic.checkpoint,
        out / "split.tsv",
        out / "activation.parquet",
        "activation",
        "global",
        {**ab, "ablate": {**ab["ablate"], "fills": ["mean", "pretrained"]}},
        out / "m.tsv",
        out / "m.pred.npz",
        scoring_set_path=feature_jobs["scoring"],
        saes=feature_jobs["specs"],
    )
    assert set(mean.table["fill"]) == {"mean"}


def test_sae_specs_pair_trained_files_with_their_entries():
    from kneurons.jobs.features import sae_specs

    features = [
        {"layer": 3, "sae": "train", "format": "kneurons", "k": None},
        {"layer": 1, "sae": "/data/ae_normalized.pt", "format": "interplm", "k": None},
        {"layer": 0, "sae": "train", "format": "kneurons", "k": None},
    ]
    specs = sae_specs(features, ["l3.pt", "l0.pt"])
    assert [(s["layer"], s["path"], s["format"]) for s in specs] == [
        (3, "l3.pt", "kneurons"),
        (1, "/data/ae_normalized.pt", "interplm"),
        (0, "l0.pt", "kneurons"),
    ]
    with pytest.raises(InputError, match=r"1 trained SAE file\(s\) for the 2 `sae: train` entries"):
        sae_specs(features, ["l3.pt"])
