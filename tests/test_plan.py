"""The cost plan (``kneurons plan``): its pass counts are the passes the engines run.

Token-layers are counted on the model itself: a forward hook on every layer's ``fc2`` (which every
path through a layer runs once, a resumed one too) adds the tokens of each call; a backward hook
adds those of each backward pass. Sequences of one length, so no batch has padding.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.ablation.fill import Fill
from kneurons.ablation.masks import layout_of
from kneurons.ablation.run import run_ablation
from kneurons.cli import format_plan, main
from kneurons.config import validate_config
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone
from kneurons.plan import (
    ablation_job_forward,
    distinct_mask_starts,
    distinct_masks,
    external_tokens,
    feature_layout,
    neuron_layout,
    plan_costs,
    recorded_attempts,
    scoring_cost,
)
from kneurons.scoring import registry
from kneurons.vocabulary import MODULE_TYPES

# the backward hook on layer l fires although its input needs no grad; the count is what matters
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

LAYERS, DIM, N_SEQ, LENGTH = 3, 16, 12, 20
REPO_CONFIG = Path(__file__).resolve().parents[1] / "config"
AA = "ACDEFGHIKLMNPQRSTVWY"


def tiny_model() -> EsmClassifier:
    torch.manual_seed(0)
    return EsmClassifier(build_backbone(BackboneSpec("custom", LAYERS, DIM, 4)), 3).eval()


def sequences() -> list[str]:
    rng = np.random.default_rng(1)
    return ["".join(rng.choice(list(AA), LENGTH)) for _ in range(N_SEQ)]


class TokenLayers:
    """Forward and backward token-layers run through ``model``'s layers, counted at each ``fc2``."""

    def __init__(self, model: EsmClassifier):
        self.forward = self.backward = 0
        self.handles = []
        for layer in range(model.num_layers):
            fc2 = model.module(layer, "fc2")
            self.handles.append(fc2.register_forward_hook(self._fwd))
            self.handles.append(fc2.register_full_backward_hook(self._bwd))

    def _fwd(self, module, args, output):
        self.forward += output.numel() // output.shape[-1]

    def _bwd(self, module, grad_in, grad_out):
        self.backward += grad_out[0].numel() // grad_out[0].shape[-1]

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def extreme_layer0_scores(layout) -> pd.DataFrame:
    """Scores whose layer 0 holds both the top and the bottom of every module type's ranking."""
    rows = []
    for (layer, module), n in zip(layout.blocks, layout.sizes, strict=True):
        for i in range(n):
            score = (1000.0 if i == 0 else -1000.0 if i == 1 else float(i)) if layer == 0 else 10.0 + i
            rows.append(("activation", layer, module, i, score))
    df = pd.DataFrame(rows, columns=["method", "layer", "module", "neuron", "score"])
    df["label"] = pd.array([None] * len(df), dtype="string")
    df["seed"] = pd.array([None] * len(df), dtype="Int64")
    return df


@pytest.mark.parametrize("scope", ["global", "module_type", "layer_module"])
def test_ablation_plan_counts_the_passes_the_engine_runs(scope):
    model, seqs = tiny_model(), sequences()
    fractions, modes = [0, 0.01, 0.1, 0.5, 0.9, 1], ["preserve", "suppress"]
    counter = TokenLayers(model)
    try:
        run_ablation(
            model,
            seqs,
            np.zeros(N_SEQ, dtype=np.int64),
            ["a", "b", "c"],
            extreme_layer0_scores(layout_of(model)),
            "activation",
            scope,
            fractions,
            modes,
            fill=Fill(),
            normalise="none",
            token_budget=4 * (LENGTH + 2),
        )
    finally:
        counter.close()
    starts = distinct_mask_starts(LAYERS, DIM, scope, fractions, modes)
    assert counter.forward == ablation_job_forward(LAYERS, starts, N_SEQ * (LENGTH + 2))
    assert counter.backward == 0
    assert len(neuron_layout(LAYERS, DIM).blocks) == len(layout_of(model).blocks)


@pytest.mark.parametrize("method", ["activation", "ig", "gradxact", "delta"])
def test_scoring_plan_counts_the_passes_of_every_layer_job(method):
    from kneurons.model.reference import reference_rows

    model, seqs = tiny_model(), sequences()
    cfg = validate_config({"score": {"ig": {"steps": 3, "method": "gausslegendre"}}})
    score_cfg = {**cfg["score"], "token_budget": 64 * (LENGTH + 2)}
    subset = pd.DataFrame({"sequence": seqs, "label": ["a", "b", "c"] * 4, "label_index": [0, 1, 2] * 4})
    layout = layout_of(model)
    reference = reference_rows(tiny_model(), layout.blocks, layout.sizes)  # delta's; the others ignore it
    counter = TokenLayers(model)
    try:
        tables = []
        for layer in range(LAYERS):
            scorer = registry.build(method, score_cfg)
            if registry.needs_reference(method):
                scorer = scorer.with_reference(reference)
            tables.append(scorer.score_layer(model, subset, layer))
    finally:
        counter.close()
    # the steps each layer's modules needed (IG's completeness check), as a run's tables record them
    recorded = attempts_of(tables)
    assert bool(recorded) == (method in ("ig", "gradxact"))  # attributions record completeness
    fwd, bwd = scoring_cost(method, cfg, LAYERS, N_SEQ * (LENGTH + 2), recorded)
    assert (counter.forward, counter.backward) == (fwd, bwd)
    if method == "ig":  # complete at the configured steps: the plan without a record counts the same
        everyone = [(3, N_SEQ * (LENGTH + 2))]
        assert recorded == {layer: dict.fromkeys(MODULE_TYPES, everyone) for layer in range(LAYERS)}
        assert scoring_cost(method, cfg, LAYERS, N_SEQ * (LENGTH + 2)) == (fwd, bwd)


def attempts_of(tables) -> dict[int, dict[str, list[tuple[int, int]]]]:
    """``{layer: {module: [(steps, tokens) of each try]}}`` from score tables' completeness records."""
    out: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for table in tables:
        for r in table.attrs.get("completeness", []):
            out.setdefault(int(r["layer"]), {})[r["module"]] = [(a[0], a[2]) for a in r["tried"]]
    return out


def test_plan_reads_the_split_of_a_run_and_warns_over_budget(tmp_path, capsys):
    split = pd.DataFrame(
        {
            "accession": [f"P{i}" for i in range(40)],
            "sequence": ["ACDEFGHIKL"] * 40,
            "label": ["1", "2"] * 20,
            "split": ["train"] * 30 + ["val"] * 4 + ["test"] * 6,
        }
    )
    (tmp_path / "data").mkdir()
    split.to_csv(tmp_path / "data" / "split.tsv", sep="\t", index=False)
    cfg = validate_config({"results": str(tmp_path), "ablate": {"random_seeds": [0, 1, 2]}})
    costs, data = plan_costs(cfg)
    assert data.exact and data.n == {"train": 30, "val": 4, "test": 6} and data.mean_tokens == 12
    by_stage = {c.stage: c for c in costs}
    layers, dim = 4, 64
    starts = distinct_mask_starts(
        layers, dim, "layer_module", cfg["ablate"]["fractions"], cfg["ablate"]["modes"]
    )
    evaluations = len(cfg["score"]["methods"]) - 1 + 3  # the random baseline: once per seed
    # jobs: the random baseline's three seeds in one job (seeds_per_job auto, a custom model)
    assert by_stage["ablate layer_module"].jobs == len(cfg["score"]["methods"])
    assert by_stage["ablate layer_module"].forward == evaluations * ablation_job_forward(
        layers, starts, 6 * 12
    )
    per_seed = validate_config({**cfg, "ablate": {**cfg["ablate"], "seeds_per_job": 1}})
    by_stage_per_seed = {c.stage: c for c in plan_costs(per_seed)[0]}
    assert by_stage_per_seed["ablate layer_module"].jobs == evaluations
    assert by_stage_per_seed["ablate layer_module"].forward == by_stage["ablate layer_module"].forward
    assert by_stage["finetune"].backward == layers * cfg["train"]["epochs"] * 30 * 12
    text = format_plan(cfg, "h100", budget_hours=1e-12)
    assert "warning: ablate layer_module" in text and "ablate.scopes" in text
    config = tmp_path / "c.yaml"
    config.write_text(f"results: {tmp_path}\n")
    assert main(["plan", "--configfile", str(config)]) == 0
    assert "ablate layer_module" in capsys.readouterr().out


def test_replicates_multiply_the_per_replicate_stages_and_external_sets_add_theirs(tmp_path):
    ext = tmp_path / "ext.tsv"
    ext.write_text("Entry\tEC number\tSequence\n" + "".join(f"P{i}\t1.1.1.1\t{'A' * 18}\n" for i in range(5)))
    base = {"results": str(tmp_path / "results"), "units": {"features": [{"layer": 2}]}}
    one = {c.stage: c for c in plan_costs(validate_config({**base, "train": {"replicates": 1}}))[0]}
    two = {
        c.stage: c
        for c in plan_costs(
            validate_config({**base, "train": {"replicates": 2}, "evaluate": {"external": {"ext": str(ext)}}})
        )[0]
    }
    stages = ("finetune", "score ig", "ablate global", "ablate layer_module", "train SAEs", "SAE report")
    for stage in (*stages, "score features", "ablate features"):
        assert two[stage].forward == pytest.approx(2 * one[stage].forward), stage
        assert two[stage].jobs == 2 * one[stage].jobs, stage
    assert two["train SAEs"].other_flops == pytest.approx(2 * one["train SAEs"].other_flops)
    assert one["train SAEs"].other_flops > 0
    # The external set: the global scope's passes over its 5 proteins of 20 tokens (passes are
    # linear in tokens), per replicate.
    test_tokens = plan_costs(validate_config(base))[1].tokens("test")
    assert two["external ext"].forward == pytest.approx(two["ablate global"].forward * 5 * 20 / test_tokens)


def test_the_plan_counts_an_external_set_at_the_ablation_cap(tmp_path):
    """``ablate.max_sequences`` caps an external set's evaluated proteins as the test split's: the plan
    counts that many proteins of the set's mean length (5 proteins of 20 tokens, then 2)."""
    ext = tmp_path / "ext.csv"
    ext.write_text("Entry\tEC number\tSequence\n" + "".join(f"P{i}\t1.1.1.1\t{'A' * 18}\n" for i in range(5)))
    base = {"results": str(tmp_path / "results"), "evaluate": {"external": {"ext": str(ext)}}}
    assert external_tokens(validate_config(base), "ext") == 5 * 20
    capped = validate_config({**base, "ablate": {"max_sequences": 2}})
    assert external_tokens(capped, "ext") == 2 * 20
    uncapped = {c.stage: c for c in plan_costs(validate_config(base))[0]}["external ext"]
    stage = {c.stage: c for c in plan_costs(capped)[0]}["external ext"]
    assert stage.forward == pytest.approx(uncapped.forward * 2 / 5) and "ablate.max_sequences" in stage.cap


def test_every_job_pays_its_start_up(tmp_path):
    """A stage without passes (random scores) still costs its jobs' start-up; one with passes adds it."""
    from kneurons.plan import JOB_STARTUP_S, THROUGHPUT, model_shape

    cfg = validate_config({"results": str(tmp_path)})
    costs, data = plan_costs(cfg)
    _, dim, _ = model_shape(cfg)
    by_stage = {c.stage: c for c in costs}
    random = by_stage["score random"]
    assert random.forward == random.backward == 0 and random.jobs == 1  # all layers in one job
    assert random.hours(THROUGHPUT["cpu"][0], dim, data.mean_tokens) == JOB_STARTUP_S / 3600
    ig = by_stage["score ig"]
    passes = ig.flops(dim, data.mean_tokens) / THROUGHPUT["cpu"][0] / 3600
    assert ig.hours(THROUGHPUT["cpu"][0], dim, data.mean_tokens) == pytest.approx(
        passes + ig.jobs * JOB_STARTUP_S / 3600
    )


def test_hours_and_counts_read_in_units_people_use():
    from kneurons.cli import duration, readable

    numbers = (1.2e6, 1.09e4, 999.96, 28.0, 0.0357, 0.0, 5.22e12)
    assert [readable(x) for x in numbers] == ["1.2 M", "10.9 k", "1 k", "28", "0.0357", "0", "5.22 T"]
    hours = (604.0, 1.32e6, 2.25, 0.155)
    assert [duration(h) for h in hours] == ["25.2 days", "151 years", "2.25 h", "9.3 min"]


def test_a_run_far_over_its_budget_gets_the_one_setting_that_brings_it_under(tmp_path):
    """The shipped paper config: readable numbers, and the setting it names really brings the run
    under the budget (the largest such value: one more protein is over)."""
    from kneurons.config_cli import read_workflow_config
    from kneurons.plan import THROUGHPUT, total_hours

    # as Snakemake reads it: merged over the embedded default
    cfg, _ = read_workflow_config([REPO_CONFIG / "paper.yaml"], default=REPO_CONFIG / "config.yaml")
    cfg["results"] = str(tmp_path)  # no run's split.tsv: the estimated sizes
    rate = THROUGHPUT["a100"][0]
    # Two replicates and an SAE (stated in paper.yaml): a budget of two days, the fixed stages
    # (fine-tuning, scoring, characterisation) well under it.
    budget = 48
    assert total_hours(cfg, rate) > 10 * budget
    text = format_plan(cfg, "a100", budget_hours=budget)
    assert "e+" not in text and "M" in text.split("\ntotal")[1], text  # 2.66e+06 CPU-h reads 2.66 M
    warning = next(line for line in text.splitlines() if line.startswith("warning: the whole run"))
    key, value = re.search(r"brings it under: ([\w.]+): (\d+)", warning).groups()
    assert key == "ablate.max_sequences", warning
    under = {**cfg, "ablate": {**cfg["ablate"], "max_sequences": int(value)}}
    over = {**cfg, "ablate": {**cfg["ablate"], "max_sequences": int(value) + 1}}
    assert total_hours(under, rate) <= budget < total_hours(over, rate)
    # A budget the fixed stages alone exceed: the next setting that can (ablate.max_sequences cannot).
    text = format_plan(cfg, "a100", budget_hours=24)
    warning = next(line for line in text.splitlines() if line.startswith("warning: the whole run"))
    assert "ablate.max_sequences" not in warning.split("brings it under")[-1], warning
    # Within 10x of the budget: no whole-run warning.
    assert "the whole run" not in format_plan(cfg, "a100", budget_hours=10 * budget)


def test_plan_of_a_bad_config_is_one_line_not_a_traceback(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("model: {checkpoint: missing.pt}\n")
    assert main(["plan", "--configfile", str(config)]) == 2
    err = capsys.readouterr().err
    assert "missing.pt" in err and "Traceback" not in err


# -- SAE features (units.features) ----------------------------------------------------------------
def feature_run(tmp_path: Path, layer: int) -> tuple[dict, Path, Path]:
    """A validated config of the tiny model with one trained SAE at ``layer``, its run's split.tsv
    (12 training, 4 validation, 12 test proteins of ``LENGTH`` residues) and the model's checkpoint."""
    from kneurons.model.checkpoint import save_classifier

    seqs = sequences() + sequences()[:4] + sequences()
    split = pd.DataFrame(
        {
            "accession": [f"P{i}" for i in range(len(seqs))],
            "sequence": seqs,
            "label": ["abc"[i % 3] for i in range(len(seqs))],
            "split": ["train"] * N_SEQ + ["val"] * 4 + ["test"] * N_SEQ,
        }
    )
    (tmp_path / "data").mkdir()
    split_path = tmp_path / "data" / "split.tsv"
    split.to_csv(split_path, sep="\t", index=False)
    checkpoint = tmp_path / "best.pt"
    save_classifier(checkpoint, tiny_model(), BackboneSpec("custom", LAYERS, DIM, 4), ["a", "b", "c"])
    cfg = validate_config(
        {
            "results": str(tmp_path),
            "model": {"custom": {"num_layers": LAYERS, "embed_dim": DIM, "attention_heads": 4}},
            "units": {"features": [{"layer": layer}]},
            # 3 of the 12 training proteins held out; the other 9 capped at 5 proteins' tokens
            "sae": {"n_features": 32, "k": 4, "epochs": 1, "heldout": 0.25, "max_tokens": 5 * (LENGTH + 2)},
            "score": {"ig": {"steps": 3, "method": "gausslegendre"}, "token_budget": 64 * (LENGTH + 2)},
            "ablate": {"fractions": [0, 0.01, 0.1, 0.5, 0.9, 1], "random_seeds": [0, 1]},
        }
    )
    return cfg, split_path, checkpoint


@pytest.fixture
def counted_jobs(monkeypatch):
    """The token-layers of every classifier a job loads (``load_job_classifier`` wrapped)."""
    from kneurons.model import checkpoint as ckpt

    counters = []
    load = ckpt.load_job_classifier

    def counting(*args, **kwargs):
        model, info = load(*args, **kwargs)
        counters.append(TokenLayers(model))
        return model, info

    monkeypatch.setattr(ckpt, "load_job_classifier", counting)
    # and where a job module imported the name at its top (already imported by an earlier test)
    for name, module in list(sys.modules.items()):
        if name.startswith("kneurons.jobs.") and getattr(module, "load_job_classifier", None) is load:
            monkeypatch.setattr(module, "load_job_classifier", counting)
    yield counters
    for c in counters:
        c.close()


@pytest.mark.parametrize("layer", [1, LAYERS])
def test_feature_plan_counts_the_passes_the_feature_jobs_and_engines_run(layer, tmp_path, counted_jobs):
    """An SAE on the stream entering layer 1 and one on the final stream (layer L, after the last
    layer and its norm): training, the report, every scoring method and the ablation run exactly
    the token-layers the plan's feature stages count."""
    from kneurons.features.formats import load_sae
    from kneurons.jobs.features import run_sae_report, run_train_sae
    from kneurons.settings import job_settings
    from kneurons.vocabulary import FEATURE_MODULE

    cfg, split_path, checkpoint = feature_run(tmp_path, layer)
    by_stage = {c.stage: c for c in plan_costs(cfg)[0]}
    sae_path = tmp_path / "sae.pt"
    sae = run_train_sae(checkpoint, split_path, layer, job_settings("train_sae", cfg), sae_path)
    assert sae.meta["n_train_tokens"] == 5 * (LENGTH + 2)  # the cap binds: the count must follow it
    assert counted_jobs[-1].forward == by_stage["train SAEs"].forward > 0
    specs = [{"layer": layer, "path": str(sae_path), "format": "kneurons", "k": None}]
    run_sae_report(checkpoint, split_path, specs, job_settings("sae_report", cfg), tmp_path / "saes.json")
    assert counted_jobs[-1].forward == by_stage["SAE report"].forward > 0
    assert sum(c.backward for c in counted_jobs) == 0

    model, seqs = tiny_model(), sequences()
    model.attach_sae(load_sae(sae_path, "kneurons", layer))
    subset = pd.DataFrame({"sequence": seqs, "label": ["a", "b", "c"] * 4, "label_index": [0, 1, 2] * 4})
    counter = TokenLayers(model)
    try:
        tables = {
            method: registry.build(method, cfg["score"]).score_layer(
                model, subset, layer, module_types=(FEATURE_MODULE,)
            )
            for method in cfg["score"]["methods"]
        }
        scored = (counter.forward, counter.backward)
        counter.forward = counter.backward = 0
        for method in cfg["score"]["methods"]:
            run_ablation(
                model,
                seqs,
                np.zeros(N_SEQ, dtype=np.int64),
                ["a", "b", "c"],
                tables[method],
                method,
                "global",
                cfg["ablate"]["fractions"],
                cfg["ablate"]["modes"],
                fill=Fill(),
                normalise="none",
                random_seeds=cfg["ablate"]["random_seeds"],
                token_budget=4 * (LENGTH + 2),
                modules=(FEATURE_MODULE,),
            )
    finally:
        counter.close()
    # the plan reads the steps IG needed from the run's score tables (the completeness check)
    from kneurons.tables import write_score_table

    for method, table in tables.items():
        meta = {"completeness": table.attrs["completeness"]} if "completeness" in table.attrs else {}
        write_score_table(table, tmp_path / "features" / "scores" / f"{method}.parquet", meta)
    assert attempts_of([tables["ig"]]) == recorded_attempts(cfg, "ig", 0, features=True)
    score = {c.stage: c for c in plan_costs(cfg)[0]}["score features"]
    assert scored == (score.forward, score.backward)
    assert (score.backward > 0) == (layer < LAYERS)  # no layer runs after the final stream
    assert score.jobs == len(cfg["score"]["methods"])
    assert counter.forward == by_stage["ablate features"].forward and counter.backward == 0
    # a mask on layer l's stream runs layers l..L-1 (none for the final stream's SAE); the random
    # baseline's seeds share the intact pass and the mask that fills every feature
    one_seed = distinct_masks(
        feature_layout(cfg, DIM), "global", cfg["ablate"]["fractions"], ["preserve", "suppress"]
    )
    masks = (len(cfg["score"]["methods"]) - 1 + 2) * len(one_seed) - 1  # 2 seeds
    assert counter.forward == N_SEQ * (LENGTH + 2) * (
        len(cfg["score"]["methods"]) * LAYERS + masks * (LAYERS - layer)
    )


def test_feature_stages_are_planned_and_printed_only_with_units_features(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    stages = ("train SAEs", "SAE report", "score features", "ablate features")
    # the embedded default has an SAE: a given configfile turns features off as a run would
    config.write_text(f"results: {tmp_path}\nunits: {{features: []}}\n")
    assert main(["plan", "--configfile", str(config)]) == 0
    out = capsys.readouterr().out
    assert "ablate global" in out and not any(s in out for s in stages) and "SAE" not in out
    sae_file = tmp_path / "given.pt"
    sae_file.write_bytes(b"")  # the plan never reads a given SAE file: it assumes F = 8 d
    config.write_text(
        f"results: {tmp_path}\nunits: {{features: [{{layer: 2}}, {{layer: 4, sae: {sae_file}}}]}}\n"
    )
    assert main(["plan", "--configfile", str(config)]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in stages), out
    assert "F = 8 d" in out
    trained_only = validate_config({"results": str(tmp_path), "units": {"features": [{"layer": 2}]}})
    by_stage = {c.stage: c for c in plan_costs(trained_only)[0]}
    assert by_stage["train SAEs"].jobs == 1 and by_stage["ablate features"].jobs == 4
    assert "F = 8 d" not in format_plan(trained_only)


def test_sae_training_flops_scale_with_epochs_and_features(tmp_path):
    def train_stage(**sae):
        cfg = validate_config({"results": str(tmp_path), "units": {"features": [{"layer": 1}]}, "sae": sae})
        return {c.stage: c for c in plan_costs(cfg)[0]}["train SAEs"]

    base = train_stage(epochs=2, n_features=128)
    assert base.other_flops > 0
    assert train_stage(epochs=6, n_features=128).other_flops == pytest.approx(3 * base.other_flops)
    assert train_stage(epochs=2, n_features=512).other_flops == pytest.approx(4 * base.other_flops)
    # the stream is read once whatever the epochs and the width: only the optimisation grows
    assert train_stage(epochs=6, n_features=512).forward == base.forward
    # null n_features is 8 d (the embedded default's d = 64)
    assert train_stage(epochs=2).other_flops == pytest.approx(4 * base.other_flops)
    dim, tokens = 64, plan_costs(validate_config({"results": str(tmp_path)}))[1].mean_tokens
    more = train_stage(epochs=20, n_features=128)
    assert more.flops(dim, tokens) - base.flops(dim, tokens) == pytest.approx(9 * base.other_flops)


def test_fills_and_the_same_site_bases_count_the_passes_the_engine_runs(tmp_path, counted_jobs):
    """Two fills (zero, resample) in one global job: the intact pass once, the donors' pass once, every
    mask's tail once per fill. The same-site bases of an SAE stream: the PCA's stream read, the linear
    bases' scoring and one evaluation per basis, the plan's stage exactly where no two methods select
    the same directions (masks they share run once: the plan is then an upper bound)."""
    from kneurons.ablation.fill import make_fill
    from kneurons.ablation.masks import canonical
    from kneurons.features.bases import fit_bases
    from kneurons.features.formats import load_sae
    from kneurons.features.quality import stream_tokens
    from kneurons.features.sae import InputPoint
    from kneurons.features.same_site import ablate_bases, grid_rows
    from kneurons.features.sizes import direction_counts
    from kneurons.jobs.features import run_train_sae
    from kneurons.scoring.base import score_layer
    from kneurons.settings import job_settings
    from kneurons.vocabulary import FEATURE_MODULE

    model, seqs = tiny_model(), sequences()
    t_e = N_SEQ * (LENGTH + 2)
    fractions, modes = [0, 0.01, 0.1, 0.5, 0.9, 1], ["preserve", "suppress"]
    # donors of the evaluated proteins' length: the donors' pass reads as many tokens
    fills = [Fill(), make_fill("resample", model, {}, scoring_sequences=seqs[::-1], seed=0)]
    counter = TokenLayers(model)
    try:
        run_ablation(
            model,
            seqs,
            np.zeros(N_SEQ, dtype=np.int64),
            ["a", "b", "c"],
            extreme_layer0_scores(layout_of(model)),
            "activation",
            "global",
            fractions,
            modes,
            fill=fills,
            normalise="none",
            token_budget=4 * (LENGTH + 2),
        )
    finally:
        counter.close()
    starts = distinct_mask_starts(LAYERS, DIM, "global", fractions, modes)
    assert counter.forward == ablation_job_forward(LAYERS, starts, t_e, fills=2, resample=True)
    assert counter.forward == t_e * (2 * LAYERS + 2 * sum(LAYERS - s for s in starts))

    layer = 1
    cfg, split_path, checkpoint = feature_run(tmp_path, layer)
    cfg["ablate"]["fills"] = ["zero", "resample"]
    cfg["score"]["methods"] = ["activation", "random"]
    cfg["characterise"]["enabled"] = False
    cfg["units"]["directions"] = [1, 2, 4]
    cfg = validate_config(cfg)
    stage = {c.stage: c for c in plan_costs(cfg)[0]}["same-site bases"]
    assert stage.jobs == 1  # one replicate, one SAE
    sae_path = tmp_path / "sae.pt"
    run_train_sae(checkpoint, split_path, layer, job_settings("train_sae", cfg), sae_path)
    sae = load_sae(sae_path, "kneurons", layer)
    model.attach_sae(sae)
    subset = pd.DataFrame({"sequence": seqs, "label": ["a", "b", "c"] * 4, "label_index": [0, 1, 2] * 4})
    features = {
        m: registry.build(m, cfg["score"]).score_layer(model, subset, layer, module_types=(FEATURE_MODULE,))
        for m in cfg["score"]["methods"]
    }
    ab, counts = cfg["ablate"], direction_counts(DIM, cfg["units"]["directions"])
    counter = TokenLayers(model)
    try:
        h = stream_tokens(model, seqs, [layer], point=InputPoint(positions="residues"))[layer]
        bases = {"features": sae, **fit_bases(h, layer, seed=0)}
        result = ablate_bases(
            model,
            layer,
            bases,
            subset,
            seqs,
            np.zeros(N_SEQ, dtype=np.int64),
            ["a", "b", "c"],
            lambda: [Fill(), make_fill("resample", model, {}, scoring_sequences=seqs[::-1], seed=0)],
            cfg["score"]["methods"],
            cfg["score"],
            ab["fractions"],
            counts,
            ab["random_seeds"],
            feature_scores=features,
            normalise="none",
            token_budget=4 * (LENGTH + 2),
        )
    finally:
        counter.close()
    assert set(result.table["basis"]) == set(bases)
    # the masks each basis evaluated (a mask two selections share runs once) and those the plan
    # counts (every method's apart, the mask that fills every direction shared)
    unique = planned = 0
    for name, basis in bases.items():
        model.attach_sae(basis)
        layout = layout_of(model, (FEATURE_MODULE,))
        every: set = set()
        for m in cfg["score"]["methods"]:
            scores = (
                features[m]
                if name == "features"
                else score_layer(model, subset, m, layer, cfg["score"], module_types=(FEATURE_MODULE,))
            )
            seeds = ab["random_seeds"] if m == "random" else None
            own = {
                canonical(mask)
                for mask in grid_rows(scores, layout, m, ab["fractions"], counts, "none", seeds)[1]
                if any(v.any() for v in mask.values())  # not the intact model (the shared pass)
            }
            filled = {
                c for c in own if all(np.unpackbits(np.frombuffer(b, np.uint8))[:n].all() for _, b, n in c)
            }
            planned += len(own - filled)
            every |= own
        unique += len(every)
        planned += 1  # the mask that fills every direction, shared
    read = N_SEQ * (LENGTH + 2) * (layer + 1)  # the PCA's stream, and each linear basis's scoring
    scoring = 3 * len(cfg["score"]["methods"]) * N_SEQ * (LENGTH + 2) * (layer + 1)
    tail = 2 * t_e * (LAYERS - layer)  # one mask's tail under both fills
    assert counter.forward == read + scoring + len(bases) * 2 * LAYERS * t_e + unique * tail
    assert counter.backward == stage.backward == 0
    assert stage.forward - counter.forward == (planned - unique) * tail >= 0


def test_concept_plan_counts_the_passes_the_concept_job_runs(tmp_path, counted_jobs):
    """The concept job on a split with planted-motif annotations, each part capped at 8 proteins and
    every pair a candidate (floor 0): its maxima, counts and null passes are the plan's token-layers."""
    from kneurons.jobs.concepts import run_concepts_job
    from kneurons.settings import job_settings

    cfg, split_path, checkpoint = feature_run(tmp_path, 1)
    split = pd.read_csv(split_path, sep="\t")
    split["motif_sites"] = ["3;4;5;11;12" if i % 2 else "7;8;9" for i in range(len(split))]
    split.to_csv(split_path, sep="\t", index=False)
    cfg = validate_config(
        {
            **cfg,
            "units": {"features": []},
            "concepts": {"max_proteins": 8, "f1_floor": 0.0, "min_proteins": 2},
        }
    )
    out = {n: tmp_path / f"{n}.tsv" for n in ("alignment", "summary", "concepts", "units", "knowledge")}
    info = run_concepts_job(
        checkpoint, split_path, job_settings("concepts", cfg), out | {"info": tmp_path / "i.json"}
    )
    assert info["proteins"] == {"train": 8, "val": 4, "test": 8} and info["candidate_pairs"] > 0
    (stage,) = [c for c in plan_costs(cfg)[0] if c.stage == "concepts"]
    assert counted_jobs[-1].forward == stage.forward == LAYERS * (8 + 4 + 2 * 8) * (LENGTH + 2)
    assert counted_jobs[-1].backward == stage.backward == 0 and stage.jobs == 1
    off = validate_config({**cfg, "concepts": {"enabled": False}})
    assert "concepts" not in {c.stage for c in plan_costs(off)[0]}
