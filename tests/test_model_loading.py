"""Model loading: official ESM-2 checkpoints (safely), sha256 checks, offline errors, random init, pooling."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import pytest
import torch

from kneurons.errors import ModelError
from kneurons.model import loading
from kneurons.model.backends.fair_esm import weights as fair_esm_weights
from kneurons.model.backends.fair_esm.weights import load_esm_checkpoint
from kneurons.model.checkpoint import load_classifier, save_classifier
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone, tokenize
from kneurons.model.loading import build_classifier, load_backbone
from kneurons.model.weights import weights_sha256

T6 = "esm2_t6_8M_UR50D"


def official_layout(backbone) -> dict:
    """A checkpoint dict as fair-esm publishes ESM-2 weights (fairseq key prefixes, Namespace config)."""
    state = {}
    for k, v in backbone.state_dict().items():
        if k.startswith("contact_head.regression"):
            continue  # shipped in the separate *-contact-regression.pt file
        prefix = "encoder." if k.startswith("lm_head") else "encoder.sentence_encoder."
        state[prefix + k] = v.clone()
    cfg = argparse.Namespace(
        encoder_layers=backbone.num_layers,
        encoder_embed_dim=backbone.embed_dim,
        encoder_attention_heads=backbone.attention_heads,
        token_dropout=True,
    )
    return {"model": state, "cfg": {"model": cfg}}


@pytest.fixture(scope="module")
def t6_backbone():
    torch.manual_seed(1)
    return build_backbone(BackboneSpec.from_config({"name": T6}))


@pytest.fixture(scope="module")
def t6_file(tmp_path_factory, t6_backbone) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "my_esm2_t6.pt"
    torch.save(official_layout(t6_backbone), path)
    return path


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty torch hub cache and a download function that fails the test if it is reached."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(*args, **kwargs):
        raise AssertionError("network download attempted in a test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def test_official_layout_needs_namespace_and_loads_safely(t6_file, t6_backbone, no_network):
    # A plain weights_only load refuses the Namespace: the reason fair-esm's loader breaks on new torch.
    with pytest.raises(pickle.UnpicklingError, match="Namespace"):
        torch.load(t6_file, weights_only=True)
    backbone, spec = load_backbone({"name": T6, "pretrained": True, "checkpoint": str(t6_file)})
    assert (spec.name, spec.num_layers, spec.embed_dim, spec.attention_heads) == (T6, 6, 320, 20)
    want = t6_backbone.state_dict()
    got = backbone.state_dict()
    for key in (
        "embed_tokens.weight",
        "layers.5.self_attn.k_proj.weight",
        "layers.0.fc1.bias",
        "emb_layer_norm_after.weight",
    ):
        assert torch.equal(got[key], want[key]), key


def test_hub_cache_is_used_offline(t6_file, no_network):
    no_network.mkdir(parents=True)
    (no_network / f"{T6}.pt").symlink_to(t6_file)
    # The cached file has the official name, so its sha256 is checked: a test file fails that.
    with pytest.raises(
        ModelError,
        match=rf"{T6}\.pt: sha256 [0-9a-f]{{64}} does not match the official {T6}\.pt \(46f002a9.*"
        rf"size \d+ bytes, the official file has 30099493",
    ):
        load_backbone({"name": T6, "pretrained": True})


def test_download_goes_to_hub_cache(t6_file, no_network, monkeypatch):
    monkeypatch.setitem(
        fair_esm_weights.KNOWN_CHECKPOINTS, f"{T6}.pt", (t6_file.stat().st_size, _sha(t6_file))
    )
    calls = []

    def fake_download(url: str, dest: Path) -> None:
        calls.append((url, dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(t6_file.read_bytes())

    model, _ = build_classifier({"name": T6, "pretrained": True}, num_classes=3, downloader=fake_download)
    assert calls == [(f"https://dl.fbaipublicfiles.com/fair-esm/models/{T6}.pt", no_network / f"{T6}.pt")]
    assert model.num_layers == 6 and model.num_classes == 3
    # Second call: found in the cache, no download.
    load_backbone({"name": T6, "pretrained": True}, downloader=fake_download)
    assert len(calls) == 1


def _sha(path: Path) -> str:
    from kneurons.io import sha256_file

    return sha256_file(path)


def test_sha256_mismatch_names_the_file(tmp_path, no_network):
    path = tmp_path / f"{T6}.pt"
    with open(path, "wb") as fh:  # the official size, wrong content
        fh.truncate(30_099_493)
    with pytest.raises(
        ModelError,
        match=rf"{path}: sha256 [0-9a-f]{{64}} does not match the official {T6}\.pt "
        r"\(46f002a9[0-9a-f]+\); the file",
    ):
        load_backbone({"name": T6, "pretrained": True, "checkpoint": str(path)})


def test_missing_offline_weights_clear_error(no_network):
    def failing(url, dest):
        raise OSError("network is unreachable")

    with pytest.raises(ModelError) as err:
        load_backbone({"name": "esm2_t12_35M_UR50D", "pretrained": True}, downloader=failing)
    msg = str(err.value)
    assert "esm2_t12_35M_UR50D" in msg
    assert str(no_network / "esm2_t12_35M_UR50D.pt") in msg
    assert "model.checkpoint" in msg and "network is unreachable" in msg
    # download disabled: same message without any attempt
    with pytest.raises(ModelError, match="not found at .*model.checkpoint"):
        load_backbone({"name": "esm2_t12_35M_UR50D", "pretrained": True}, download=False, downloader=failing)


def test_missing_local_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="does-not-exist.pt does not exist"):
        load_backbone({"name": T6, "pretrained": True, "checkpoint": str(tmp_path / "does-not-exist.pt")})


def test_foreign_globals_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "cfg": {"model": Path("/etc/passwd")}}, path)
    with pytest.raises(ModelError, match="weights_only=True"):
        load_esm_checkpoint(path)


def test_architecture_mismatch(tmp_path, no_network):
    small = build_backbone(BackboneSpec("custom", 2, 32, 4))
    path = tmp_path / "small.pt"
    torch.save(official_layout(small), path)
    with pytest.raises(ModelError, match=r"\(2, 32, 4\), but esm2_t6_8M_UR50D has \(6, 320, 20\)"):
        load_backbone({"name": T6, "pretrained": True, "checkpoint": str(path)})


@pytest.mark.parametrize(
    ("cfg", "shape"),
    [
        ({"name": T6, "pretrained": False}, (6, 320, 20)),
        ({"name": "esm2_t12_35M_UR50D", "pretrained": False}, (12, 480, 20)),
        ({"name": "custom", "custom": {"num_layers": 3, "embed_dim": 48, "attention_heads": 6}}, (3, 48, 6)),
    ],
)
def test_random_init_builds_the_architecture(cfg, shape, no_network):
    model, spec = build_classifier(cfg, num_classes=5)
    assert (spec.num_layers, spec.embed_dim, spec.attention_heads) == shape
    assert model.num_layers == shape[0] and model.neuron_count("fc1") == 4 * shape[1]
    assert model.esm.layers[0].self_attn.num_heads == shape[2]


@pytest.mark.parametrize("pooling", ["mean", "bos"])
def test_padding_does_not_change_logits(pooling):
    torch.manual_seed(0)
    model = EsmClassifier(build_backbone(BackboneSpec("custom", 2, 32, 4)), 3, pooling=pooling).eval()
    short, long = "MKTAYIAKQR", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
    with torch.no_grad():
        alone = model(tokenize([short]))[0]
        batched = model(tokenize([short, long]))  # the short one is padded by 23 tokens
        assert tokenize([short, long])[0].eq(model.esm.padding_idx).sum() == len(long) - len(short)
        assert torch.allclose(alone, batched[0], atol=1e-5)
        # and pooling is not a no-op: a different sequence gives different logits
        assert not torch.allclose(batched[0], batched[1], atol=1e-3)


def test_mean_pooling_excludes_special_tokens():
    torch.manual_seed(0)
    model = EsmClassifier(build_backbone(BackboneSpec("custom", 1, 16, 2)), 2, pooling="mean")
    tokens = tokenize(["ACD", "ACDEFG"])
    h = torch.randn(2, tokens.shape[1], 16)
    pooled = model.pool(h, tokens)
    assert torch.allclose(pooled[0], h[0, 1:4].mean(0), atol=1e-6)  # residues only: not BOS, EOS, padding
    assert torch.allclose(pooled[1], h[1, 1:7].mean(0), atol=1e-6)


def test_best_checkpoint_loads_without_training_code(trained_synthetic):
    model, info = load_classifier(trained_synthetic.checkpoint)
    assert info["labels"] == trained_synthetic.labels
    assert info["meta"]["pretrained"] is False and len(info["meta"]["config_hash"]) == 16
    assert not model.training
    # the reloaded model reproduces the recorded test accuracy
    test = trained_synthetic.split[trained_synthetic.split["split"] == "test"]
    with torch.no_grad():
        pred = model(tokenize(test["sequence"].tolist())).argmax(1).numpy()
    y = test["label"].astype(str).map({lab: i for i, lab in enumerate(info["labels"])}).to_numpy()
    assert (pred == y).mean() == pytest.approx(info["meta"]["metrics"]["test"]["accuracy"])


def test_job_loader_runs_the_attention_the_config_names(trained_synthetic):
    from esm.multihead_attention import MultiheadAttention

    from kneurons.model.backends.fair_esm.attention import SdpaMultiheadAttention
    from kneurons.model.checkpoint import load_job_classifier

    def kinds(model):
        return {type(layer.self_attn) for layer in model.esm.layers}

    ref, _ = load_job_classifier(trained_synthetic.checkpoint, {"model": {"attention": "reference"}})
    assert kinds(ref) == {MultiheadAttention}
    fast, _ = load_job_classifier(trained_synthetic.checkpoint, {"score": {}})  # partial config: the default
    assert kinds(fast) == {SdpaMultiheadAttention}


def test_save_and_reload_pretrained_shape(tmp_path, t6_file, no_network):
    model, spec = build_classifier({"name": T6, "pretrained": True, "checkpoint": str(t6_file)}, 4)
    save_classifier(tmp_path / "c.pt", model, spec, ["a", "b", "c", "d"], {"pretrained": True})
    again, info = load_classifier(tmp_path / "c.pt")
    assert info["backbone"]["name"] == T6
    assert torch.equal(again.esm.layers[3].fc2.weight, model.esm.layers[3].fc2.weight)


# -- weights by content, custom + pretrained + checkpoint, missing checkpoint ------------------------
def tiny_official_file(path: Path, shape=(2, 32, 4), seed: int = 0) -> Path:
    """A fair-esm-layout checkpoint of a tiny ESM-2 (Namespace cfg, fairseq key prefixes)."""
    torch.manual_seed(seed)
    torch.save(official_layout(build_backbone(BackboneSpec("custom", *shape))), path)
    return path


def test_official_content_is_recognised_whatever_the_file_name(t6_file, no_network, monkeypatch, caplog):
    monkeypatch.setitem(fair_esm_weights.KNOWN_CHECKPOINTS, f"{T6}.pt", (None, _sha(t6_file)))
    with caplog.at_level("INFO", logger="kneurons.model.backends.fair_esm.weights"):
        _, spec = load_backbone({"name": T6, "pretrained": True, "checkpoint": str(t6_file)})
    assert spec.num_layers == 6
    assert f"{t6_file}: content is the official {T6}.pt" in caplog.text


def test_recognised_model_must_be_the_configured_one(t6_file, no_network, monkeypatch):
    # t6_file's content pinned as the official t12: configured as t6, it is refused by content.
    monkeypatch.setitem(fair_esm_weights.KNOWN_CHECKPOINTS, "esm2_t12_35M_UR50D.pt", (None, _sha(t6_file)))
    with pytest.raises(
        ModelError,
        match=rf"{t6_file} holds the official esm2_t12_35M_UR50D weights \(by sha256\), "
        rf"but model.name is {T6}",
    ):
        load_backbone({"name": T6, "pretrained": True, "checkpoint": str(t6_file)})


def test_unknown_content_under_another_name_loads_unverified(t6_file, no_network, caplog):
    with caplog.at_level("INFO", logger="kneurons.model.backends.fair_esm.weights"):
        load_backbone({"name": T6, "pretrained": True, "checkpoint": str(t6_file)})
    assert (
        f"{t6_file}: sha256 {_sha(t6_file)} is not that of an official checkpoint; loaded unverified"
        in caplog.text
    )


def test_weights_sha256_of_files_and_snapshot_directories(tmp_path):
    a = tmp_path / "snap" / "model.safetensors"
    a.parent.mkdir()
    a.write_bytes(b"weights")
    (tmp_path / "snap" / "config.json").write_text("{}")
    assert weights_sha256(a) == _sha(a)
    before = weights_sha256(tmp_path / "snap")
    a.write_bytes(b"other weights")  # a rewritten file (new size and mtime) is hashed again
    assert weights_sha256(a) == _sha(a)
    assert weights_sha256(tmp_path / "snap") != before


def test_weights_identity(tmp_path):
    path = tiny_official_file(tmp_path / "w.pt")
    assert loading.weights_identity({"pretrained": False, "name": "custom"}, 7) == "random-init:7"
    cfg = {"pretrained": True, "name": "custom", "checkpoint": str(path)}
    assert loading.weights_identity(cfg, 7) == _sha(path)


def test_custom_pretrained_checkpoint_sets_the_architecture(tmp_path, no_network):
    from kneurons.config import model_shape, validate_config

    path = tiny_official_file(tmp_path / "mine.pt", (3, 48, 6))
    cfg = validate_config({"model": {"name": "custom", "pretrained": True, "checkpoint": str(path)}})
    assert model_shape(cfg) == (3, 48, 6)
    assert cfg["model"]["custom"] == {"num_layers": 3, "embed_dim": 48, "attention_heads": 6}
    assert validate_config(cfg) == cfg  # a job re-validates the filled config: still consistent
    backbone, spec = load_backbone(cfg["model"])
    assert (spec.name, spec.num_layers, spec.embed_dim, spec.attention_heads) == ("custom", 3, 48, 6)
    # sizes given and agreeing are fine
    validate_config(
        {
            "model": {
                "name": "custom",
                "pretrained": True,
                "checkpoint": str(path),
                "custom": {"num_layers": 3},
            }
        }
    )


def test_custom_sizes_that_disagree_with_the_checkpoint(tmp_path):
    from kneurons.config import validate_config
    from kneurons.errors import ConfigError

    path = tiny_official_file(tmp_path / "mine.pt", (3, 48, 6))
    with pytest.raises(
        ConfigError,
        match=rf"model.custom: num_layers: 4 disagree\(s\) with model.checkpoint {path}, which holds "
        r"\(num_layers, embed_dim, attention_heads\) = \(3, 48, 6\)",
    ):
        validate_config(
            {
                "model": {
                    "name": "custom",
                    "pretrained": True,
                    "checkpoint": str(path),
                    "custom": {"num_layers": 4},
                }
            }
        )


def test_official_name_needs_a_checkpoint_of_its_shape(tmp_path):
    from kneurons.config import validate_config
    from kneurons.errors import ConfigError

    path = tiny_official_file(tmp_path / "small.pt")
    with pytest.raises(
        ConfigError,
        match=rf"model.checkpoint: {path} holds an ESM-2 with \(layers, embed_dim, heads\) = \(2, 32, 4\), "
        rf"but model.name {T6} has \(6, 320, 20\)",
    ):
        validate_config({"model": {"name": T6, "pretrained": True, "checkpoint": str(path)}})


def test_missing_checkpoint_is_a_config_error(tmp_path):
    from kneurons.config import validate_config
    from kneurons.errors import ConfigError

    missing = tmp_path / "nowhere" / "esm2.pt"
    with pytest.raises(ConfigError, match=rf"model.checkpoint: {missing} does not exist"):
        validate_config({"model": {"name": T6, "pretrained": True, "checkpoint": str(missing)}})
    with pytest.raises(
        ConfigError, match="a custom-size model has pretrained weights only from model.checkpoint"
    ):
        validate_config({"model": {"name": "custom", "pretrained": True}})


def test_unreadable_checkpoint_is_a_config_error(tmp_path):
    from kneurons.config import validate_config
    from kneurons.errors import ConfigError

    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=rf"model.checkpoint: {path}: not"):
        validate_config({"model": {"name": "custom", "pretrained": True, "checkpoint": str(path)}})
