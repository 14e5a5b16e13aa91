"""The planted-knowledge benchmark: planting leaves everything outside S bit-identical, rolling back a
neuron outside S under the pretrained fill with the base as the reference changes nothing, the
recovery metrics agree with hand computations, and the weight-change method (delta) scores what
fine-tuning changed."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.ablation.fill import Fill, fill_hooks, make_fill
from kneurons.ablation.masks import layout_of
from kneurons.config import validate_config
from kneurons.data.synthetic import PARITY_LABELS, generate_parity_task
from kneurons.errors import ConfigError, ModelError
from kneurons.jobs.planted import run_ground_truth, run_plant, run_planted_base
from kneurons.jobs.planted_stats import run_planted_data
from kneurons.jobs.score import run_score_job
from kneurons.model.checkpoint import load_classifier
from kneurons.model.reference import checkpoint_reference, fine_tuned_from, reference_loader, reference_rows
from kneurons.planted.design import draw_units, planted_count, planted_methods, planted_variants
from kneurons.planted.metrics import (
    average_precision,
    interpolated_precision,
    median_rank,
    pr_points,
    precision_at,
    random_expected_auprc,
    ranking_metrics,
)
from kneurons.planted.plant import changed_tensors, check_planted, plant_rows
from kneurons.planted.recovery import Planting, recovery, verdicts
from kneurons.ranking import NeuronLayout
from kneurons.scoring.base import score_layer
from kneurons.scoring.delta import delta_per_sequence
from kneurons.settings import job_settings
from kneurons.tables import read_scoring_set, read_split
from kneurons.tables.planted import read_ground_truth, read_planted_units, read_selections
from kneurons.vocabulary import MODULE_TYPES

#: A tiny benchmark: 2-layer 16-dim model, 24 short proteins per class, 3 epochs of planting.
TINY = {
    "seed": 5,
    "model": {"name": "custom", "custom": {"num_layers": 2, "embed_dim": 16, "attention_heads": 2}},
    "data": {"synthetic": {"length_min": 20, "length_max": 30, "motif_length": 3, "motifs_per_sequence": 1}},
    "score": {"max_sequences": 12, "random": {"seeds": [0, 1]}},
    "ablate": {"random_seeds": [0, 1]},
    "units": {"features": []},
    "evaluate": {"external": {}},
    "stats": {"bootstrap": 30},
    "planted": {
        "replicates": 1,
        "fraction": 0.05,
        "epochs": 3,
        "task": {"n_per_class": 24, "length_min": 20, "length_max": 30, "motif_length": 3},
    },
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory, one_torch_thread):
    """The tiny benchmark's data, base model, one spread planting and its ground truth."""
    cfg = validate_config(copy.deepcopy(TINY))
    out = tmp_path_factory.mktemp("planted")
    data = {name: out / f"data/{name}.tsv" for name in ("split", "classes", "motifs", "scoring_set")}
    run_planted_data(job_settings("planted_data", cfg), data)
    base = out / "base/best.pt"
    run_planted_base(data["classes"], job_settings("planted_base", cfg), base)
    files = {
        "model": out / "spread/0/model/best.pt",
        "metrics": out / "spread/0/model/metrics.json",
        "curve": out / "spread/0/model/training_curve.tsv",
        "metadata": out / "spread/0/model/run_metadata.json",
        "units": out / "spread/0/units.tsv",
    }
    run_plant(base, data["split"], data["classes"], "spread", 0, job_settings("planted_plant", cfg), files)
    head_only = {
        k: out / f"head_only/0/model/{n}"
        for k, n in (
            ("model", "best.pt"),
            ("metrics", "metrics.json"),
            ("curve", "training_curve.tsv"),
            ("metadata", "run_metadata.json"),
        )
    }
    run_plant(
        base, data["split"], data["classes"], None, 0, job_settings("planted_head_only", cfg), head_only
    )
    scores = {}
    for method in ("delta", "random"):  # the oracle-like upper bound and the baseline
        scores[method] = out / f"spread/0/scores/{method}.parquet"
        settings = job_settings("planted_score", cfg, method=method)
        run_score_job(
            files["model"],
            data["scoring_set"],
            method,
            None,
            settings,
            scores[method],
            reference_checkpoint=base,
        )
    truth = {
        "ground_truth": out / "spread/0/ground_truth.json",
        "selections": out / "spread/0/selections.tsv",
    }
    run_ground_truth(
        files["model"],
        base,
        data["split"],
        files["units"],
        scores,
        "spread",
        0,
        job_settings("planted_ground_truth", cfg),
        truth,
    )
    return {
        "cfg": cfg,
        "out": out,
        "data": data,
        "base": base,
        **files,
        "head_only": head_only,
        "scores": scores,
        **truth,
    }


def units_of(path: Path) -> list[tuple[int, str, int]]:
    return [(int(r.layer), str(r.module), int(r.neuron)) for r in read_planted_units(path).itertuples()]


# -- planting ----------------------------------------------------------------------------------------
def test_planting_changes_only_the_rows_of_S(planted):
    """Every backbone tensor outside S's rows (other rows, embeddings, LayerNorms) is bit-identical
    to the base's; S's rows and the head moved; the checkpoint records the base as its reference."""
    model, info = load_classifier(planted["model"])
    base, _ = load_classifier(planted["base"])
    units = units_of(planted["units"])
    assert len(units) == planted_count(layout_of(base), 0.05)
    changed = changed_tensors(model, base)
    assert changed, "planting changed nothing"
    # fair-esm's names of the parameters holding each unit's row (independent of kneurons.planted)
    allowed: dict[str, set[int]] = {}
    for layer, m, i in units:
        prefix = f"layers.{layer}.self_attn.{m}" if m.endswith("proj") else f"layers.{layer}.{m}"
        for kind in ("weight", "bias"):
            allowed.setdefault(f"{prefix}.{kind}", set()).add(i)
    for name, rows in changed.items():
        assert set(rows.tolist()) <= allowed.get(name, set()), f"{name} changed outside S: {rows.tolist()}"
    assert not any("layer_norm" in n or "embed" in n for n in changed)
    assert not torch.equal(model.head.weight, base.head.weight)
    check_planted(model, base, units)
    assert fine_tuned_from(info) == "checkpoint"
    from kneurons.io import sha256_file

    assert info["meta"]["weights_sha256"] == sha256_file(planted["base"])


def test_without_restoring_the_frozen_rows_weight_decay_moves_them(planted):
    """Why ``Planting.restore`` exists: AdamW's decoupled weight decay shrinks every row of a matrix it
    steps, gradient or not; with the restore the rows outside S stay the base's."""
    base, _ = load_classifier(planted["base"])
    units = units_of(planted["units"])
    for restore in (False, True):
        model = copy.deepcopy(base).train()
        planting = plant_rows(model, units)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.01, weight_decay=0.1)
        tokens = model.tokenize(["ACDEFGHIKL", "MNPQRSTVWY"])
        for _ in range(2):
            torch.nn.functional.cross_entropy(model(tokens), torch.tensor([0, 1])).backward()
            opt.step()
            opt.zero_grad()
            if restore:
                planting.restore(model)
        if restore:
            check_planted(model, base, units)
        else:
            with pytest.raises(ModelError, match="outside the planted units"):
                check_planted(model, base, units)


def test_the_head_alone_control_leaves_the_backbone_untouched(planted):
    model, _ = load_classifier(planted["head_only"]["model"])
    base, _ = load_classifier(planted["base"])
    assert changed_tensors(model, base) == {}
    assert not torch.equal(model.head.weight, base.head.weight)


# -- ground truth under the pretrained fill ---------------------------------------------------------
def _logits(model, sequences, filled, fill):
    tokens = model.tokenize(sequences)
    with torch.no_grad(), fill_hooks(model, filled, fill):
        return model(tokens)


def test_rolling_back_a_neuron_outside_S_changes_nothing(planted):
    """Under the pretrained fill with the base as the reference: rolling back every neuron outside S
    gives bit-identical logits; rolling back S gives the base's backbone with the planted head."""
    model, info = load_classifier(planted["model"])
    base, _ = load_classifier(planted["base"])
    fill = make_fill(
        "pretrained", model, info, reference=checkpoint_reference(planted["base"], info, "planted")
    )
    layout = layout_of(model)
    member = np.zeros(layout.total, dtype=bool)
    member[layout.flat_of(read_planted_units(planted["units"]))] = True
    seqs = read_split(planted["data"]["split"])["sequence"].tolist()[:16]

    def filled(mask):
        return {b: torch.as_tensor(mask[layout.slice(b)]).view(1, -1) for b in layout.blocks}

    intact = _logits(model, seqs, {}, Fill())
    others = _logits(model, seqs, filled(~member), fill)
    assert torch.equal(others, intact)
    one_outside = np.zeros(layout.total, dtype=bool)
    one_outside[np.flatnonzero(~member)[::7]] = True  # single neurons outside S, here and there
    assert torch.equal(_logits(model, seqs, filled(one_outside), fill), intact)
    rolled = _logits(model, seqs, filled(member), fill)
    hybrid = copy.deepcopy(base)
    hybrid.head.load_state_dict(model.head.state_dict())
    with torch.no_grad():
        expected = hybrid(hybrid.tokenize(seqs))
    assert torch.allclose(rolled, expected, atol=1e-5)
    assert not torch.allclose(rolled, intact, atol=1e-3)  # S carries something


def test_ground_truth_job_records_identical_predictions_and_top_S_selections(planted):
    out = planted
    truth = read_ground_truth(out["ground_truth"])
    assert truth["rollback_others_identical"] and truth["rollback_others_changed"] == 0
    assert truth["accuracy"]["rollback_others"] == truth["accuracy"]["planted"]
    model, _ = load_classifier(planted["model"])
    base, _ = load_classifier(planted["base"])
    by_hand = [
        float(model.module(lay, m).weight[i].detach().norm() / base.module(lay, m).weight[i].detach().norm())
        for lay, m, i in units_of(planted["units"])
    ]
    assert truth["row_norm_ratio"] == pytest.approx(float(np.median(by_hand)), rel=1e-6)
    sel = read_selections(out["selections"])
    delta = sel[sel["method"] == "delta"].set_index("mode")
    # delta's top |S| is S itself: preserving it is the planted model, suppressing it rolls S back
    assert delta.loc["preserve", "precision"] == 1.0
    assert delta.loc["preserve", "accuracy"] == truth["accuracy"]["planted"]
    assert delta.loc["suppress", "accuracy"] == truth["accuracy"]["rollback_planted"]
    assert sorted(sel.loc[sel["method"] == "random", "seed"].unique()) == [0, 1]


def test_reference_checkpoint_must_be_the_base(planted, tmp_path):
    from kneurons.model.checkpoint import save_classifier
    from kneurons.model.classifier import BackboneSpec

    model, info = load_classifier(planted["model"])
    checkpoint_reference(planted["base"], info, "planted")()  # the very base: accepted
    base, binfo = load_classifier(planted["base"])
    with torch.no_grad():
        base.head.bias.add_(1.0)
    other = tmp_path / "other.pt"
    save_classifier(other, base, BackboneSpec(**binfo["backbone"]), binfo["labels"], binfo["meta"])
    with pytest.raises(ModelError, match="is not the checkpoint"):
        checkpoint_reference(other, info, "planted")()
    with pytest.raises(ConfigError, match="classifier checkpoint"):
        reference_loader(info, {}, "planted")  # a planted model's reference must be given
    with pytest.raises(ConfigError, match="random initialisation"):
        reference_loader(binfo, {}, "base")  # the base itself is random-init


# -- the weight-change method ----------------------------------------------------------------------
def test_delta_is_the_mean_absolute_output_change_on_the_received_input(planted):
    """delta against a hand computation from the recorded module inputs; exactly 0 outside S."""
    model, _ = load_classifier(planted["model"])
    base, _ = load_classifier(planted["base"])
    layout = layout_of(model)
    rows = reference_rows(base, layout.blocks, layout.sizes)
    seqs = read_scoring_set(planted["data"]["scoring_set"])["sequence"].tolist()
    units = units_of(planted["units"])
    moved = 0
    for layer in range(model.num_layers):
        got = delta_per_sequence(model, seqs, layer, rows, token_budget=64)
        inputs = {}
        handles = [
            model.module(layer, t).register_forward_hook(
                lambda _m, i, _o, t=t, inputs=inputs: inputs.__setitem__(t, i[0].detach().clone())
            )
            for t in MODULE_TYPES
        ]
        try:
            for s, seq in enumerate(seqs):
                with torch.no_grad():
                    model(model.tokenize([seq]))
                for t in MODULE_TYPES:
                    mod = model.module(layer, t)
                    w_ref, b_ref = rows[(layer, t)]
                    x = inputs[t][:, 0]  # (T, d_in), one sequence, no padding
                    change = (x @ (mod.weight - w_ref).T + (mod.bias - b_ref)).detach()
                    np.testing.assert_allclose(got[t][s], change.abs().mean(0).numpy(), rtol=1e-5, atol=1e-7)
        finally:
            for h in handles:
                h.remove()
        for t in MODULE_TYPES:
            in_s = [i for lay, m, i in units if lay == layer and m == t]
            outside = np.setdiff1d(np.arange(got[t].shape[1]), in_s)
            assert (got[t][:, outside] == 0).all(), f"layer {layer} {t}: delta outside S"
            moved += int((got[t][:, in_s] > 0).any(0).sum())
    assert moved > len(units) // 2  # most of S's rows moved


def test_delta_needs_a_reference():
    """Refused in the config for a random-init run, and by the job for a random-init checkpoint."""
    with pytest.raises(ConfigError, match="delta scores how fine-tuning changed"):
        validate_config({"score": {"methods": ["activation", "delta", "random"]}})
    with pytest.raises(ConfigError, match="random initialisation"):
        reference_loader({"meta": {"pretrained": False}}, {}, "best.pt", what="score method 'delta'")
    cfg = validate_config(copy.deepcopy(TINY))
    assert planted_methods(cfg) == ["activation", "ig", "gradxact", "random", "delta"]
    assert planted_variants(cfg) == ["spread", "concentrated"]


def test_delta_in_score_layer_without_reference_is_an_error(planted):
    model, _ = load_classifier(planted["model"])
    subset = read_scoring_set(planted["data"]["scoring_set"])
    cfg = planted["cfg"]
    with pytest.raises(ModelError, match="needs the reference weights"):
        score_layer(model, subset, "delta", 0, cfg["score"])


# -- S, the task, the metrics ----------------------------------------------------------------------
def test_draw_units_spread_and_concentrated():
    layout = NeuronLayout.from_sizes(3, {t: 32 if t == "fc1" else 8 for t in MODULE_TYPES})
    assert layout.total == 3 * (5 * 8 + 32)
    spread = draw_units(layout, 0.1, [1, 0, 0])
    assert len(spread) == planted_count(layout, 0.1) == 22
    assert not spread.duplicated().any() and spread["module"].nunique() > 1
    assert spread.equals(draw_units(layout, 0.1, [1, 0, 0]))
    assert not spread.equals(draw_units(layout, 0.1, [1, 0, 1]))
    conc = draw_units(layout, 0.1, [1, 1, 0], module="k_proj")
    assert len(conc) == 22 and set(conc["module"]) == {"k_proj"}
    with pytest.raises(ConfigError, match="fewer than"):
        draw_units(layout, 0.2, 0, module="k_proj")  # 43 > 24 k_proj neurons


def test_parity_task_labels_and_motifs():
    proteins, motifs = generate_parity_task(
        n_per_class=10,
        motifs=2,
        copies=2,
        length_min=32,
        length_max=40,
        motif_length=4,
        motif_noise=0.0,
        seed=1,
    )
    assert (proteins["label"].value_counts() == 10).all() and set(proteins["label"]) == set(PARITY_LABELS)
    for row in proteins.itertuples():
        present = [int(i) for i in row.present.split(";")] if row.present else []
        assert row.label == PARITY_LABELS[len(present) % 2]
        assert len(row.motif_sites.split(";")) == (4 * 2 * len(present) if present else 1)
        for i, motif in enumerate(motifs["motif"]):  # no noise: each present motif twice, no other
            assert row.sequence.count(motif) == (2 if i in present else 0), (row.accession, motif)
    # every subset of each parity appears equally often
    counts = proteins["present"].value_counts()
    assert counts[""] == counts["0;1"] == 5 and counts["0"] == counts["1"] == 5


def test_metrics_against_a_hand_computation():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    member = np.array([True, False, True, False, False])
    # thresholds 0.9 (1 of 1 is S; recall 1/2) and 0.8 (2 of 3; recall 1): AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision(scores, member) == pytest.approx(0.5 + 1 / 3)
    pts = pr_points(scores, member)
    assert pts["recall"].tolist() == [0.5, 1.0, 1.0, 1.0]
    assert pts["precision"].tolist() == pytest.approx([1.0, 2 / 3, 0.5, 0.4])
    assert precision_at(scores, member) == 0.5  # top 2 by score then index: neurons 0 and 1
    assert median_rank(scores, member) == 2.0  # ranks 1 and 3
    assert ranking_metrics(scores, member) == pytest.approx((0.5 + 1 / 3, 0.5, 2 / 5))
    assert interpolated_precision(pts, [0.25, 0.5, 0.75, 1.0]).tolist() == pytest.approx([1, 1, 2 / 3, 2 / 3])
    # random's expectation, exactly, against every ranking of 5 neurons with 2 planted
    aps = [average_precision(-np.array(p, float), member) for p in itertools.permutations(range(5))]
    assert random_expected_auprc(5, 2) == pytest.approx(np.mean(aps))
    assert random_expected_auprc(3, 1) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_recovery_and_verdicts_on_a_tiny_case():
    """A perfect ranking (delta), a worst one and random, one planting: the point estimates by hand."""
    layout = NeuronLayout.from_sizes(1, {t: 4 for t in MODULE_TYPES})  # 24 neurons
    member = np.zeros(24, dtype=bool)
    member[[1, 9, 17]] = True
    perfect, worst = member.astype(float), (~member).astype(float) + np.arange(24) / 100
    rng = np.random.default_rng(0)
    p = Planting(
        layout,
        member,
        {"delta": [perfect], "activation": [worst], "random": [rng.random(24) for _ in range(3)]},
        {},
    )
    sel = pd.DataFrame(
        {
            "method": ["delta", "delta"],
            "seed": [pd.NA] * 2,
            "mode": ["preserve", "suppress"],
            "k": [3, 3],
            "accuracy": [0.9, 0.5],
            "precision": [1.0, 1.0],
        }
    )
    settings = {
        "stats": {
            "bootstrap": 200,
            "confidence": 0.95,
            "keep_accuracy": 0.95,
            "top_fraction": 0.1,
            "claims": {"log2_enrichment_margin": 0.1},
        },
        "ablate": {"normalise": "none"},
        "planted": {"auprc_margin": 0.01},
        "seed": 0,
    }
    table, curves = recovery("spread", [p], [sel], [0.9], settings)
    t = table.set_index("method")
    assert t.loc["delta", "auprc"] == 1.0 and t.loc["delta", "precision_at_s"] == 1.0
    assert t.loc["delta", "median_rank"] == 2.0  # ranks 1, 2, 3
    # worst: S ranks last (22, 23, 24): precisions 1/22, 2/23, 3/24
    assert t.loc["activation", "auprc"] == pytest.approx((1 / 22 + 2 / 23 + 3 / 24) / 3)
    assert t.loc["delta", "prevalence"] == 3 / 24
    assert t.loc["delta", "random_expected_auprc"] == pytest.approx(random_expected_auprc(24, 3))
    assert bool(t.loc["delta", "keeps_accuracy"]) and t.loc["delta", "preserve_accuracy"] == 0.9
    assert t.loc["delta", "auprc_lo"] == t.loc["delta", "auprc_hi"] == 1.0
    v = verdicts(table, settings).set_index("method")
    assert v.loc["delta", "verdict"] == "supported" and "oracle" in v.loc["delta", "note"]
    assert v.loc["activation", "verdict"] == "not supported"
    assert set(curves["method"]) == {"delta", "activation", "random"}
    assert (curves.loc[curves["method"] == "delta", "precision"] == 1.0).all()


def test_the_statistics_job_pools_writes_verdicts_and_draws_the_figure(planted, tmp_path):
    """The torch-free end of the benchmark on the tiny planting: recovery (delta finds S exactly),
    the ground-truth table, the verdicts (TSV and the report's HTML) and the figure."""
    from kneurons.jobs.figures import make_figure
    from kneurons.jobs.planted_stats import run_planted_stats
    from kneurons.tables import read_claims
    from kneurons.tables.planted import read_planted_stats

    cfg = planted["cfg"]
    settings = {**job_settings("planted_stats", cfg), "variants": ["spread"], "methods": ["delta", "random"]}
    inputs = {
        "units": [planted["units"]],
        "ground_truth": [planted["ground_truth"]],
        "selections": [planted["selections"]],
        "scores": [planted["scores"]["delta"], planted["scores"]["random"]],
        "head_only": [planted["head_only"]["metrics"]],
    }
    names = ("recovery", "pr_curves", "ground_truth", "verdicts")
    out = {name: tmp_path / f"{name}.tsv" for name in names} | {"verdicts_html": tmp_path / "v.html"}
    run_planted_stats(inputs, settings, out)
    rec = read_planted_stats(out["recovery"], "recovery").set_index("method")
    assert rec.loc["delta", "auprc"] == pytest.approx(1.0) and rec.loc["delta", "precision_at_s"] == 1.0
    assert rec.loc["random", "auprc"] < 0.5
    truth = read_planted_stats(out["ground_truth"], "ground_truth")
    assert truth["rollback_others_identical"].all()
    claims = read_claims(out["verdicts"])
    assert claims["method"].tolist() == ["delta"] and claims["verdict"].tolist() == ["supported"]
    html = out["verdicts_html"].read_text()
    assert (
        "Planted knowledge" in html and "planted/verdicts.tsv" in html and "open the neuron atlas" not in html
    )
    paths = make_figure(
        "planted_precision_recall",
        {"pr_curves": out["pr_curves"], "recovery": out["recovery"]},
        tmp_path / "pr",
        ["png"],
        60,
    )
    assert paths[0].stat().st_size > 10_000


# -- the workflow -----------------------------------------------------------------------------------
def test_the_plan_counts_the_benchmarks_jobs_as_snakemake_plans_them(tmp_path):
    """``kneurons plan`` on config/examples/planted.yaml (over the embedded default, as Snakemake merges
    them): its planted stages' jobs are the dry run's. "planted train" counts the plantings and the
    controls (the base is built, not trained); "planted score <m>" one job per planting."""
    import re
    import subprocess
    import sys

    import yaml

    from kneurons.plan import plan_costs

    repo = Path(__file__).resolve().parents[1]
    merged = yaml.safe_load((repo / "config/config.yaml").read_text())
    for key, value in yaml.safe_load((repo / "config/examples/planted.yaml").read_text()).items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    costs = {c.stage: c.jobs for c in plan_costs(validate_config(merged))[0]}
    (tmp_path / "config").mkdir()  # Snakemake merges the embedded default under every --configfile
    (tmp_path / "config/config.yaml").write_text((repo / "config/config.yaml").read_text())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(repo / "Snakefile"),
            "--directory",
            str(tmp_path),
            "planted",
            "-n",
            "--configfile",
            str(repo / "config/examples/planted.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout, re.M)}
    assert costs["planted train"] == jobs["planted_plant"] + jobs["planted_head_only"] == 6
    assert (
        sum(n for stage, n in costs.items() if stage.startswith("planted score "))
        == jobs["planted_score"]
        == 20
    )
    assert costs["planted ablate"] == jobs["planted_ablate"] == 20
    assert costs["planted ground truth"] == jobs["planted_ground_truth"] == 4
    off = validate_config({**merged, "planted": {**merged["planted"], "enabled": False}})
    assert not any(c.stage.startswith("planted") for c in plan_costs(off)[0])
