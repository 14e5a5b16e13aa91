"""Neuron scoring: hooks, activation statistics, score tables, the scoring subset, workflow jobs, and
the science check on a model trained on planted motifs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.errors import InputError
from kneurons.jobs.score import run_score_job
from kneurons.model.checkpoint import save_classifier
from kneurons.model.classifier import MODULE_TYPES, BackboneSpec, EsmClassifier, build_backbone, tokenize
from kneurons.model.hooks import OutputRecorder, mask_fn, module_output_hook, module_output_hooks, scale_fn
from kneurons.scoring.activation import activation_per_sequence
from kneurons.scoring.base import score_layer
from kneurons.scoring.ig import attribution_per_sequence
from kneurons.scoring.integration import integration_points
from kneurons.scoring.random import random_scores
from kneurons.scoring.rows import scores_table
from kneurons.scoring.subset import select_scoring_set, subset_hash
from kneurons.tables import SCORE_COLUMNS, gather_score_tables, read_score_table, write_score_table

SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "MKVLAAGIVG", "MSTNPKPQRKTKRNTNRRPQDVKFPGG", "GAVLIPFWMS", "WWPLKQ"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(seed: int = 0, layers: int = 2, classes: int = 3) -> EsmClassifier:
    torch.manual_seed(seed)
    return EsmClassifier(build_backbone(BackboneSpec("custom", layers, 32, 4)), num_classes=classes).eval()


def _score_cfg(**over) -> dict:
    cfg = {
        "token_budget": 4096,
        "bf16": True,
        "split": "train",
        "max_sequences": None,
        "activation": {"reduce": "abs_mean", "class_conditional": False},
        "ig": {
            "steps": 4,
            "method": "riemann_right",
            "target": "prob",
            "class_conditional": True,
            "tolerance": 0.01,
            "max_steps": 256,
        },
        "random": {"seeds": [0, 1]},
        "delta": {"class_conditional": False},
    }
    cfg.update(over)
    return cfg


# -- hooks --------------------------------------------------------------------------------------
def test_module_output_hook_replaces_and_is_removed_even_on_error():
    model, tokens = _model(), tokenize(SEQS[:2])
    with torch.no_grad():
        base = model(tokens)
        with module_output_hook(model.module(1, "fc2"), scale_fn(0.0)):
            zeroed = model(tokens)
        assert not torch.allclose(base, zeroed)
        with pytest.raises(RuntimeError), module_output_hook(model.module(1, "fc2"), scale_fn(0.0)):
            raise RuntimeError("boom")
        assert torch.equal(model(tokens), base)
        assert not model.module(1, "fc2")._forward_hooks


def test_mask_fn_keeps_units_and_fills_the_rest():
    model, tokens = _model(), tokenize(SEQS[:2])
    n = model.neuron_count("fc1")
    keep = torch.zeros(n)
    keep[:5] = 1
    fill = torch.arange(n, dtype=torch.float32)
    with (
        torch.no_grad(),
        OutputRecorder({"fc1": model.module(0, "fc1")}) as rec,
        module_output_hooks({model.module(0, "fc1"): mask_fn(keep, fill)}),
    ):
        model(tokens)
    # The recorder was registered first, so it sees the unmasked output; recompute the masked one.
    a = rec.outputs["fc1"][0]
    masked = mask_fn(keep, fill)(a)
    assert torch.equal(masked[..., :5], a[..., :5])
    assert torch.equal(masked[..., 5:], fill[5:].expand_as(masked[..., 5:]))


def test_recorder_clones_before_fair_esm_scales_q_in_place():
    """fair-esm's reference attention multiplies q_proj's output in place; the recorder keeps the raw one."""
    from kneurons.model.backends.fair_esm.attention import set_attention

    model, tokens = _model(), tokenize(SEQS[:2])
    set_attention(model.esm, "reference")
    q = model.module(0, "q_proj")
    with torch.no_grad(), OutputRecorder({"q": q}) as rec:
        x, _ = model.embed(tokens)
        model.run_layers(x, None if not tokens.eq(1).any() else tokens.eq(1), 0, 1)
    x, _ = model.embed(tokens)
    expected = q(model.esm.layers[0].self_attn_layer_norm(x))
    torch.testing.assert_close(rec.outputs["q"][0], expected.detach())


# -- activation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("reduce", ["abs_mean", "mean", "max"])
def test_activation_statistics_by_hand_and_independent_of_batching(reduce):
    model = _model()
    ours = activation_per_sequence(model, SEQS, 1, reduce=reduce, token_budget=10**6)
    single = activation_per_sequence(model, SEQS, 1, reduce=reduce, token_budget=1)  # one sequence per batch
    for t in MODULE_TYPES:
        np.testing.assert_allclose(ours[t], single[t], rtol=1e-5, atol=1e-6)
    # By hand, sequence by sequence (no padding at all): BOS and EOS count as tokens.
    for i, seq in enumerate(SEQS):
        tokens = tokenize([seq])
        with torch.no_grad(), OutputRecorder({t: model.module(1, t) for t in MODULE_TYPES}) as rec:
            model(tokens)
        for t in MODULE_TYPES:
            a = rec.outputs[t][0][:, 0].double()  # (T, n)
            assert a.shape[0] == len(seq) + 2
            want = {"abs_mean": a.abs().mean(0), "mean": a.mean(0), "max": a.abs().amax(0)}[reduce]
            np.testing.assert_allclose(ours[t][i], want.numpy(), rtol=1e-5, atol=1e-6)


def test_attribution_independent_of_padding_partner():
    """A sequence scored alone or in a padded batch with a longer one gets the same attributions."""
    model = _model()
    alphas, weights = integration_points(3, "riemann_middle")
    batched = attribution_per_sequence(model, SEQS, [0, 1, 2, 0, 1], 1, ["k_proj"], alphas, weights)["k_proj"]
    for i in (1, 4):
        alone = attribution_per_sequence(
            model, [SEQS[i]], [[0, 1, 2, 0, 1][i]], 1, ["k_proj"], alphas, weights
        )["k_proj"]
        np.testing.assert_allclose(batched[i], alone[0], rtol=1e-4, atol=1e-7)


# -- tables ------------------------------------------------------------------------------------------
def test_scores_table_unconditional_and_per_class_means():
    per = {"fc1": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])}
    df = scores_table(per, "ig", 3, labels=["a", "b", "a"], class_conditional=True)
    assert list(df.columns) == SCORE_COLUMNS
    uncond = df[df["label"].isna()]
    np.testing.assert_allclose(uncond["score"], [3.0, 5.0])
    np.testing.assert_allclose(df[df["label"] == "a"]["score"], [3.0, 5.5])
    np.testing.assert_allclose(df[df["label"] == "b"]["score"], [3.0, 4.0])
    assert (df["layer"] == 3).all() and df["seed"].isna().all()
    assert scores_table(per, "ig", 3)["label"].isna().all()


def test_random_scores_seeded_per_layer_and_module():
    counts = {"q_proj": 8, "fc1": 16}
    a, b = random_scores(counts, 2, [0, 1]), random_scores(counts, 2, [0, 1])
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 2 * (8 + 16) and a["score"].between(0, 1).all()
    s0 = a[(a["seed"] == 0) & (a["module"] == "fc1")]["score"].to_numpy()
    s1 = a[(a["seed"] == 1) & (a["module"] == "fc1")]["score"].to_numpy()
    other_layer = random_scores(counts, 3, [0])
    assert not np.allclose(s0, s1)
    assert not np.allclose(s0, other_layer[other_layer["module"] == "fc1"]["score"])


def test_score_table_metadata_round_trip_and_gather(tmp_path):
    meta = {
        "method": "activation",
        "checkpoint_sha256": "x",
        "subset": {"n": 2},
        "settings": {"reduce": "abs_mean"},
    }
    paths = []
    for layer in (1, 0):
        df = scores_table(
            {t: np.random.default_rng(layer).random((2, 4)) for t in MODULE_TYPES}, "activation", layer
        )
        p = tmp_path / f"layer{layer}.parquet"
        write_score_table(df, p, {**meta, "layer": layer})
        paths.append(p)
    df, got = read_score_table(paths[0])
    assert got["layer"] == 1 and got["checkpoint_sha256"] == "x"
    gathered, gmeta = gather_score_tables(paths)
    assert gmeta["layers"] == [0, 1] and len(gathered) == 2 * len(MODULE_TYPES) * 4
    assert gathered["layer"].is_monotonic_increasing
    assert gathered[gathered["layer"] == 0]["module"].drop_duplicates().tolist() == list(MODULE_TYPES)
    write_score_table(df, tmp_path / "stale.parquet", {**meta, "checkpoint_sha256": "y", "layer": 2})
    with pytest.raises(InputError, match="checkpoint_sha256 differs"):
        gather_score_tables([paths[0], tmp_path / "stale.parquet"])
    write_score_table(df, tmp_path / "other.parquet", {**meta, "weights_sha256": "ab" * 32, "layer": 2})
    with pytest.raises(InputError, match="weights_sha256 differs"):
        gather_score_tables([paths[0], tmp_path / "other.parquet"])


# -- the registry ---------------------------------------------------------------------------------------
def test_registry_is_the_schema_enum_and_names_its_classes():
    import yaml

    from kneurons.schema import SCHEMA_PATH, load_schema
    from kneurons.scoring import registry

    names = list(registry.METHODS)
    assert load_schema()["properties"]["score"]["properties"]["methods"]["items"]["enum"] == names
    with open(SCHEMA_PATH) as fh:  # the YAML file repeats the registry for its readers
        assert yaml.safe_load(fh)["properties"]["score"]["properties"]["methods"]["items"]["enum"] == names
    cfg = _score_cfg()
    for name, spec in registry.METHODS.items():
        method = registry.build(name, cfg)
        assert method.name == name and method.spec is spec
    assert [n for n in names if registry.is_attribution(n)] == ["ig", "gradxact"]
    assert not registry.is_attribution("unknown")
    with pytest.raises(ValueError, match="unknown scoring method 'nope'; one of activation, ig"):
        registry.get("nope")


def test_registry_settings_are_the_recorded_score_settings():
    from kneurons.scoring import registry

    cfg = _score_cfg()
    assert registry.get("activation").settings(cfg) == {
        "tokens": "non-padding incl. BOS/EOS",
        "reduce": "abs_mean",
        "class_conditional": False,
    }
    assert registry.get("ig").settings(cfg) == {
        "steps": 4,
        "method": "riemann_right",
        "target": "prob",
        "baseline": "zero",
        "class_conditional": True,
        "tolerance": 0.01,
        "max_steps": 256,
    }
    assert registry.get("gradxact").settings(cfg) == {"target": "prob", "class_conditional": True}
    assert registry.get("random").settings(cfg) == {"seeds": [0, 1]}


def test_registry_config_selection_and_figures_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; import kneurons.scoring.registry, kneurons.config, kneurons.ranking, "
        "kneurons.figures.ablation, kneurons.scoring.rows, kneurons.scoring.subset, "
        "kneurons.scoring.integration; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the scoring subset -------------------------------------------------------------------------------
def _split(n_per_class=(30, 10, 5)) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for c, n in zip(["1", "2", "3"], n_per_class, strict=True):
        for i in range(n):
            for split in ("train", "val", "test"):
                rows.append(
                    {"accession": f"{split}{c}_{i}", "sequence": "MK" + "A" * i, "label": c, "split": split}
                )
    classes = pd.DataFrame({"label_index": [0, 1, 2], "label": ["1", "2", "3"], "name": "", "n": 0})
    return pd.DataFrame(rows), classes


def test_scoring_set_stratified_seeded_never_test():
    split, classes = _split()
    sub = select_scoring_set(split, classes, "train", 9, seed=0)
    assert list(sub.columns) == ["accession", "sequence", "label", "label_index"]
    assert sub["accession"].str.startswith("train").all()
    assert sub["label"].value_counts().to_dict() == {"1": 6, "2": 2, "3": 1}  # 30:10:5 of 9
    assert (sub["label_index"] == sub["label"].astype(int) - 1).all()
    pd.testing.assert_frame_equal(sub, select_scoring_set(split, classes, "train", 9, seed=0))
    assert set(sub["accession"]) != set(select_scoring_set(split, classes, "train", 9, seed=1)["accession"])
    assert len(select_scoring_set(split, classes, "val", None)) == 45
    with pytest.raises(InputError, match="test split"):
        select_scoring_set(split, classes, "test", 9)
    with pytest.raises(InputError, match="classes.tsv"):
        select_scoring_set(split, classes[classes["label"] != "3"], "train", 9)


# -- one workflow job --------------------------------------------------------------------------------
def _score_job_inputs(tmp_path):
    """A 2-layer, 2-class checkpoint ``best.pt`` and a 5-sequence ``scoring_set.tsv`` in ``tmp_path``."""
    model = _model(layers=2, classes=2)
    ckpt = tmp_path / "best.pt"
    save_classifier(
        ckpt, model, BackboneSpec("custom", 2, 32, 4), ["x", "y"], {"weights_sha256": "random-init:3"}
    )
    subset = pd.DataFrame(
        {
            "accession": [f"A{i}" for i in range(5)],
            "sequence": SEQS,
            "label": list("xyxyx"),
            "label_index": [0, 1, 0, 1, 0],
        }
    )
    subset.to_csv(tmp_path / "scoring_set.tsv", sep="\t", index=False)
    return model, ckpt, subset


def test_run_score_job_writes_table_with_provenance(tmp_path):
    model, ckpt, subset = _score_job_inputs(tmp_path)
    cfg = {"score": _score_cfg(), "model": {"attention": "sdpa"}, "seed": 0}
    out = tmp_path / "ig" / "layer1.parquet"
    df = run_score_job(ckpt, tmp_path / "scoring_set.tsv", "ig", [1], cfg, out, device="cpu")
    back, meta = read_score_table(out)
    pd.testing.assert_frame_equal(back, df)
    from kneurons.io import sha256_file

    assert meta["checkpoint_sha256"] == sha256_file(ckpt)
    assert meta["weights_sha256"] == "random-init:3"  # the checkpoint's initial weights, passed on
    assert meta["subset"]["n"] == 5 and meta["subset"]["accessions_sha256"] == subset_hash(
        subset["accession"]
    )
    assert meta["settings"]["steps"] == 4 and meta["layers"] == [1]
    assert set(back["label"].dropna()) == {"x", "y"}
    n_neurons = sum(model.neuron_count(t) for t in MODULE_TYPES)
    assert len(back) == 3 * n_neurons  # unconditional + 2 classes
    # The unconditional score is the sequence-weighted mean of the class rows (3 x-, 2 y-sequences).
    u = back[back["label"].isna()]["score"].to_numpy()
    x = back[back["label"] == "x"]["score"].to_numpy()
    y = back[back["label"] == "y"]["score"].to_numpy()
    np.testing.assert_allclose(u, (3 * x + 2 * y) / 5, rtol=1e-10, atol=1e-12)

    bad = subset.assign(label_index=[1, 1, 0, 1, 0])
    bad.to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="line 2"):
        run_score_job(ckpt, tmp_path / "bad.tsv", "activation", [0], cfg, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


# -- science: on a model fine-tuned on planted motifs ------------------------------------------------------
def _motif_enrichment(model: EsmClassifier, split: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per neuron and class c: mean |activation| on c's planted-motif residues / on the other residues,
    in held-out sequences of class c (token index = 1-based residue position, BOS is token 0)."""
    held = split[split["split"] != "train"].reset_index(drop=True)
    tokens = tokenize(held["sequence"].tolist())
    motif = torch.zeros(tokens.shape, dtype=torch.bool)
    for i, sites in enumerate(held["motif_sites"].astype(str)):
        for pos in filter(None, sites.split(";")):
            motif[i, int(pos)] = True
    residue = tokens.ne(model.esm.padding_idx) & tokens.ne(model.esm.cls_idx) & tokens.ne(model.esm.eos_idx)
    background = residue & ~motif
    mods = {(layer, t): model.module(layer, t) for layer in range(model.num_layers) for t in MODULE_TYPES}
    with torch.no_grad(), OutputRecorder({f"{k[0]}|{k[1]}": m for k, m in mods.items()}) as rec:
        model(tokens)
    frames = []
    for key, outs in rec.outputs.items():
        a = outs[0].transpose(0, 1).abs().double()  # (B, T, n)
        layer, module = key.split("|")
        for c in labels:
            sel = torch.from_numpy((held["label"].astype(str) == c).to_numpy().copy())
            m, b = motif[sel].unsqueeze(-1), background[sel].unsqueeze(-1)
            ratio = ((a[sel] * m).sum((0, 1)) / m.sum()) / ((a[sel] * b).sum((0, 1)) / b.sum())
            frames.append(
                pd.DataFrame(
                    {
                        "layer": int(layer),
                        "module": module,
                        "neuron": np.arange(a.shape[-1]),
                        "label": c,
                        "enrichment": ratio.numpy(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _top_enrichment(scores: pd.DataFrame, enrichment: pd.DataFrame, fraction: float = 0.1) -> float:
    """Mean motif enrichment of each module's top-``fraction`` neurons, averaged over classes."""
    s = scores.copy()
    s["rank"] = s.groupby(["label", "layer", "module"], dropna=False)["score"].rank(ascending=False, pct=True)
    top = s[s["rank"] <= fraction].merge(enrichment, on=["layer", "module", "neuron", "label"])
    return float(top.groupby("label")["enrichment"].mean().mean())


def test_top_neurons_fire_on_planted_motifs(trained_synthetic):
    """Class-conditional IG and activation top neurons of class c fire more on c's planted motifs
    (relative to background residues) than random neurons do."""
    from kneurons.model.checkpoint import load_classifier

    model, info = load_classifier(trained_synthetic.checkpoint)
    labels = list(info["labels"])
    classes = pd.DataFrame({"label_index": range(len(labels)), "label": labels})
    subset = select_scoring_set(trained_synthetic.split, classes, "train", 48, seed=0)
    cfg = _score_cfg(
        activation={"reduce": "abs_mean", "class_conditional": True},
        ig={"steps": 10, "method": "gausslegendre", "target": "prob", "class_conditional": True},
        random={"seeds": [0, 1, 2, 3, 4]},
    )
    tables = {
        m: pd.concat([score_layer(model, subset, m, layer, cfg) for layer in range(model.num_layers)])
        for m in ("ig", "activation", "random")
    }
    enrichment = _motif_enrichment(model, trained_synthetic.split, labels)
    rnd = tables["random"]
    random_values = [
        _top_enrichment(pd.concat([rnd[rnd["seed"] == s].assign(label=c) for c in labels]), enrichment)
        for s in cfg["random"]["seeds"]
    ]
    for method in ("ig", "activation"):
        per_class = tables[method][tables[method]["label"].notna()]
        value = _top_enrichment(per_class, enrichment)
        assert value > max(random_values) + 0.05, (method, value, random_values)


@pytest.mark.parametrize("method", ["activation", "ig", "gradxact", "random"])
def test_score_job_runs_on_its_rule_params_alone(tmp_path, method):
    """The workflow passes a job only its rule's params (kneurons.settings): every method must run on
    that slice and give the scores and recorded settings it gives with the whole config."""
    from kneurons.config import validate_config
    from kneurons.settings import job_settings

    _, ckpt, _ = _score_job_inputs(tmp_path)
    cfg = validate_config(
        {"score": {"ig": {"steps": 3}, "random": {"seeds": [0, 1]}}, "ablate": {"random_seeds": [0]}}
    )
    params = job_settings("score_layers", cfg, method=method)
    whole = run_score_job(ckpt, tmp_path / "scoring_set.tsv", method, [1], cfg, tmp_path / "a.parquet")
    sliced = run_score_job(ckpt, tmp_path / "scoring_set.tsv", method, [1], params, tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(sliced, whole)
    assert (
        read_score_table(tmp_path / "b.parquet")[1]["settings"]
        == read_score_table(tmp_path / "a.parquet")[1]["settings"]
    )
