"""Ablation engine: selections, fills, the reuse-everything evaluator against the naive loop, job outputs."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.ablation import engine
from kneurons.ablation.engine import MAX_PADDING, _certify, default_masks_per_pass, evaluate_masks
from kneurons.ablation.fill import Fill, make_fill, mean_activations
from kneurons.ablation.masks import active, build_masks, filled_mask, layout_of
from kneurons.ablation.naive import evaluate_masks_naive
from kneurons.ablation.run import load_test_set, run_ablation
from kneurons.errors import ConfigError, InputError, ModelError
from kneurons.model.backends.base import POSITION, RESUME_POINTS
from kneurons.model.batching import token_budget_batches
from kneurons.model.classifier import (
    MODULE_TYPES,
    BackboneSpec,
    EsmClassifier,
    build_backbone,
    get_alphabet,
    tokenize,
)
from kneurons.ranking import NeuronLayout, global_top, normalise_per_module, score_vector, top_k_count
from kneurons.tables import row_keys, save_result

AA = "ACDEFGHIKLMNPQRSTVWY"
GRID = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1]


def tiny_model(seed: int = 0, layers: int = 2, dim: int = 16, classes: int = 3) -> EsmClassifier:
    torch.manual_seed(seed)
    return EsmClassifier(build_backbone(BackboneSpec("custom", layers, dim, 4)), classes).eval()


def random_sequences(n: int, seed: int = 0, lo: int = 8, hi: int = 30) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(AA), int(rng.integers(lo, hi)))) for _ in range(n)]


def score_table(
    layout: NeuronLayout, method: str = "activation", seed: int = 0, seeds=None, label_rows: bool = True
):
    """A score table in the scoring contract (random values); class-conditional rows to be ignored."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in seeds if seeds is not None else [None]:
        rows = [
            (layer, m, i)
            for (layer, m), n in zip(layout.blocks, layout.sizes, strict=False)
            for i in range(n)
        ]
        df = pd.DataFrame(rows, columns=["layer", "module", "neuron"])
        df["score"] = rng.random(len(df))
        df["label"] = pd.array([None] * len(df), dtype="string")
        df["seed"] = pd.array([s] * len(df), dtype="Int64")
        frames.append(df)
        if label_rows:
            cond = df.copy()
            cond["label"] = "1"
            cond["score"] = -1000.0  # would dominate any selection if not ignored
            frames.append(cond)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "method", method)
    return out


# -- selection ---------------------------------------------------------------------------------
def test_top_k_count_rounds_half_up_and_clips():
    assert [top_k_count(f, 64) for f in GRID] == [0, 1, 1, 3, 6, 13, 19, 32, 48, 64]
    assert top_k_count(0.5, 3) == 2 and top_k_count(1.0, 5) == 5 and top_k_count(0.0, 5) == 0


def test_preserve_and_suppress_are_complements_of_the_top_k():
    values = np.array([0.1, 5.0, -3.0, 2.0, 2.0, 0.0])
    filled_p, k = filled_mask(values, 0.5, "preserve")
    filled_s, k2 = filled_mask(values, 0.5, "suppress")
    assert k == k2 == 3
    # top 3: 5.0 (1), then the tie 2.0 at 3 and 4 (index order)
    assert filled_s.tolist() == [False, True, False, True, True, False]
    assert (filled_p == ~filled_s).all()


def test_normalisation_keeps_order_within_a_module_and_balances_scales():
    layout = NeuronLayout(((0, "q_proj"), (0, "k_proj")), (4, 4))
    raw = np.array([1, 2, 3, 4, 1000, 2000, 3000, 4000], dtype=float)
    for how in ("mean_abs", "max_abs"):
        norm = normalise_per_module(raw, layout, how)
        assert np.allclose(norm[:4], norm[4:])  # same shape, different scale -> same normalised scores
        assert (np.argsort(norm[:4]) == np.argsort(raw[:4])).all()
    assert (normalise_per_module(raw, layout, "none") == raw).all()
    # without normalisation k_proj takes the whole global top half
    top, n = global_top(raw, layout, 0.5, "none")
    assert n == 4 and top[4:].all() and not top[:4].any()


def test_score_vector_uses_global_rows_and_names_bad_tables():
    model = tiny_model()
    layout = layout_of(model)
    table = score_table(layout)
    vec = score_vector(table, layout, source="x.parquet")
    assert vec.shape == (layout.total,) and (vec >= 0).all()  # the -1000 class rows were ignored
    with pytest.raises(InputError, match=r"x\.parquet: 1 neuron\(s\) have no score"):
        score_vector(table.drop(index=3), layout, source="x.parquet")
    dup = pd.concat([table, table.iloc[[0]]])
    with pytest.raises(InputError, match="has 2 global score rows"):
        score_vector(dup, layout, source="x.parquet")
    bad = table.copy()
    bad.loc[5, "score"] = np.nan
    with pytest.raises(InputError, match="not finite"):
        score_vector(bad, layout, source="x.parquet")


# -- the engine --------------------------------------------------------------------------------
def random_masks(layout: NeuronLayout, n: int, seed: int = 0) -> list[dict]:
    """Masks over random subsets of modules with random units filled, plus the edge cases."""
    rng = np.random.default_rng(seed)
    masks: list[dict] = [{}, {b: np.ones(s, bool) for b, s in zip(layout.blocks, layout.sizes, strict=False)}]
    for _ in range(n):
        chosen = rng.choice(len(layout.blocks), size=int(rng.integers(1, 4)), replace=False)
        masks.append({layout.blocks[i]: rng.random(layout.sizes[i]) < rng.random() for i in chosen})
    masks.append(copy.deepcopy(masks[3]))  # a duplicate: dedup must map it back
    return masks


@pytest.mark.parametrize("fill_kind", ["zero", "mean", "pretrained"])
def test_fast_evaluation_equals_naive_loop(fill_kind):
    torch.set_num_threads(1)
    model = tiny_model(layers=3)
    layout = layout_of(model)
    seqs = random_sequences(23)
    if fill_kind == "zero":
        fill = Fill()
    elif fill_kind == "mean":
        fill = Fill(kind="mean", means=mean_activations(model, random_sequences(9, seed=5)))
    else:
        fill = Fill.from_reference(tiny_model(seed=7, layers=3).esm, layout)
    masks = random_masks(layout, 40)
    # small token budget: several batches with padding; the engine's tighter batches differ
    lengths = [len(s) for s in seqs]
    assert token_budget_batches(lengths, 200, max_padding=MAX_PADDING) != token_budget_batches(lengths, 200)
    naive = evaluate_masks_naive(model, seqs, masks, fill, token_budget=200)
    for per_pass in (1, 4):
        fast = evaluate_masks(model, seqs, masks, fill, token_budget=200, masks_per_pass=per_pass)
        assert (fast == naive).all()
    # the masks do change predictions (the comparison is not vacuous)
    assert (naive != naive[0]).any()


def test_near_ties_are_recomputed_on_the_naive_loops_batches():
    """``_certify`` redoes exactly the predictions within the margin, as the naive loop computes them."""
    torch.set_num_threads(1)
    model = tiny_model(layers=2)
    layout = layout_of(model)
    seqs = random_sequences(15, seed=2)
    masks = [active(m) for m in random_masks(layout, 6, seed=3)]
    reference = token_budget_batches([len(s) for s in seqs], 120)
    naive = evaluate_masks_naive(model, seqs, masks, token_budget=120)
    preds = naive.copy()
    margins = np.full(preds.shape, np.inf)
    wrong = (naive + 1) % 3  # what a flipped near-tie would look like
    preds[2, [0, 7]] = wrong[2, [0, 7]]
    margins[2, [0, 7]] = 0.0  # unsure: recomputed
    preds[4, 3] = wrong[4, 3]  # sure (margin inf): left as it is
    _certify(model, seqs, masks, preds, margins, reference, 120, Fill(), torch.device("cpu"), True)
    assert (preds[2] == naive[2]).all()
    assert preds[4, 3] == wrong[4, 3]
    preds[4, 3] = naive[4, 3]
    assert (preds == naive).all()


@pytest.mark.parametrize(("per_pass", "certified"), [(1, False), (3, True)])
def test_stacked_masks_are_certified_even_on_the_naive_loops_batches(monkeypatch, per_pass, certified):
    """Copies stacked in one pass are other matmul shapes: their near-ties are redone like other batches'."""
    calls = []
    real = engine._certify
    monkeypatch.setattr(engine, "_certify", lambda *a: (calls.append(a), real(*a)))
    model = tiny_model(layers=2)
    seqs = random_sequences(11, seed=4)
    masks = random_masks(layout_of(model), 8, seed=6)
    # max_padding=None: the engine runs the naive loop's own batches
    fast = evaluate_masks(model, seqs, masks, token_budget=150, masks_per_pass=per_pass, max_padding=None)
    assert (fast == evaluate_masks_naive(model, seqs, masks, token_budget=150)).all()
    assert bool(calls) == certified


def test_default_masks_per_pass_by_device():
    assert default_masks_per_pass("cpu") == 1
    assert default_masks_per_pass(torch.device("cuda")) == 16


def test_resume_points_replay_the_layer_bit_for_bit():
    model = tiny_model(layers=2)
    tokens = tokenize(random_sequences(5))
    with torch.no_grad():
        x, pm = model.embed(tokens)
        out, state = model.run_layer_with_states(0, x, pm)
        assert torch.equal(out, model.run_layers(x, pm, 0, 1))
        for pos in (0, 1, 2, 3):
            assert torch.equal(model.resume_layer(0, pos, state, 1), out)
        assert torch.equal(model.resume_layer(0, 3, state, 2), out.repeat(1, 2, 1))
        assert torch.equal(model.resume_layer(0, 0, state, 2), out.repeat(1, 2, 1))
    assert set(POSITION) == set(MODULE_TYPES)
    assert {model.position_of(m) for m in MODULE_TYPES} == set(range(len(RESUME_POINTS)))


@pytest.mark.parametrize("fill_kind", ["zero", "mean", "pretrained"])
def test_fill_matches_weight_surgery(fill_kind):
    """Filling unit i of a module equals editing row i of its weights.

    zero -> 0, mean -> bias = mean, pretrained -> reference row.
    """
    model = tiny_model(layers=2)
    layout = layout_of(model)
    seqs = random_sequences(17, seed=3)
    reference = tiny_model(seed=11, layers=2)
    means = mean_activations(model, random_sequences(8, seed=4))
    fill = {
        "zero": Fill(),
        "mean": Fill(kind="mean", means=means),
        "pretrained": Fill.from_reference(reference, layout),
    }[fill_kind]
    rng = np.random.default_rng(1)
    mask = {
        b: rng.random(s) < 0.5
        for b, s in zip(layout.blocks, layout.sizes, strict=False)
        if rng.random() < 0.6
    }
    edited = copy.deepcopy(model)
    with torch.no_grad():
        for (layer, m), filled in mask.items():
            lin = edited.module(layer, m)
            rows = torch.from_numpy(filled)
            if fill_kind == "pretrained":
                ref = reference.module(layer, m)
                lin.weight[rows] = ref.weight[rows]
                lin.bias[rows] = ref.bias[rows]
            else:
                lin.weight[rows] = 0.0
                lin.bias[rows] = 0.0 if fill_kind == "zero" else means[(layer, m)][rows]
    expected = evaluate_masks_naive(edited, seqs, [{}])[0]
    got = evaluate_masks(model, seqs, [mask], fill)[0]
    assert (got == expected).all()
    assert (evaluate_masks(model, seqs, [{}])[0] != got).any() or fill_kind == "pretrained"


def test_mean_activations_by_hand():
    model = tiny_model(layers=1)
    seqs = ["ACDEFG", "KLMNPQRSTV"]
    means = mean_activations(model, seqs, token_budget=8)  # one sequence per batch
    alphabet = get_alphabet()
    tokens = tokenize(seqs, alphabet)
    from kneurons.model.hooks import OutputRecorder

    with torch.no_grad(), OutputRecorder({"fc1": model.module(0, "fc1")}) as rec:
        model(tokens)
    out = rec.outputs["fc1"][0]  # (T, B, n), padded batch
    valid = tokens.ne(alphabet.padding_idx).T
    expected = out[valid].mean(0)
    assert torch.allclose(means[(0, "fc1")], expected, atol=1e-5)


def test_pretrained_fill_refused_for_random_init_model():
    model = tiny_model()
    with pytest.raises(ConfigError, match="random initialisation"):
        make_fill(
            "pretrained",
            model,
            {"meta": {"pretrained": False}},
            reference=lambda: pytest.fail("must not load"),
        )
    assert make_fill("zero", model, {"meta": {"pretrained": False}}).kind == "zero"


# -- masks from score tables and whole jobs -----------------------------------------------------
def test_build_masks_rows_and_selection():
    model = tiny_model(layers=2)
    layout = layout_of(model)
    table = score_table(layout, "random", seeds=[0, 1, 2])
    keys, masks = build_masks(
        table, layout, "random", "layer_module", GRID, ["preserve", "suppress"], seeds=[0, 2]
    )
    assert len(keys) == len(masks) == 2 * len(layout.blocks) * 2 * len(GRID)
    assert not keys.duplicated(["scope_name", "mode", "f", "seed"]).any()
    row = keys[
        (keys.scope_name == "L1.fc1") & (keys["mode"] == "suppress") & (keys.f == 0.1) & (keys.seed == 2)
    ]
    mask = masks[row.index[0]]
    assert list(mask) == [(1, "fc1")]
    vec = score_vector(table, layout, seed=2)[layout.slice((1, "fc1"))]
    k = top_k_count(0.1, len(vec))
    assert set(np.flatnonzero(mask[(1, "fc1")])) == set(np.argsort(-vec)[:k])
    assert int(row["n_filled"].iloc[0]) == k
    with pytest.raises(InputError, match=r"random seed\(s\) \[7\]"):
        build_masks(table, layout, "random", "global", GRID, ["preserve"], seeds=[7])
    keys_mt, masks_mt = build_masks(table, layout, "random", "module_type", [0.5], ["preserve"], seeds=[0])
    assert sorted(keys_mt.scope_name) == sorted(MODULE_TYPES)
    k_proj = masks_mt[keys_mt.index[keys_mt.scope_name == "k_proj"][0]]
    assert sorted(k_proj) == [(0, "k_proj"), (1, "k_proj")]


def test_run_ablation_table_and_predictions(tmp_path):
    model = tiny_model(layers=2)
    layout = layout_of(model)
    seqs = random_sequences(20, seed=2)
    y = np.random.default_rng(0).integers(0, 3, len(seqs))
    result = run_ablation(
        model,
        seqs,
        y,
        ["a", "b", "c"],
        score_table(layout),
        "activation",
        "global",
        GRID,
        fill=Fill(),
        accessions=[f"P{i}" for i in range(len(seqs))],
    )
    t = result.table
    assert len(t) == 2 * len(GRID)
    with torch.no_grad():
        intact = (model(tokenize(seqs)).argmax(1).numpy() == y).mean()
    full_rows = t[((t["mode"] == "preserve") & (t.f == 1)) | ((t["mode"] == "suppress") & (t.f == 0))]
    assert np.allclose(full_rows.accuracy, intact)
    assert np.isclose((result.full_pred == y).mean(), intact)
    assert np.allclose(t.accuracy, (result.preds == y[None, :]).mean(1))
    assert {"recall_a", "recall_b", "recall_c", "macro_f1", "n_scope", "n_selected", "fill"} <= set(t.columns)
    save_result(tmp_path / "g.tsv", tmp_path / "g.pred.npz", result)
    with np.load(tmp_path / "g.pred.npz") as npz:
        assert (npz["keys"] == row_keys(t)).all()
        assert (npz["pred"] == result.preds).all()


def test_load_test_set_names_line_of_unknown_label(tmp_path):
    path = tmp_path / "split.tsv"
    pd.DataFrame(
        {
            "accession": ["A", "B", "C"],
            "sequence": ["ACD", "EFG", "HIK"],
            "label": ["1", "2", "9"],
            "split": ["test", "train", "test"],
        }
    ).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError, match=r"split\.tsv: line 4: label '9'"):
        load_test_set(path, ["1", "2"])
    acc, seqs, y = load_test_set(path, ["1", "2", "9"])
    assert seqs == ["ACD", "HIK"]
    assert acc.tolist() == ["A", "C"] and y.tolist() == [0, 2]


def test_load_test_set_cap_is_stratified_and_seeded(tmp_path):
    path = tmp_path / "split.tsv"
    labels = ["1"] * 60 + ["2"] * 30 + ["3"] * 10
    pd.DataFrame(
        {
            "accession": [f"P{i}" for i in range(100)],
            "sequence": ["ACD"] * 100,
            "label": labels,
            "split": "test",
        }
    ).to_csv(path, sep="\t", index=False)
    acc, _, y = load_test_set(path, ["1", "2", "3"], max_sequences=20, seed=3)
    assert np.bincount(y).tolist() == [12, 6, 2]  # proportional to 60/30/10
    assert list(acc) == sorted(acc, key=lambda a: int(a[1:]))  # the split file's order
    again, _, _ = load_test_set(path, ["1", "2", "3"], max_sequences=20, seed=3)
    other, _, _ = load_test_set(path, ["1", "2", "3"], max_sequences=20, seed=4)
    assert (again == acc).all() and set(other) != set(acc)
    assert len(load_test_set(path, ["1", "2", "3"], max_sequences=500)[0]) == 100


def write_job_inputs(tmp_path, fill_kind: str) -> dict:
    """Checkpoint, split, scoring set and IG table of an ablation job; returns its config."""
    from kneurons.config import validate_config
    from kneurons.io import sha256_file
    from kneurons.model.checkpoint import save_classifier
    from kneurons.tables import write_score_table

    model = tiny_model(layers=2)
    labels = ["1", "2", "3"]
    save_classifier(
        tmp_path / "best.pt",
        model,
        BackboneSpec("custom", 2, 16, 4),
        labels,
        {"pretrained": fill_kind == "pretrained"},
    )
    seqs = random_sequences(30, seed=9)
    split = pd.DataFrame(
        {
            "accession": [f"P{i}" for i in range(30)],
            "sequence": seqs,
            "label": [labels[i % 3] for i in range(30)],
            "split": ["test" if i % 2 else "train" for i in range(30)],
        }
    )
    split.to_csv(tmp_path / "split.tsv", sep="\t", index=False)
    subset = split[split.split == "train"].assign(
        label_index=lambda d: d.label.map({lab: i for i, lab in enumerate(labels)})
    )
    subset[["accession", "sequence", "label", "label_index"]].to_csv(
        tmp_path / "scoring_set.tsv", sep="\t", index=False
    )
    meta = {"method": "ig", "checkpoint_sha256": sha256_file(tmp_path / "best.pt")}
    write_score_table(score_table(layout_of(model), "ig"), tmp_path / "ig.parquet", meta)
    cfg = validate_config({"ablate": {"fractions": [0, 0.5, 1], "scopes": ["module_type"]}})
    cfg["ablate"]["fills"] = [fill_kind]  # config validation refuses pretrained for a custom model
    return cfg


def job_files(tmp_path) -> tuple:
    """Positional file arguments of ``run_ablation_job`` (ig, module_type) on ``write_job_inputs``' files."""
    return (tmp_path / "best.pt", tmp_path / "split.tsv", tmp_path / "ig.parquet", "ig", "module_type")


@pytest.mark.parametrize("fill_kind", ["mean", "pretrained"])
def test_run_ablation_job_files_and_fills(tmp_path, fill_kind):
    from kneurons.jobs.ablate import run_ablation_job
    from kneurons.settings import job_settings
    from kneurons.tables import load_ablation

    cfg = write_job_inputs(tmp_path, fill_kind)
    loaded = []
    result = run_ablation_job(
        *job_files(tmp_path),
        job_settings("ablate", cfg),
        tmp_path / "t.tsv",
        tmp_path / "t.pred.npz",
        scoring_set_path=tmp_path / "scoring_set.tsv",
        reference_loader=lambda: loaded.append(1) or tiny_model(seed=5, layers=2).esm,
    )
    assert loaded == ([1] if fill_kind == "pretrained" else [])
    t = result.table
    assert len(t) == 6 * 2 * 3 and (t.fill == fill_kind).all() and (t.n_test == 15).all()
    data = load_ablation([tmp_path / "t.tsv"], [tmp_path / "t.pred.npz"])
    assert np.allclose(data.table.accuracy, data.correct.mean(1))


def test_pretrained_fill_refuses_other_weights_than_the_fine_tuned_ones(tmp_path):
    """The default reference loader reads model.checkpoint again: its sha256 must be best.pt's record."""
    import argparse

    from kneurons.io import sha256_file

    model = tiny_model(layers=2)
    backbone = tiny_model(seed=5, layers=2).esm
    state = {
        ("encoder." if k.startswith("lm_head") else "encoder.sentence_encoder.") + k: v
        for k, v in backbone.state_dict().items()
        if not k.startswith("contact_head.regression")
    }
    cfg = argparse.Namespace(
        encoder_layers=2, encoder_embed_dim=16, encoder_attention_heads=4, token_dropout=True
    )
    weights = tmp_path / "esm2_mine.pt"
    torch.save({"model": state, "cfg": {"model": cfg}}, weights)
    info = {"backbone": {"name": "custom"}, "meta": {"pretrained": True, "weights_sha256": "0" * 64}}
    model_cfg = {"checkpoint": str(weights), "download": False}
    with pytest.raises(
        ModelError,
        match=rf"the reference weights {weights} \(sha256 {sha256_file(weights)}\) are not the weights "
        rf"{tmp_path / 'best.pt'} was fine-tuned from \(sha256 0{{64}}\)",
    ):
        make_fill("pretrained", model, info, model_cfg, source=str(tmp_path / "best.pt"))
    info["meta"]["weights_sha256"] = sha256_file(weights)
    fill = make_fill("pretrained", model, info, model_cfg, source=str(tmp_path / "best.pt"))
    assert torch.equal(fill.reference[(1, "fc1")][0], backbone.layers[1].fc1.weight)


@pytest.mark.parametrize("download", [False, True])
def test_pretrained_reference_honours_model_download(tmp_path, monkeypatch, download):
    """The job's default reference loader passes ``model.download`` on (it used to download regardless)."""
    from kneurons.jobs.ablate import run_ablation_job
    from kneurons.model.backends.fair_esm import weights as fair_esm_weights

    cfg = write_job_inputs(tmp_path, "pretrained")
    cfg["model"]["download"] = download
    cfg["model"]["checkpoint"] = str(tmp_path / "esm2.pt")
    calls = []

    def loader(name, checkpoint=None, download=True, downloader=None):
        calls.append((name, checkpoint, download))
        return tiny_model(seed=5, layers=2).esm

    monkeypatch.setattr(fair_esm_weights, "load_pretrained_backbone", loader)
    result = run_ablation_job(*job_files(tmp_path), cfg, tmp_path / "t.tsv", tmp_path / "t.pred.npz")
    assert calls == [("custom", str(tmp_path / "esm2.pt"), download)]
    assert (result.table.fill == "pretrained").all()


def test_ablate_max_sequences_caps_an_external_set_as_it_caps_the_test_split(tmp_path):
    """The external set's ablation (rule ablate_external) evaluates a label-stratified subset of
    ``ablate.max_sequences`` proteins, the same one in every job of the set (drawn with the seed)."""
    from kneurons.jobs.ablate import run_ablation_job
    from kneurons.settings import job_settings
    from kneurons.tables import read_predictions, write_external_proteins

    cfg = write_job_inputs(tmp_path, "zero")
    ext = pd.DataFrame(
        {
            "accession": [f"E{i}" for i in range(24)],
            "sequence": random_sequences(24, seed=5),
            "label": ["1"] * 12 + ["2"] * 8 + ["3"] * 4,
            "identical_to_train": "False",
        }
    )
    write_external_proteins(ext, tmp_path / "ext.tsv")
    cfg["ablate"]["max_sequences"] = 6
    settings = job_settings("ablate_external", cfg)
    assert settings["ablate"]["max_sequences"] == 6
    args = (tmp_path / "best.pt", None, tmp_path / "ig.parquet", "ig", "global", settings)
    preds = []
    for name in ("a", "b"):
        run_ablation_job(
            *args, tmp_path / f"{name}.tsv", tmp_path / f"{name}.npz", external_path=tmp_path / "ext.tsv"
        )
        preds.append(read_predictions(tmp_path / f"{name}.npz"))
    _, _, _, y_true, accessions = preds[0]
    assert len(accessions) == 6 and np.bincount(y_true).tolist() == [3, 2, 1]  # 12:8:4, stratified
    assert np.array_equal(accessions, preds[1][4]) and set(accessions) <= set(ext["accession"])
    cfg["ablate"]["max_sequences"] = None  # no cap: every protein of the set
    run_ablation_job(
        *args[:5],
        job_settings("ablate_external", cfg),
        tmp_path / "all.tsv",
        tmp_path / "all.npz",
        external_path=tmp_path / "ext.tsv",
    )
    assert len(read_predictions(tmp_path / "all.npz")[4]) == 24


def test_random_baseline_per_seed_jobs_gather_into_the_one_job_files(tmp_path):
    """One job per random seed, gathered in seed order: the TSV of one job over all seeds, byte for
    byte, and the same predictions (the workflow's ablate_seed + gather_ablation_seeds)."""
    from kneurons.io import sha256_file
    from kneurons.jobs.ablate import run_ablation_job
    from kneurons.settings import job_settings
    from kneurons.tables import gather_results, read_predictions, write_score_table

    cfg = write_job_inputs(tmp_path, "zero")
    cfg["ablate"]["random_seeds"] = [3, 0, 7]
    model_files = job_files(tmp_path)[:2]
    meta = {"method": "random", "checkpoint_sha256": sha256_file(tmp_path / "best.pt")}
    layout = layout_of(tiny_model(layers=2))
    write_score_table(score_table(layout, "random", seeds=[0, 3, 7]), tmp_path / "random.parquet", meta)
    args = (*model_files, tmp_path / "random.parquet", "random", "global")
    # Every seed in one job, as ablate_external runs the random baseline (the ablate rule's params
    # carry no random seeds: it ablates the scored methods only).
    one_job = job_settings("ablate_external", cfg)
    assert (
        one_job["ablate"]["random_seeds"] == [3, 0, 7]
        and "random_seeds" not in job_settings("ablate", cfg)["ablate"]
    )
    run_ablation_job(*args, one_job, tmp_path / "one.tsv", tmp_path / "one.pred.npz")
    parts = []
    for seed in cfg["ablate"]["random_seeds"]:
        settings = job_settings("ablate_seed", cfg, seeds=str(seed))
        assert settings["ablate"]["random_seeds"] == [seed]
        part = (tmp_path / f"{seed}.tsv", tmp_path / f"{seed}.pred.npz")
        run_ablation_job(*args, settings, *part)
        parts.append(part)
    gather_results([p[0] for p in parts], [p[1] for p in parts], tmp_path / "g.tsv", tmp_path / "g.pred.npz")
    assert (tmp_path / "g.tsv").read_bytes() == (tmp_path / "one.tsv").read_bytes()
    gathered, one = read_predictions(tmp_path / "g.pred.npz"), read_predictions(tmp_path / "one.pred.npz")
    for a, b in zip(gathered, one, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    with pytest.raises(InputError, match=r"0\.pred\.npz: its rows do not match .*3\.tsv"):
        gather_results([parts[0][0]], [parts[1][1]], tmp_path / "x.tsv", tmp_path / "x.pred.npz")
