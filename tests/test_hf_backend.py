"""The Hugging Face ESM-2 backend against fair-esm on the same weights.

Every model here is built with fair-esm (random weights, layer norms and biases perturbed so that
no parameter sits at its trivial init), converted to an HF snapshot directory and loaded back by
the HF backend: logits, activation and IG score tables and ablation predictions must agree with
fair-esm's; resume points must replay an ``EsmLayer`` exactly; snapshots in the other HF
spellings and the offline hub cache must load; a missing transformers must say what to install.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.ablation.engine import evaluate_masks
from kneurons.ablation.fill import Fill, mean_activations
from kneurons.ablation.masks import build_masks, layout_of
from kneurons.config import model_shape, validate_config
from kneurons.errors import ConfigError, ModelError
from kneurons.model.backends import resolve_backend
from kneurons.model.backends.fair_esm.weights import load_esm_checkpoint
from kneurons.model.backends.hf.architecture import require_transformers
from kneurons.model.backends.hf.backend import HfEsmBackend
from kneurons.model.backends.hf.convert import (
    fair_esm_to_hf,
    hf_to_fair_esm,
    write_fair_esm,
    write_hf_snapshot,
)
from kneurons.model.backends.hf.load import load_snapshot
from kneurons.model.checkpoint import load_classifier, save_classifier
from kneurons.model.classifier import MODULE_TYPES, BackboneSpec, EsmClassifier, build_backbone, get_alphabet
from kneurons.model.loading import build_classifier, load_backbone
from kneurons.schema import with_defaults
from kneurons.scoring.base import score_layer

transformers = pytest.importorskip("transformers")

AA = "ACDEFGHIKLMNPQRSTVWY"
#: Lengths differ so every batch is padded; one sequence carries a <mask> (token dropout's rescaling).
SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "MKA<mask>LLV", "ACDEFGHIKLMNPQRSTVWYACDEFGH", "GGSW"]


def random_sequences(n: int, seed: int = 0, lo: int = 6, hi: int = 24) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(AA), int(rng.integers(lo, hi)))) for _ in range(n)]


def fair_backbone(layers: int = 2, dim: int = 32, heads: int = 4, seed: int = 0) -> torch.nn.Module:
    """A fair-esm ESM2 whose layer norms and biases are not at their init (so a swapped tensor shows)."""
    torch.manual_seed(seed)
    fe = build_backbone(BackboneSpec("custom", layers, dim, heads))
    with torch.no_grad():
        for name, p in fe.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return fe.eval()


def snapshot_of(fe: torch.nn.Module, dest) -> object:
    """``fe`` written as an HF snapshot directory (EsmForMaskedLM keys, config.json, vocab.txt)."""
    state, config = fair_esm_to_hf(fe.state_dict(), fe.attention_heads, bool(fe.token_dropout))
    return write_hf_snapshot(dest, state, config)


def classifier_pair(fe, snapshot, attention: str = "sdpa", classes: int = 3, pooling: str = "mean"):
    """A fair-esm and an HF classifier over the same backbone weights and the same head."""
    torch.manual_seed(1)
    a = EsmClassifier(fe, classes, pooling=pooling, attention=attention).eval()
    b = EsmClassifier(load_snapshot(snapshot), classes, pooling=pooling, attention=attention).eval()
    b.head.load_state_dict(a.head.state_dict())
    return a, b


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3-layer 32-dim fair-esm backbone and its HF snapshot directory."""
    torch.set_num_threads(1)
    fe = fair_backbone(layers=3)
    return fe, snapshot_of(fe, tmp_path_factory.mktemp("hf") / "snap")


def assert_close_rel(a: np.ndarray, b: np.ndarray, rtol: float = 1e-5) -> None:
    scale = max(float(np.abs(a).max()), 1e-12)
    assert np.abs(a - b).max() <= rtol * scale, (np.abs(a - b).max(), scale)


# -- tokens ------------------------------------------------------------------------------------
def test_hf_vocabulary_is_the_fair_esm_alphabet_and_tokenizes_alike(tiny):
    from transformers import EsmTokenizer
    from transformers.models.esm.configuration_esm import get_default_vocab_list

    _, snapshot = tiny
    alphabet = get_alphabet()
    assert list(get_default_vocab_list()) == list(alphabet.all_toks)
    assert (alphabet.cls_idx, alphabet.padding_idx, alphabet.eos_idx, alphabet.mask_idx) == (0, 1, 2, 32)
    hf_tokens = EsmTokenizer(str(snapshot / "vocab.txt"))(SEQS, padding=True)["input_ids"]
    _, b = classifier_pair(tiny[0], snapshot)
    assert b.tokenize(SEQS).tolist() == hf_tokens
    assert isinstance(b.backend, HfEsmBackend) and b.batch_dim == 0


# -- the forward pass --------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["sdpa", "reference"])
@pytest.mark.parametrize("pooling", ["mean", "bos"])
def test_logits_equal_fair_esm_on_padded_batches(tiny, attention, pooling):
    a, b = classifier_pair(*tiny, attention=attention, pooling=pooling)
    tokens = a.tokenize(SEQS)
    with torch.no_grad():
        la, lb = a(tokens), b(tokens)
        alone = b(b.tokenize(SEQS[:1]))
    assert (tokens == a.padding_idx).any() and (tokens == get_alphabet().mask_idx).any()
    assert torch.allclose(la, lb, rtol=0, atol=1e-5), (la - lb).abs().max()
    assert torch.allclose(alone[0], lb[0], atol=1e-5)  # padding partners do not leak in
    # A changed key weight changes the HF logits: the comparison is not vacuous.
    with torch.no_grad():
        b.module(0, "k_proj").weight[0, 0] += 1.0
        assert not torch.allclose(b(tokens), la, atol=1e-5)


def test_hook_points_show_the_hf_outputs_time_first_like_fair_esm(tiny):
    a, b = classifier_pair(*tiny)
    tokens = a.tokenize(SEQS)
    seen: dict[str, list[torch.Tensor]] = {"a": [], "b": []}
    for key, model in (("a", a), ("b", b)):
        handles = [
            model.module(1, t).register_forward_hook(lambda _m, _i, out, k=key: seen[k].append(out.clone()))
            for t in MODULE_TYPES
        ]
        with torch.no_grad():
            model(tokens)
        for h in handles:
            h.remove()
    for t, x, y in zip(MODULE_TYPES, seen["a"], seen["b"], strict=True):
        assert x.shape == y.shape == (tokens.shape[1], tokens.shape[0], b.neuron_count(t)), t
        # fair-esm scales q_proj's output in place after its hook: compare its token-wise values
        assert torch.allclose(x, y, atol=1e-5), t
    assert [b.neuron_count(t) for t in MODULE_TYPES] == [a.neuron_count(t) for t in MODULE_TYPES]


@pytest.mark.parametrize("attention", ["sdpa", "reference"])
def test_resume_from_each_point_equals_the_plain_layer(tiny, attention):
    _, b = classifier_pair(*tiny, attention=attention)
    tokens = b.tokenize(SEQS)
    with torch.no_grad():
        x, pm = b.embed(tokens)
        x = b.run_layers(x, pm, 0, 1)
        plain = b.run_layers(x, pm, 1, 2)
        out, state = b.run_layer_with_states(1, x, pm)
        assert torch.equal(out, plain)
        for position in range(len(b.RESUME_POINTS)):
            assert torch.equal(b.resume_layer(1, position, state), plain), position
            assert torch.equal(b.resume_layer(1, position, state, copies=3), b.repeat_stream(plain, 3)), (
                position
            )


def test_masks_fire_when_resuming_inside_a_layer(tiny):
    _, b = classifier_pair(*tiny)
    tokens = b.tokenize(SEQS)
    with torch.no_grad():
        x, pm = b.embed(tokens)
        _, state = b.run_layer_with_states(0, x, pm)
        for t in ("out_proj", "fc1", "fc2"):
            h = b.module(0, t).register_forward_hook(lambda _m, _i, out: out * 0)
            try:
                resumed = b.resume_layer(0, b.position_of(t), state)
                full = b.run_layers(x, pm, 0, 1)
            finally:
                h.remove()
            assert torch.equal(resumed, full), t
            assert not torch.equal(full, b.run_layers(x, pm, 0, 1)), t


# -- scores and ablation -----------------------------------------------------------------------
def test_activation_and_ig_score_tables_equal_fair_esm(tiny):
    a, b = classifier_pair(*tiny)
    seqs = random_sequences(10, seed=2)
    scoring_set = pd.DataFrame(
        {
            "sequence": seqs,
            "label": [str(i % 3) for i in range(10)],
            "label_index": [i % 3 for i in range(10)],
        }
    )
    score_cfg = with_defaults("score", {"token_budget": 256, "bf16": False, "ig": {"steps": 4}})
    for method in ("activation", "ig"):
        for layer in range(a.num_layers):
            ta = score_layer(a, scoring_set, method, layer, score_cfg)
            tb = score_layer(b, scoring_set, method, layer, score_cfg)
            keys = ["layer", "module", "neuron", "label"]
            ta, tb = ta.sort_values(keys, ignore_index=True), tb.sort_values(keys, ignore_index=True)
            pd.testing.assert_frame_equal(ta.drop(columns="score"), tb.drop(columns="score"))
            for module in MODULE_TYPES:
                sel = (ta["module"] == module).to_numpy()
                assert_close_rel(ta["score"].to_numpy()[sel], tb["score"].to_numpy()[sel])


@pytest.mark.parametrize("fill_kind", ["zero", "mean"])
def test_ablation_predictions_equal_fair_esm(tiny, fill_kind):
    a, b = classifier_pair(*tiny)
    seqs = random_sequences(30, seed=4)
    layout = layout_of(a)
    assert layout == layout_of(b)
    rng = np.random.default_rng(0)
    rows = [
        (layer, m, i) for (layer, m), n in zip(layout.blocks, layout.sizes, strict=True) for i in range(n)
    ]
    table = pd.DataFrame(rows, columns=["layer", "module", "neuron"])
    table["score"] = rng.random(len(table))
    table["label"] = pd.array([None] * len(table), dtype="string")
    table["seed"] = pd.array([None] * len(table), dtype="Int64")
    table.insert(0, "method", "activation")
    masks = []
    for scope in ("global", "module_type", "layer_module"):
        _, built = build_masks(
            table, layout, "activation", scope, [0.0, 0.05, 0.3, 0.75, 1.0], ["preserve", "suppress"]
        )
        masks += built[:: 3 if scope == "layer_module" else 1]
    fills = {}
    for key, model in (("a", a), ("b", b)):
        fills[key] = (
            Fill()
            if fill_kind == "zero"
            else Fill(
                kind="mean", means=mean_activations(model, random_sequences(6, seed=9), token_budget=256)
            )
        )
    pa = evaluate_masks(a, seqs, masks, fills["a"], token_budget=256, bf16=False)
    pb = evaluate_masks(b, seqs, masks, fills["b"], token_budget=256, bf16=False, masks_per_pass=3)
    assert len(masks) > 20 and (pa != pa[0]).any()  # the masks change predictions
    assert (pa == pb).all()


# -- weights, conversion, checkpoints -----------------------------------------------------------
def test_round_trip_fair_esm_hf_fair_esm_gives_identical_tensors(tmp_path):
    fe = fair_backbone(layers=2, dim=24, heads=3)
    snapshot = snapshot_of(fe, tmp_path / "snap")
    from kneurons.model.backends.snapshot import read_config
    from kneurons.model.weights import snapshot_state_dict

    back = hf_to_fair_esm(snapshot_state_dict(snapshot), read_config(snapshot))
    original = fe.state_dict()
    assert set(back) == set(original)
    for key, value in original.items():
        assert torch.equal(back[key], value), key
    # and through the files: the official fair-esm layout that fair-esm itself reads
    write_fair_esm(tmp_path / "w.pt", back, read_config(snapshot))
    import esm

    loaded, _ = esm.pretrained.load_model_and_alphabet_core("esm2", load_esm_checkpoint(tmp_path / "w.pt"))
    for key, value in original.items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_kneurons_convert_both_ways(tmp_path, capsys):
    from kneurons.cli import main

    fe = fair_backbone(layers=2, dim=16, heads=2)
    write_fair_esm(
        tmp_path / "src.pt",
        fe.state_dict(),
        {"num_hidden_layers": 2, "hidden_size": 16, "num_attention_heads": 2},
    )
    assert main(["convert", "--to", "hf", str(tmp_path / "src.pt"), str(tmp_path / "snap")]) == 0
    hf = load_snapshot(tmp_path / "snap")
    assert torch.equal(hf.encoder.layer[1].intermediate.dense.weight, fe.layers[1].fc1.weight)
    assert main(["convert", "--to", "fair-esm", str(tmp_path / "snap"), str(tmp_path / "back.pt")]) == 0
    back = load_esm_checkpoint(tmp_path / "back.pt")["model"]
    for key, value in fe.state_dict().items():
        assert torch.equal(back[f"encoder.{key}"], value), key
    assert main(["convert", "--to", "fair-esm", str(tmp_path / "src.pt"), str(tmp_path / "x.pt")]) == 1
    assert "not a Hugging Face snapshot directory" in capsys.readouterr().err


def test_snapshot_of_a_task_model_with_gamma_beta_and_pytorch_bin_loads(tmp_path, tiny):
    """EsmForSequenceClassification keys (esm. prefix, classifier head), old LayerNorm gamma/beta,
    pytorch_model.bin: the same backbone as the safetensors snapshot."""
    fe, snapshot = tiny
    from kneurons.model.weights import snapshot_state_dict

    state = {}
    for key, value in snapshot_state_dict(snapshot).items():
        if key.startswith("lm_head."):
            continue
        if "LayerNorm" in key or "layer_norm" in key:
            key = key.replace(".weight", ".gamma").replace(".bias", ".beta")
        state[key] = value
    state["classifier.dense.weight"] = torch.zeros(32, 32)
    state["classifier.out_proj.weight"] = torch.zeros(2, 32)
    state["esm.embeddings.position_ids"] = torch.arange(1026)[None]
    target = tmp_path / "task"
    target.mkdir()
    torch.save(state, target / "pytorch_model.bin")
    config = (
        (snapshot / "config.json").read_text().replace('"EsmForMaskedLM"', '"EsmForSequenceClassification"')
    )
    (target / "config.json").write_text(config)
    a, b = classifier_pair(fe, target)
    tokens = a.tokenize(SEQS)
    with torch.no_grad():
        assert torch.allclose(a(tokens), b(tokens), atol=1e-5)
    # an EsmModel snapshot (no prefix at all) loads too
    bare = tmp_path / "bare"
    bare.mkdir()
    torch.save(
        {k.removeprefix("esm."): v for k, v in state.items() if k.startswith("esm.")},
        bare / "pytorch_model.bin",
    )
    (bare / "config.json").write_text(config)
    assert torch.equal(
        load_snapshot(bare).encoder.layer[0].LayerNorm.weight, fe.layers[0].final_layer_norm.weight
    )
    # a weight missing is named
    del state["esm.encoder.layer.0.attention.self.key.weight"]
    torch.save(state, target / "pytorch_model.bin")
    with pytest.raises(ModelError, match="encoder.layer.0.attention.self.key.weight"):
        load_snapshot(target)


def test_classifier_checkpoint_records_the_backend_and_reloads(tmp_path, tiny):
    fe, snapshot = tiny
    cfg = with_defaults("model", {"name": "custom", "pretrained": True, "checkpoint": str(snapshot)})
    model, spec = build_classifier(cfg, 3)
    assert spec.backend == "hf" and (spec.num_layers, spec.embed_dim, spec.attention_heads) == (3, 32, 4)
    assert isinstance(model.backend, HfEsmBackend)
    save_classifier(tmp_path / "best.pt", model, spec, ["a", "b", "c"])
    loaded, info = load_classifier(tmp_path / "best.pt", attention="reference")
    assert info["backbone"]["backend"] == "hf" and info["backbone"]["hf_config"]["num_hidden_layers"] == 3
    tokens = model.tokenize(SEQS)
    with torch.no_grad():
        assert torch.allclose(model.eval()(tokens), loaded(tokens), atol=1e-5)
    # a checkpoint written before backends were recorded loads as fair-esm
    old = EsmClassifier(fe, 3)
    spec_old = BackboneSpec("custom", 3, 32, 4)
    save_classifier(tmp_path / "old.pt", old, spec_old, ["a", "b", "c"])
    payload = torch.load(tmp_path / "old.pt", weights_only=True)
    payload["backbone"] = {k: v for k, v in payload["backbone"].items() if k not in ("backend", "hf_config")}
    torch.save(payload, tmp_path / "old.pt")
    reloaded, _ = load_classifier(tmp_path / "old.pt")
    assert type(reloaded.backend).__name__ == "FairEsmBackend"


def test_hf_q_and_k_share_their_ig_passes_exactly(tiny, monkeypatch):
    """HF ESM-2's attention logits are bilinear in q and k (as fair-esm's): the shared IG pass for
    q_proj and k_proj gives what one pass each gives."""
    _, b = classifier_pair(*tiny)
    assert b.qk_bilinear
    seqs = random_sequences(6, seed=4)
    scoring_set = pd.DataFrame(
        {"sequence": seqs, "label": [str(i % 3) for i in range(6)], "label_index": [i % 3 for i in range(6)]}
    )
    score_cfg = with_defaults("score", {"token_budget": 256, "bf16": False, "ig": {"steps": 4}})
    shared = score_layer(b, scoring_set, "ig", 0, score_cfg)
    monkeypatch.setattr(type(b.backend), "qk_bilinear", False)
    separate = score_layer(b, scoring_set, "ig", 0, score_cfg)
    for module in ("q_proj", "k_proj"):
        sel = (shared["module"] == module).to_numpy()
        assert_close_rel(shared["score"].to_numpy()[sel], separate["score"].to_numpy()[sel])


def test_random_init_hf_backbone_from_the_config(tmp_path):
    cfg = with_defaults(
        "model", {"backend": "hf", "custom": {"num_layers": 2, "embed_dim": 16, "attention_heads": 2}}
    )
    model, spec = build_classifier(cfg, 2)
    assert isinstance(model.backend, HfEsmBackend) and spec.backend == "hf" and model.num_layers == 2
    save_classifier(tmp_path / "m.pt", model, spec, ["x", "y"])
    loaded, _ = load_classifier(tmp_path / "m.pt")
    tokens = model.tokenize(SEQS)
    with torch.no_grad():
        assert torch.allclose(model.eval()(tokens), loaded(tokens), atol=1e-6)


def test_official_name_resolves_from_the_offline_hub_cache(tmp_path, monkeypatch):
    """facebook/esm2_t6_8M_UR50D from $HF_HOME/hub (refs/main -> snapshots/<rev>), with the real shape."""
    fe = fair_backbone(layers=6, dim=320, heads=20)
    repo = tmp_path / "hf" / "hub" / "models--facebook--esm2_t6_8M_UR50D"
    rev = "0123456789abcdef0123456789abcdef01234567"
    snapshot_of(fe, repo / "snapshots" / rev)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = validate_config({"model": {"name": "facebook/esm2_t6_8M_UR50D", "pretrained": True}})
    assert resolve_backend(cfg["model"]) == "hf" and model_shape(cfg) == (6, 320, 20)
    backbone, spec = load_backbone(cfg["model"])
    assert spec.backend == "hf" and (spec.num_layers, spec.embed_dim, spec.attention_heads) == (6, 320, 20)
    assert torch.equal(
        backbone.encoder.layer[5].attention.self.key.weight, fe.layers[5].self_attn.k_proj.weight
    )
    # backend hf with the fair-esm spelling of the name reads the same cache entry
    _, spec2 = load_backbone({**cfg["model"], "name": "esm2_t6_8M_UR50D", "backend": "hf"})
    assert spec2.backend == "hf"
    # absent from the cache: the error names the paths looked in
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    with pytest.raises(ModelError, match=r"empty/hub/models--facebook--esm2_t6_8M_UR50D/refs/main"):
        load_backbone(cfg["model"])


def test_missing_transformers_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelError, match=r"pip install 'kneurons\[hf\]'"):
        require_transformers()
    cfg = with_defaults("model", {"backend": "hf"})
    with pytest.raises(ModelError, match=r"pip install 'kneurons\[hf\]'"):
        build_classifier(cfg, 2)


# -- configuration -----------------------------------------------------------------------------
def test_backend_resolution_and_config_checks(tmp_path, tiny):
    _, snapshot = tiny
    pt = tmp_path / "w.pt"
    pt.write_bytes(b"x")
    esmc = tmp_path / "esmc"
    esmc.mkdir()
    (esmc / "config.json").write_text('{"model_type": "esmc"}')
    cases = {
        (None, "custom", "auto"): "fair-esm",
        (None, "esm2_t6_8M_UR50D", "auto"): "fair-esm",
        (None, "facebook/esm2_t6_8M_UR50D", "auto"): "hf",
        (str(snapshot), "custom", "auto"): "hf",
        (str(esmc), "custom", "auto"): "esmc",
        (str(pt), "esm2_t6_8M_UR50D", "auto"): "fair-esm",
        (None, "esm2_t6_8M_UR50D", "hf"): "hf",
    }
    for (checkpoint, name, backend), want in cases.items():
        assert resolve_backend({"checkpoint": checkpoint, "name": name, "backend": backend}) == want
    # pretrained custom: the architecture comes from the snapshot's config.json
    cfg = validate_config({"model": {"name": "custom", "pretrained": True, "checkpoint": str(snapshot)}})
    assert model_shape(cfg) == (3, 32, 4)
    refused = {
        "has pretrained weights only from model.checkpoint": {"name": "custom", "pretrained": True},
        "is a Hugging Face repository": {"name": "facebook/esm2_t6_8M_UR50D", "backend": "fair-esm"},
        "reads a snapshot directory": {
            "name": "esm2_t6_8M_UR50D",
            "pretrained": True,
            "backend": "hf",
            "checkpoint": str(pt),
        },
        "reads one .pt file": {
            "name": "custom",
            "pretrained": True,
            "backend": "fair-esm",
            "checkpoint": str(snapshot),
        },
    }
    for message, model in refused.items():
        with pytest.raises(ConfigError, match=message):
            validate_config({"model": model})


def test_freezing_reaches_the_hf_layers_and_heads(tiny):
    from kneurons.training.optim import apply_freezing

    for model in classifier_pair(*tiny):
        apply_freezing(model, freeze_layers=1, head_only=False)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert model.head.weight.requires_grad
        assert model.module(1, "fc1").weight.requires_grad
        assert not model.module(0, "k_proj").weight.requires_grad
        assert not any("contact_head" in n or "lm_head" in n or "embed" in n for n in trainable), trainable


def test_the_hf_example_config_validates(tmp_path):
    """config/examples/hf.yaml with its snapshot directory in place (a t6_8M-shaped config.json)."""
    import json

    import yaml

    from kneurons.model.backends.hf.architecture import esm2_config

    raw = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "config" / "examples" / "hf.yaml").read_text()
    )
    snapshot = tmp_path / raw["model"]["checkpoint"]
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(esm2_config(6, 320, 20)))
    raw["model"]["checkpoint"] = str(snapshot)
    cfg = validate_config(raw)
    assert resolve_backend(cfg["model"]) == "hf" and model_shape(cfg) == (6, 320, 20)
    (snapshot / "config.json").write_text(json.dumps(esm2_config(2, 32, 4)))
    with pytest.raises(ConfigError, match=r"holds an ESM-2 with \(layers, embed_dim, heads\) = \(2, 32, 4\)"):
        validate_config(raw)


def test_pretrained_fill_reloads_the_hf_reference_and_matches_fair_esm(tmp_path, tiny):
    """ablate.fill: pretrained on an HF checkpoint reloads the snapshot through the recorded backend;
    fair-esm's engine on the same fine-tuned and reference weights predicts alike."""
    from kneurons.ablation.fill import make_fill

    reference_fe, snapshot = tiny
    tuned = fair_backbone(layers=3, seed=5)  # the "fine-tuned" weights
    a, b = classifier_pair(tuned, snapshot_of(tuned, tmp_path / "tuned"))
    info = {"backbone": {"name": "custom", "backend": "hf"}, "meta": {"pretrained": True}}
    fill_b = make_fill("pretrained", b, info, {"checkpoint": str(snapshot), "download": False})
    fill_a = Fill.from_reference(reference_fe, layout_of(a))
    for block, (weight, bias) in fill_a.reference.items():
        assert torch.equal(fill_b.reference[block][0], weight) and torch.equal(
            fill_b.reference[block][1], bias
        )
    layout = layout_of(a)
    rng = np.random.default_rng(3)
    blocks = list(zip(layout.blocks, layout.sizes, strict=True))
    masks = [{blk: rng.random(n) < 0.6 for blk, n in blocks if rng.random() < 0.5} for _ in range(12)]
    seqs = random_sequences(20, seed=6)
    pa = evaluate_masks(a, seqs, masks, fill_a, token_budget=256, bf16=False)
    pb = evaluate_masks(b, seqs, masks, fill_b, token_budget=256, bf16=False)
    assert (pa == pb).all()
    assert (pa != evaluate_masks(a, seqs, [{}], bf16=False)[0]).any()  # the fill changes predictions


def test_esmc_loads_through_the_config_and_classifier_checkpoints(tmp_path):
    """model.backend esmc (auto from a snapshot whose model_type is esmc): loaded, fine-tunable
    (freezing reaches its layers), and rebuilt from best.pt with its whole EsmcConfig."""
    pytest.importorskip("transformers.models.esmc")
    from kneurons.model.backends.esmc import architecture as esmc
    from kneurons.training.optim import apply_freezing

    torch.manual_seed(0)
    esmc.build_esmc_backbone(2, 64, 4).save_pretrained(tmp_path / "esmc")
    cfg = validate_config(
        {"model": {"name": "custom", "pretrained": True, "checkpoint": str(tmp_path / "esmc")}}
    )
    assert resolve_backend(cfg["model"]) == "esmc" and model_shape(cfg) == (2, 64, 4)
    model, spec = build_classifier(cfg["model"], 3)
    assert spec.backend == "esmc" and type(model.backend).__name__ == "EsmcBackend"
    apply_freezing(model, freeze_layers=1, head_only=False)
    assert (
        not model.module(0, "v_proj").weight.requires_grad and model.module(1, "v_proj").weight.requires_grad
    )
    save_classifier(tmp_path / "best.pt", model, spec, ["a", "b", "c"])
    loaded, info = load_classifier(tmp_path / "best.pt")
    assert info["backbone"]["backend"] == "esmc"
    tokens = model.tokenize(SEQS)
    with torch.no_grad():
        assert torch.equal(model.eval()(tokens), loaded(tokens))
    random_cfg = with_defaults(
        "model", {"backend": "esmc", "custom": {"num_layers": 1, "embed_dim": 32, "attention_heads": 2}}
    )
    assert build_classifier(random_cfg, 2)[0].num_layers == 1


def test_sharded_snapshot_loads(tmp_path, tiny):
    """A snapshot split into shards with a model.safetensors.index.json (how large models are stored)."""
    import json

    from safetensors.torch import save_file

    from kneurons.model.weights import snapshot_state_dict

    fe, snapshot = tiny
    state = snapshot_state_dict(snapshot)
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    target = tmp_path / "sharded"
    target.mkdir()
    for name, part in shards.items():
        save_file({k: state[k].contiguous() for k in part}, str(target / name))
    weight_map = {k: name for name, part in shards.items() for k in part}
    (target / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (target / "config.json").write_text((snapshot / "config.json").read_text())
    a, b = classifier_pair(fe, target)
    tokens = a.tokenize(SEQS)
    with torch.no_grad():
        assert torch.allclose(a(tokens), b(tokens), atol=1e-5)


def test_a_folder_without_config_json_says_what_is_missing(tmp_path):
    """An existing folder given as a snapshot was reported as "does not exist"; now the config check
    and each loader say what it lacks and what it holds."""
    from kneurons.model.loading import load_backbone

    folder = tmp_path / "esm2_t6_8M_UR50D"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "vocab.txt").write_text("<cls>\n")
    why = r"UR50D is a directory without config\.json: .*\(the folder holds: model\.safetensors, vocab\.txt\)"
    for backend in ("auto", "hf"):
        model = {
            "name": "facebook/esm2_t6_8M_UR50D",
            "backend": backend,
            "pretrained": True,
            "checkpoint": str(folder),
        }
        with pytest.raises(ConfigError, match=why):
            validate_config({"model": model})
        with pytest.raises(
            ModelError, match=why
        ):  # the loader (a job on another machine, a folder changed since)
            load_backbone(model | {"backend": "hf"})
    with pytest.raises(ModelError, match=r"is a directory, not a fair-esm \.pt file .*without config\.json"):
        load_backbone(
            {"name": "esm2_t6_8M_UR50D", "backend": "fair-esm", "pretrained": True, "checkpoint": str(folder)}
        )
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").unlink()
    model = {"name": "custom", "backend": "hf", "pretrained": True, "checkpoint": str(folder)}
    with pytest.raises(ModelError, match=r"without weights \(model\.safetensors or pytorch_model\.bin"):
        load_backbone(model)


def test_weights_with_nan_or_inf_are_refused_naming_the_tensor_and_file(tmp_path, tiny):
    import re

    from kneurons.model.backends.fair_esm.weights import load_pretrained_backbone
    from kneurons.model.backends.hf.convert import hf_to_fair_esm, write_fair_esm
    from kneurons.model.loading import load_backbone

    fe, snapshot = tiny
    state, config = fair_esm_to_hf(fe.state_dict(), fe.attention_heads, bool(fe.token_dropout))
    key = next(k for k in state if k.endswith("layer.1.attention.self.key.weight"))
    state[key] = state[key].clone()
    state[key][3, 4] = float("inf")
    bad = write_hf_snapshot(tmp_path / "bad", state, config)
    with pytest.raises(
        ModelError, match=rf"bad/model\.safetensors: tensor {re.escape(key)} \(32, 32\) holds 0 NaN and 1 inf"
    ):
        load_backbone({"name": "custom", "backend": "hf", "pretrained": True, "checkpoint": str(bad)})
    state[key][3, 4] = float("nan")
    pt = write_fair_esm(tmp_path / "bad.pt", hf_to_fair_esm(state, config), config)
    k_proj = r"encoder\.layers\.1\.self_attn\.k_proj\.weight"
    with pytest.raises(ModelError, match=rf"bad\.pt: tensor {k_proj} \(32, 32\) holds 1 NaN and 0 inf"):
        load_pretrained_backbone("custom", pt)
