"""The ESM C backend (transformers' EsmcModel): the classifier API, resume points, the official
fused checkpoint layout and its neurons, loading, and the stages end to end on a tiny random ESM C."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from kneurons.errors import ModelError

transformers = pytest.importorskip("transformers", reason="the ESM C backend needs transformers")
pytest.importorskip("transformers.models.esmc", reason="this transformers has no ESM C")

from model_files import official_state_dict  # noqa: E402

from kneurons.ablation.engine import evaluate_masks  # noqa: E402
from kneurons.ablation.fill import Fill, mean_activations  # noqa: E402
from kneurons.ablation.masks import layout_of  # noqa: E402
from kneurons.ablation.naive import evaluate_masks_naive  # noqa: E402
from kneurons.characterise.activations import residue_activations  # noqa: E402
from kneurons.model.backends import backend_for  # noqa: E402
from kneurons.model.backends.base import MODULE_TYPES  # noqa: E402
from kneurons.model.backends.esmc.architecture import build_esmc_backbone, rebuild, swiglu_hidden  # noqa: E402
from kneurons.model.backends.esmc.backend import EsmcBackend  # noqa: E402
from kneurons.model.backends.esmc.load import esmc_from_official, is_esmc_checkpoint, load_esmc_backbone  # noqa: E402
from kneurons.model.classifier import EsmClassifier  # noqa: E402
from kneurons.model.hooks import OutputRecorder, mask_fn, module_output_hook, module_output_hooks  # noqa: E402
from kneurons.scoring.base import score_layer  # noqa: E402
from kneurons.scoring.ig import attribution_per_sequence  # noqa: E402
from kneurons.scoring.integration import integration_points  # noqa: E402
from kneurons.scoring.reference import captum_ig_per_sequence, module_output, target_at_scale  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Different lengths, so every batch carries padding.
SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "MKVLAAGIVG", "MSTNPKPQRKTKRNTNRRPQDVKFPGG", "GAVLIPFWMSX"]
GOLD = [0, 2, 1, 2]
LAYERS, DIM, HEADS = 2, 64, 4


def tiny(seed: int = 0, classes: int = 3, attention: str = "sdpa") -> EsmClassifier:
    """A 2-layer 64-dim ESM C classifier with random weights (a larger head spreads the classes)."""
    model = EsmClassifier(build_esmc_backbone(LAYERS, DIM, HEADS, seed=seed), classes, attention=attention)
    with torch.no_grad():
        torch.manual_seed(seed)
        model.head.weight.normal_(0, 0.3)
    return model.eval()


def random_sequences(n: int, seed: int = 0, lo: int = 8, hi: int = 30) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(rng.integers(lo, hi)))) for _ in range(n)]


# -- the official (esm package) layout ------------------------------------------------------------
def official_forward(sd: dict[str, torch.Tensor], tokens: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """The esm package's ESMC forward (layers/attention.py, blocks.py) transcribed: (B, T, d), final norm."""
    d = sd["embed.weight"].shape[1]
    n_layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.blocks.")})
    heads, scale = d // 64, math.sqrt(n_layers / 36)
    dh = d // heads
    seq_id = tokens != pad
    mask = (seq_id.unsqueeze(-1) == seq_id.unsqueeze(-2)).unsqueeze(1)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dh, 2, dtype=torch.float) / dh))
    freqs = torch.outer(torch.arange(tokens.shape[1], dtype=torch.float), inv_freq)
    cos, sin = freqs.cos(), freqs.sin()

    def rotary(t: torch.Tensor) -> torch.Tensor:  # (B, T, H, dh), GPT-NeoX (non-interleaved) halves
        c, s = torch.cat([cos, cos], -1)[:, None], torch.cat([sin, sin], -1)[:, None]
        t1, t2 = t.chunk(2, dim=-1)
        return t * c + torch.cat([-t2, t1], -1) * s

    x = F.embedding(tokens, sd["embed.weight"])
    for i in range(n_layers):
        p = f"transformer.blocks.{i}."
        qkv = F.linear(
            F.layer_norm(x, (d,), sd[p + "attn.layernorm_qkv.0.weight"], sd[p + "attn.layernorm_qkv.0.bias"]),
            sd[p + "attn.layernorm_qkv.1.weight"],
        )
        q, k, v = qkv.chunk(3, dim=-1)
        q = F.layer_norm(q, (d,), sd[p + "attn.q_ln.weight"])
        k = F.layer_norm(k, (d,), sd[p + "attn.k_ln.weight"])
        q, k = (rotary(t.unflatten(-1, (heads, dh))).transpose(1, 2) for t in (q, k))
        v = v.unflatten(-1, (heads, dh)).transpose(1, 2)
        ctx = F.scaled_dot_product_attention(q, k, v, mask).transpose(1, 2).flatten(-2)
        x = x + F.linear(ctx, sd[p + "attn.out_proj.weight"]) / scale
        y = F.linear(
            F.layer_norm(x, (d,), sd[p + "ffn.0.weight"], sd[p + "ffn.0.bias"]), sd[p + "ffn.1.weight"]
        )
        x1, x2 = y.chunk(2, dim=-1)
        x = x + F.linear(F.silu(x1) * x2, sd[p + "ffn.3.weight"]) / scale
    return F.layer_norm(x, (d,), sd["transformer.norm.weight"])


def classifier_from_official(sd: dict[str, torch.Tensor], head_seed: int = 0) -> EsmClassifier:
    config, state = esmc_from_official(sd)
    backbone = transformers.EsmcModel(config)
    backbone.load_state_dict(state, strict=True)
    torch.manual_seed(head_seed)
    model = EsmClassifier(backbone, 3).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.3)
    return model


# -- the classifier API ---------------------------------------------------------------------------
def test_tokens_are_esmc_tokenizers():
    model = tiny()
    tokenizer = transformers.EsmcTokenizer()
    want = tokenizer(SEQS, padding=True, return_tensors="pt")["input_ids"]
    tokens = model.tokenize(SEQS)
    assert torch.equal(tokens, want)
    assert model.padding_idx == tokenizer.pad_token_id == 1
    residues = model.backend.residue_mask(tokens)
    assert residues.sum(1).tolist() == [len(s) for s in SEQS]


@pytest.mark.parametrize("attention", ["sdpa", "reference"])
def test_forward_equals_esmc_model_pooled_by_hand(attention):
    model = tiny(attention=attention)
    assert isinstance(model.backend, EsmcBackend) and model.batch_dim == 0
    tokens = model.tokenize(SEQS)
    with torch.no_grad():
        hidden = model.esm(input_ids=tokens, attention_mask=tokens.ne(1).long()).last_hidden_state
        keep = model.backend.residue_mask(tokens).unsqueeze(-1).float()
        want = model.head((hidden * keep).sum(1) / keep.sum(1))
        got = model(tokens)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert (got.argmax(1) != got.argmax(1)[0]).any()  # the classes are not all the same


def test_resume_points_replay_the_layer_bit_for_bit():
    model = tiny()
    tokens = model.tokenize(random_sequences(5))
    with torch.no_grad():
        x, pm = model.embed(tokens)
        assert pm is not None
        for layer in range(LAYERS):
            out, state = model.run_layer_with_states(layer, x, pm)
            assert torch.equal(out, model.run_layers(x, pm, layer, layer + 1))
            for pos in range(4):
                assert torch.equal(model.resume_layer(layer, pos, state, 1), out)
                assert torch.equal(model.resume_layer(layer, pos, state, 2), out.repeat(2, 1, 1))
            x = out


@pytest.mark.parametrize("module_type", MODULE_TYPES)
def test_resume_under_a_mask_equals_the_masked_layer(module_type):
    """States cached with a mask on: resuming at or before the module gives the masked layer's output."""
    model = tiny()
    tokens = model.tokenize(random_sequences(4, seed=1))
    n = model.neuron_count(module_type)
    keep = (torch.arange(n) % 3 != 0).float()
    with torch.no_grad():
        x, pm = model.embed(tokens)
        x = model.run_layers(x, pm, 0, 1)
        intact = model.run_layers(x, pm, 1, 2)
        with module_output_hook(model.module(1, module_type), mask_fn(keep)):
            out, state = model.run_layer_with_states(1, x, pm)
            assert not torch.equal(out, intact)
            for pos in range(model.position_of(module_type) + 1):
                assert torch.equal(model.resume_layer(1, pos, state, 2), out.repeat(2, 1, 1))


def test_hook_points_see_time_first_outputs_and_fc1_is_the_gated_hidden_layer():
    model = tiny()
    tokens = model.tokenize(SEQS)
    blk = model.esm.layers[0]
    with torch.no_grad(), OutputRecorder({t: model.module(0, t) for t in MODULE_TYPES}) as rec:
        x, pm = model.embed(tokens)
        out, state = model.run_layer_with_states(0, x, pm)
        normed = blk.input_layernorm(x)
        mlp_in = blk.post_attention_layernorm(state["h"])
        want = {
            "q_proj": blk.self_attn.q_proj(normed),
            "k_proj": blk.self_attn.k_proj(normed),
            "v_proj": blk.self_attn.v_proj(normed),
            "out_proj": blk.self_attn.o_proj(state["ctx"]),
            "fc1": F.silu(blk.mlp.gate_proj(mlp_in)) * blk.mlp.up_proj(mlp_in),
            "fc2": blk.mlp.down_proj(state["g"]),
        }
    for t in MODULE_TYPES:
        got = rec.outputs[t][0]
        assert got.shape == (tokens.shape[1], len(SEQS), model.neuron_count(t))  # (T, B, n)
        torch.testing.assert_close(got, want[t].transpose(0, 1), rtol=0, atol=1e-6)
    assert model.neuron_count("fc1") == swiglu_hidden(DIM) == 256
    assert {model.neuron_count(t) for t in ("q_proj", "k_proj", "v_proj", "out_proj", "fc2")} == {DIM}


# -- the official layout: conversion and which neuron is which ------------------------------------
def test_official_conversion_equals_the_esm_package_forward():
    sd = official_state_dict()
    config, _ = esmc_from_official(sd)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (LAYERS, DIM, 1)
    model = classifier_from_official(sd)
    tokens = model.tokenize(SEQS)
    with torch.no_grad():
        got = model.esm(input_ids=tokens, attention_mask=tokens.ne(1).long()).last_hidden_state
        want = official_forward(sd, tokens)
    real = tokens.ne(1)
    torch.testing.assert_close(got[real], want[real], rtol=0, atol=2e-5)
    # The conversion is not vacuous: swapping q and k (or gate and up) changes the output.
    for key, chunks in (("attn.layernorm_qkv.1.weight", 3), ("ffn.1.weight", 2)):
        bad = dict(sd)
        for i in range(LAYERS):
            parts = sd[f"transformer.blocks.{i}.{key}"].chunk(chunks)
            bad[f"transformer.blocks.{i}.{key}"] = torch.cat([parts[1], parts[0], *parts[2:]])
        with torch.no_grad():
            wrong = official_forward(bad, tokens)
        assert (wrong[real] - want[real]).abs().max() > 1e-2


def _zeroed(sd: dict, key: str, row: int | None = None, col: int | None = None) -> dict:
    out = dict(sd)
    w = sd[key].clone()
    if row is not None:
        w[row] = 0
    if col is not None:
        w[:, col] = 0
    out[key] = w
    return out


@pytest.mark.parametrize(
    ("module_type", "neuron", "key", "row", "col"),
    [
        ("q_proj", 5, "attn.layernorm_qkv.1.weight", 5, None),
        ("k_proj", 7, "attn.layernorm_qkv.1.weight", DIM + 7, None),
        ("v_proj", 11, "attn.layernorm_qkv.1.weight", 2 * DIM + 11, None),
        ("out_proj", 3, "attn.out_proj.weight", 3, None),
        ("fc1", 9, "ffn.3.weight", None, 9),  # the gated unit is down_proj's input column
        ("fc1", 9, "ffn.1.weight", 9, None),  # ... and silu(gate) = 0: the gate half's row
        ("fc1", 9, "ffn.1.weight", 256 + 9, None),  # ... and up = 0: the up half's row
        ("fc2", 13, "ffn.3.weight", 13, None),
    ],
)
def test_masking_a_neuron_is_zeroing_its_row_of_the_fused_weight(module_type, neuron, key, row, col):
    layer = 1
    sd = official_state_dict()
    model = classifier_from_official(sd)
    edited = classifier_from_official(_zeroed(sd, f"transformer.blocks.{layer}.{key}", row, col))
    tokens = model.tokenize(SEQS)
    keep = torch.ones(model.neuron_count(module_type))
    keep[neuron] = 0
    with torch.no_grad():
        with module_output_hook(model.module(layer, module_type), mask_fn(keep)):
            masked = model(tokens)
        intact, surgery = model(tokens), edited(tokens)
    assert not torch.equal(masked, intact)
    assert torch.equal(masked, surgery)


# -- loading --------------------------------------------------------------------------------------
def test_load_official_pth_and_snapshots(tmp_path):
    sd = official_state_dict(seed=3)
    pth = tmp_path / "esmc_tiny_v0.pth"
    torch.save(sd, pth)
    assert is_esmc_checkpoint(pth)
    from_pth = load_esmc_backbone(pth)
    tokens = EsmcBackend(from_pth).tokenize(SEQS)
    real = tokens.ne(1)
    with torch.no_grad():
        ref = from_pth(input_ids=tokens, attention_mask=real.long()).last_hidden_state
        torch.testing.assert_close(ref[real], official_forward(sd, tokens)[real], rtol=0, atol=2e-5)
    for cls in (
        transformers.EsmcModel,
        transformers.EsmcForMaskedLM,
        transformers.EsmcForSequenceClassification,
    ):
        snap = cls(from_pth.config)
        base = snap if cls is transformers.EsmcModel else snap.esmc
        base.load_state_dict(from_pth.state_dict())
        folder = tmp_path / cls.__name__
        snap.save_pretrained(folder)
        assert is_esmc_checkpoint(folder)
        loaded = load_esmc_backbone(folder)
        assert isinstance(loaded, transformers.EsmcModel)
        with torch.no_grad():
            got = loaded(input_ids=tokens, attention_mask=real.long()).last_hidden_state
        assert torch.equal(got, ref), cls.__name__


def test_load_refuses_what_is_not_esmc(tmp_path):
    sd = official_state_dict()
    bad = dict(sd) | {"transformer.blocks.0.attn.layernorm_qkv.1.bias": torch.zeros(3 * DIM)}
    with pytest.raises(ModelError, match="does not know"):
        esmc_from_official(bad)
    missing = {k: v for k, v in sd.items() if not k.endswith("q_ln.weight")}
    with pytest.raises(ModelError, match="missing .*q_ln"):
        esmc_from_official(missing)
    with pytest.raises(ModelError, match="not an official ESM C"):
        esmc_from_official({"esm.embed_tokens.weight": torch.zeros(3)})
    folder = tmp_path / "esm2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "esm"}))
    assert not is_esmc_checkpoint(folder)
    with pytest.raises(ModelError, match="not 'esmc'"):
        load_esmc_backbone(folder)
    with pytest.raises(ModelError, match="does not exist"):
        load_esmc_backbone(tmp_path / "nothing.pth")


def test_describe_and_rebuild_round_trip(tmp_path):
    model = tiny(seed=2)
    desc = model.backend.describe()
    assert (desc["backend"], desc["num_layers"], desc["embed_dim"], desc["attention_heads"]) == (
        "esmc",
        2,
        64,
        4,
    )
    path = tmp_path / "desc.pt"
    torch.save({"backbone": json.loads(json.dumps(desc)), "state": model.esm.state_dict()}, path)
    payload = torch.load(path, weights_only=True)
    backbone = rebuild(payload["backbone"])
    backbone.load_state_dict(payload["state"])
    again = EsmClassifier(backbone, 3).eval()
    again.head.load_state_dict(model.head.state_dict())
    tokens = model.tokenize(SEQS)
    with torch.no_grad():
        assert torch.equal(again(tokens), model(tokens))
    with pytest.raises(ModelError, match="not an ESM C"):
        rebuild({"backend": "fair-esm"})


def test_missing_transformers_is_one_clear_error(monkeypatch):
    from kneurons.model.classifier import BackboneSpec, build_backbone

    fair = build_backbone(BackboneSpec("custom", 1, 16, 4))
    for name in [m for m in sys.modules if m == "transformers" or m.startswith("transformers.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(ModelError, match=r"pip install 'kneurons\[esmc\]'"):
        build_esmc_backbone(1, 64, 1)
    with pytest.raises(ModelError, match=r"pip install 'kneurons\[esmc\]'"):
        load_esmc_backbone("whatever.pth")
    # fair-esm models are untouched by the missing library
    assert backend_for(fair).name == "fair-esm"
    assert not EsmcBackend.accepts(fair)


# -- the stages end to end ------------------------------------------------------------------------
def _score_cfg() -> dict:
    return {
        "token_budget": 4096,
        "bf16": True,
        "split": "train",
        "max_sequences": None,
        "activation": {"reduce": "abs_mean", "class_conditional": False},
        "ig": {"steps": 4, "method": "riemann_right", "target": "prob", "class_conditional": True},
        "random": {"seeds": [0, 1]},
    }


@pytest.mark.parametrize("method", ["activation", "ig", "gradxact", "random"])
def test_score_layer_tables(method):
    model = tiny()
    subset = pd.DataFrame({"sequence": SEQS, "label": [str(g) for g in GOLD], "label_index": GOLD})
    table = score_layer(model, subset, method, 1, _score_cfg())
    overall = table[table["label"].isna()] if "label" in table else table
    if "seed" in overall and overall["seed"].notna().any():  # random: one table per seed
        overall = overall[overall["seed"] == overall["seed"].iloc[0]]
    counts = overall.groupby("module").size().to_dict()
    assert counts == {t: model.neuron_count(t) for t in MODULE_TYPES}
    assert np.isfinite(overall["score"]).all() and overall["score"].abs().max() > 0


def test_activation_scores_by_hand():
    model = tiny()
    table = score_layer(
        model, pd.DataFrame({"sequence": SEQS, "label": "a", "label_index": 0}), "activation", 0, _score_cfg()
    )
    tokens = model.tokenize(SEQS)
    for t in ("k_proj", "fc1"):
        out = module_output(model, tokens, 0, t)  # (B, T, n)
        want = np.mean([out[i, : len(s) + 2].abs().mean(0).numpy() for i, s in enumerate(SEQS)], axis=0)
        got = table[(table["module"] == t)].sort_values("neuron")["score"].to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def double_model() -> EsmClassifier:
    return tiny(seed=1).double()


@pytest.mark.parametrize(("module_type", "steps"), [("v_proj", 16), ("fc1", 16), ("fc2", 16), ("k_proj", 64)])
def test_ig_is_complete_and_equals_captum(double_model, module_type, steps):
    """Sum of attributions = F(1) - F(0). q/k need many points: their QK-LayerNorm makes F flat in
    alpha except close to 0 (LayerNorm(alpha k) = LayerNorm(k) once alpha^2 var(k) >> eps)."""
    model, layer = double_model, 0
    tokens, gold = model.tokenize(SEQS), torch.tensor(GOLD)
    alphas, weights = integration_points(steps, "gausslegendre")
    ours = attribution_per_sequence(
        model, SEQS, GOLD, layer, [module_type], alphas, weights, "prob", dtype=torch.float64
    )[module_type]
    gap = (
        target_at_scale(model, tokens, gold, layer, module_type, 1.0)
        - target_at_scale(model, tokens, gold, layer, module_type, 0.0)
    ).numpy()
    assert np.abs(gap).max() > 0.05
    np.testing.assert_allclose(ours.sum(1), gap, rtol=0, atol=1e-3 * np.abs(gap).max())
    alphas, weights = integration_points(4, "riemann_right")
    ours = attribution_per_sequence(
        model, SEQS, GOLD, layer, [module_type], alphas, weights, "prob", dtype=torch.float64
    )[module_type]
    ref = captum_ig_per_sequence(model, tokens, gold, layer, module_type, 4, "riemann_right").numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-12)


def test_ig_gives_query_and_key_a_pass_each(double_model):
    """With QK-LayerNorm, scaling q is not scaling k (the premise of the shared pass): no sharing."""
    model, tokens, gold = double_model, double_model.tokenize(SEQS), torch.tensor(GOLD)
    assert not model.qk_bilinear
    at_half = {m: target_at_scale(model, tokens, gold, 1, m, 0.01) for m in ("q_proj", "k_proj")}
    assert (at_half["q_proj"] - at_half["k_proj"]).abs().max() > 1e-4
    alphas, weights = integration_points(4, "riemann_right")
    kw = {"alphas": alphas, "weights": weights, "dtype": torch.float64}
    both = attribution_per_sequence(model, SEQS, GOLD, 1, ["q_proj", "k_proj"], **kw)
    for m in ("q_proj", "k_proj"):
        ref = captum_ig_per_sequence(model, tokens, gold, 1, m, 4, "riemann_right").numpy()
        np.testing.assert_allclose(both[m], ref, rtol=1e-6, atol=1e-12)


def _random_masks(layout, n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    masks: list[dict] = [{}]
    for _ in range(n):
        chosen = rng.choice(len(layout.blocks), size=int(rng.integers(1, 4)), replace=False)
        masks.append({layout.blocks[i]: rng.random(layout.sizes[i]) < rng.random() for i in chosen})
    return masks


@pytest.mark.parametrize("fill_kind", ["zero", "mean"])
def test_ablation_engine_equals_naive_loop(fill_kind):
    model = tiny(seed=4)
    layout = layout_of(model)
    assert list(layout.sizes) == [model.neuron_count(b[1]) for b in layout.blocks]
    seqs = random_sequences(17, seed=2)
    fill = (
        Fill()
        if fill_kind == "zero"
        else Fill(kind="mean", means=mean_activations(model, random_sequences(6, seed=5)))
    )
    masks = _random_masks(layout, 30)
    naive = evaluate_masks_naive(model, seqs, masks, fill, token_budget=200)
    for per_pass in (1, 4):
        fast = evaluate_masks(model, seqs, masks, fill, token_budget=200, masks_per_pass=per_pass)
        assert (fast == naive).all()
    assert (naive != naive[0]).any()


def test_pretrained_fill_names_the_gated_layer():
    model = tiny()
    with pytest.raises(ModelError, match="not the output of one linear"):
        Fill.from_reference(tiny(seed=9).esm, layout_of(model))


def test_residue_activations_equal_module_outputs():
    model = tiny()
    neurons = pd.DataFrame({"layer": [1, 0, 0], "module": ["fc1", "q_proj", "fc2"], "neuron": [5, 3, 7]})
    acts = residue_activations(model, SEQS, neurons, token_budget=40)
    tokens = model.tokenize(SEQS)
    for col, (layer, module, neuron) in enumerate(neurons.itertuples(index=False)):
        out = module_output(model, tokens, layer, module)
        for i, s in enumerate(SEQS):
            assert acts[i].shape == (len(s), 3)
            np.testing.assert_allclose(acts[i][:, col], out[i, 1 : 1 + len(s), neuron].numpy(), atol=1e-5)


def test_masks_on_q_and_k_of_one_layer_fire_together():
    """q and k of a layer masked at once (the shared layer-input resume point) equal both weight edits."""
    sd = official_state_dict(seed=5)
    model = classifier_from_official(sd)
    fused = "transformer.blocks.0.attn.layernorm_qkv.1.weight"
    edited = classifier_from_official(_zeroed(_zeroed(sd, fused, row=2), fused, row=DIM + 4))
    keep_q, keep_k = torch.ones(DIM), torch.ones(DIM)
    keep_q[2], keep_k[4] = 0, 0
    tokens = model.tokenize(SEQS)
    hooks = {model.module(0, "q_proj"): mask_fn(keep_q), model.module(0, "k_proj"): mask_fn(keep_k)}
    with torch.no_grad(), module_output_hooks(hooks):
        masked = model(tokens)
    with torch.no_grad():
        assert torch.equal(masked, edited(tokens))


def test_errors_of_an_official_file_name_the_file(tmp_path):
    """Each way an official ESM C file can be wrong is a ModelError naming the file (a missing
    ``ffn.3.weight`` was a bare KeyError); weights with NaN or inf are refused, naming the tensor."""
    sd = official_state_dict()
    block0 = "transformer.blocks.0."
    wide = official_state_dict(d=96)  # 96 is not a multiple of the 64-dim heads
    nan = sd[block0 + "ffn.1.weight"].clone().fill_(float("nan"))
    inf = sd["embed.weight"].clone().fill_(float("inf"))
    cases = {
        "missing ffn.3.weight": (
            {k: v for k, v in sd.items() if k != block0 + "ffn.3.weight"},
            r"missing .*ffn\.3",
        ),
        "missing key": ({k: v for k, v in sd.items() if not k.endswith("q_ln.weight")}, r"missing .*q_ln"),
        "wrong qkv shape": (
            sd | {block0 + "attn.layernorm_qkv.1.weight": torch.zeros(2 * DIM, DIM)},
            r"\(128, 64\)",
        ),
        "width": (wide, "width 96 is not a multiple"),
        "missing block": (
            {k: v for k, v in sd.items() if not k.startswith(block0)},
            r"blocks \[1\] are not 0",
        ),
        "extra key": (sd | {block0 + "attn.layernorm_qkv.1.bias": torch.zeros(3 * DIM)}, "does not know"),
        "NaN": (sd | {block0 + "ffn.1.weight": nan}, r"tensor transformer\.blocks\.0\.ffn\.1\.weight .* NaN"),
        "inf": (sd | {"embed.weight": inf}, r"tensor embed\.weight .* inf"),
    }
    for what, (state, message) in cases.items():
        path = tmp_path / f"{what.replace(' ', '_')}.pth"
        torch.save(state, path)
        with pytest.raises(ModelError, match=message) as err:
            load_esmc_backbone(path)
        assert str(path) in str(err.value), (what, str(err.value))


def test_a_snapshot_with_nan_weights_or_without_config_is_refused_naming_what(tmp_path):
    model = transformers.EsmcModel(esmc_from_official(official_state_dict())[0])
    with torch.no_grad():
        model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan")
    with pytest.raises(
        ModelError, match=r"model\.safetensors: tensor layers\.1\.mlp\.down_proj\.weight .* 1 NaN"
    ):
        load_esmc_backbone(tmp_path / "nan")
    (tmp_path / "no_config").mkdir()
    (tmp_path / "no_config" / "model.safetensors").write_bytes(b"")
    with pytest.raises(
        ModelError, match=r"no_config is a directory without config\.json: .*holds: model\.safetensors\)"
    ):
        load_esmc_backbone(tmp_path / "no_config")


def test_mask_tokens_are_esmc_tokenizers_mask():
    """``<mask>`` reads as transformers' EsmcTokenizer reads it (id 32); ``_`` is the same mask, as the
    esm package's tokenize_sequence reads it (it replaces ``_`` by ``<mask>`` before encoding)."""
    seqs = ["MK<mask>TAYIAK", "<mask>G<mask>", "MKT_AY__K", "A<mas>C"]
    tokenizer = transformers.EsmcTokenizer()
    tokens = tiny().tokenize(seqs)
    want = tokenizer([s.replace("_", "<mask>") for s in seqs], padding=True, return_tensors="pt")["input_ids"]
    assert torch.equal(tokens, want)
    assert tokenizer.mask_token_id == 32 and int((tokens == 32).sum()) == 6
    assert (tokens[3, 2:7] == tokenizer.unk_token_id).all()  # "<mas>" is no token: five unknown characters
