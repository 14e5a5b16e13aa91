"""SAE features as units (kneurons.features): the residual-stream hook points of every backend, the
published SAE formats read from format-faithful fakes, the SAE math against an independent numpy
re-derivation, the exactness of feature edits, scoring over features, and training our own SAE.

The fakes are built from the public projects' parameter names and serialisers: InterPLM's
``ReLUSAE`` (``interplm/sae/dictionary.py``: ``bias``, ``encoder`` = ``nn.Linear(d, F)``, ``decoder``
= ``nn.Linear(F, d, bias=False)``, buffer ``activation_rescale_factor``) saved with ``torch.save``;
InterProt's ``SparseAutoencoder`` (``interprot/sae_model.py``: ``w_enc``, ``w_dec``, ``b_enc``,
``b_pre``, buffer ``stats_last_nonzero``) as a plain state dict, safetensors and a Lightning-style
checkpoint; an ESM C SAE folder (``config.json`` + ``layer_{N}.safetensors``) as DESIGN.md describes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kneurons.errors import InputError, ModelError
from kneurons.features.formats import load_sae, save_sae
from kneurons.features.quality import (
    WRONG_LAYER_RATIO,
    check_layer_fit,
    reconstruction_errors,
    reconstruction_report,
)
from kneurons.features.sae import SparseAutoencoder
from kneurons.features.train import train_sae
from kneurons.io import sha256_file
from kneurons.model.checkpoint import load_classifier
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone
from kneurons.model.hooks import OutputRecorder, module_output_hook
from kneurons.scoring.activation import activation_per_sequence
from kneurons.scoring.base import check_layer
from kneurons.scoring.ig import attribution_per_sequence
from kneurons.scoring.integration import integration_points
from kneurons.scoring.reference import captum_ig_per_sequence, target_at_scale
from kneurons.vocabulary import FEATURE_MODULE, MODULE_TYPES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Different lengths, so every batch carries padding.
SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "MKVLAAGIVG", "MSTNPKPQRKTKRNTNRRPQDVKFPGG", "GAVLIPFWMS"]
GOLD = [0, 2, 1, 2]
LAYERS, DIM = 2, 32


# -- models of the three backends (random weights) ------------------------------------------------
def fair_model(seed: int = 0) -> EsmClassifier:
    torch.manual_seed(seed)
    model = EsmClassifier(build_backbone(BackboneSpec("custom", LAYERS, DIM, 4)), num_classes=3)
    with torch.no_grad():
        model.head.weight.mul_(4)  # spread the probabilities, so they move with the features
    return model.eval()


def hf_model(seed: int = 0) -> EsmClassifier:
    pytest.importorskip("transformers")
    torch.manual_seed(seed)
    spec = BackboneSpec("custom", LAYERS, DIM, 4, backend="hf")
    return EsmClassifier(build_backbone(spec), num_classes=3).eval()


def esmc_model(seed: int = 0) -> EsmClassifier:
    pytest.importorskip("transformers.models.esmc", reason="this transformers has no ESM C")
    from kneurons.model.backends.esmc.architecture import build_esmc_backbone

    model = EsmClassifier(build_esmc_backbone(LAYERS, 64, 4, seed=seed), num_classes=3)
    return model.eval()


BACKENDS = {"fair-esm": fair_model, "hf": hf_model, "esmc": esmc_model}


def library_hidden_states(model: EsmClassifier, tokens: torch.Tensor) -> list[torch.Tensor]:
    """The backbone library's own hidden states ``[0..L]`` (batch-first), from its own forward pass."""
    with torch.no_grad():
        if model.backend.name == "fair-esm":
            reps = model.esm(tokens, repr_layers=list(range(model.num_layers + 1)))["representations"]
            return [reps[layer] for layer in range(model.num_layers + 1)]
        out = model.esm(
            input_ids=tokens, attention_mask=tokens.ne(model.padding_idx).long(), output_hidden_states=True
        )
        return list(out.hidden_states)


def record_streams(model: EsmClassifier, run, layers) -> dict[int, list[torch.Tensor]]:
    """Stream tensors seen at ``layers``' stream points (time-first) while ``run()`` runs."""
    with torch.no_grad(), OutputRecorder({layer: model.stream_point(layer) for layer in layers}) as rec:
        run()
    return rec.outputs


# -- 1. the residual-stream hook points ----------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_points_are_the_librarys_hidden_states(backend):
    model = BACKENDS[backend]()
    tokens = model.tokenize(SEQS)
    assert tokens.eq(model.padding_idx).any()
    points = range(model.num_layers + 1)
    seen = record_streams(model, lambda: model(tokens), points)
    ref = library_hidden_states(model, tokens)
    assert len(ref) == model.num_layers + 1
    for layer in points:
        (got,) = seen[layer]  # fired once, time-first
        assert got.shape == (tokens.shape[1], tokens.shape[0], model.embed_dim)
        # The very operations of the library's own forward pass: bit for bit.
        assert torch.equal(got.transpose(0, 1), ref[layer])
    # The last point is after the final norm, not the last layer's raw output.
    assert not torch.allclose(seen[model.num_layers][0], seen[model.num_layers - 1][0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_points_fire_wherever_the_stream_runs(backend):
    model = BACKENDS[backend]()
    tokens = model.tokenize(SEQS)
    L = model.num_layers
    with torch.no_grad():
        x, pm = model.embed(tokens)
        entering = [x]
        for layer in range(L):
            entering.append(model.run_layers(entering[-1], pm, layer, layer + 1))
        normed = model.backend.final_norm(entering[L])

    def time_first(t: torch.Tensor) -> torch.Tensor:
        return t if model.batch_dim == 1 else t.transpose(0, 1)

    for layer in range(L):
        # run_layers from this very start, and from 0: the point fires once with the stream entering it
        for start in (0, layer):
            seen = record_streams(
                model, lambda s=start, n=layer: model.run_layers(entering[s], pm, s), [layer]
            )
            assert len(seen[layer]) == 1 and torch.equal(seen[layer][0], time_first(entering[layer]))
        # running up to the layer (not into it) does not fire it
        assert record_streams(model, lambda n=layer: model.run_layers(x, pm, 0, n), [layer])[layer] == []
        # the ablation engine's resume point 0 of the layer
        _, state = model.run_layer_with_states(layer, entering[layer], pm)
        seen = record_streams(model, lambda n=layer, s=state: model.resume_layer(n, 0, s, copies=2), [layer])
        assert torch.equal(seen[layer][0], time_first(model.repeat_stream(entering[layer], 2)))
    seen = record_streams(model, lambda: model.classify(entering[L], tokens), [L])
    assert torch.equal(seen[L][0], normed.transpose(0, 1))
    # A replacement at a stream point is what the rest of the model runs on.
    with torch.no_grad(), module_output_hook(model.stream_point(1), lambda h: torch.zeros_like(h)):
        zeroed = model.run_layers(x, pm, 0)
    with torch.no_grad():
        assert torch.equal(zeroed, model.run_layers(torch.zeros_like(entering[1]), pm, 1))
    with pytest.raises(ModelError, match=f"no residual stream point {L + 1}"):
        model.stream_point(L + 1)


# -- format-faithful fakes of the published SAE formats -------------------------------------------
class InterPlmReluSae(nn.Module):
    """InterPLM's ``ReLUSAE`` layout: its state dict has the published names and shapes."""

    def __init__(self, d: int, n: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(0.3 * torch.randn(d))
        self.encoder = nn.Linear(d, n, bias=True)
        self.decoder = nn.Linear(n, d, bias=False)
        with torch.no_grad():
            self.encoder.bias.normal_(0, 0.2)
        self.register_buffer("activation_rescale_factor", torch.rand(n) + 0.5)


class InterProtSae(nn.Module):
    """InterProt's TopK ``SparseAutoencoder`` layout (``w_enc`` [d, F], ``w_dec`` [F, d], ...)."""

    def __init__(self, d: int, n: int) -> None:
        super().__init__()
        self.w_enc = nn.Parameter(torch.randn(d, n) / d**0.5)
        self.w_dec = nn.Parameter(torch.randn(n, d) / d**0.5)
        self.b_enc = nn.Parameter(0.2 * torch.randn(n))
        self.b_pre = nn.Parameter(0.2 * torch.randn(d))
        self.register_buffer("stats_last_nonzero", torch.zeros(n, dtype=torch.long))


def interplm_file(dest: Path, d: int = DIM, n: int = 96, seed: int = 0, **extra: torch.Tensor) -> Path:
    torch.manual_seed(seed)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "ae_normalized.pt"
    torch.save({**InterPlmReluSae(d, n).state_dict(), **extra}, path)
    return path


def interprot_state(d: int = DIM, n: int = 96, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return InterProtSae(d, n).state_dict()


def esmc_folder(dest: Path, d: int = DIM, c: int = 96, k: int = 12, layers=(1,), seed: int = 0) -> Path:
    """An ESM C SAE folder: config.json + one safetensors file per available layer."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(
        json.dumps({"d_model": d, "codebook_dim": c, "k": k, "available_layers": list(layers)})
    )
    for layer in layers:
        save_file(
            {
                "W_enc": torch.randn(d, c, generator=g) / d**0.5,
                "W_dec": torch.randn(c, d, generator=g) / d**0.5,
                "b_dec": 0.2 * torch.randn(d, generator=g),
            },
            str(dest / f"layer_{layer}.safetensors"),
        )
    return dest


# -- an independent implementation of the published formulas (numpy, float64) ------------------
def np_zscore(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = x.mean(-1, keepdims=True)
    std = (x - mu).std(-1, ddof=1, keepdims=True)
    return (x - mu) / (std + 1e-5), mu, std


def np_topk(pre: np.ndarray, k: int) -> np.ndarray:
    """Keep each row's k largest values (ReLU'd), zero the rest."""
    out = np.zeros_like(pre)
    idx = np.argsort(-pre, axis=-1)[..., :k]
    np.put_along_axis(out, idx, np.maximum(np.take_along_axis(pre, idx, -1), 0), -1)
    return out


def np_interplm(state: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """InterPLM's ``ReLUSAE``: features as ``encode(normalize_features=True)`` reports them (divided
    by ``activation_rescale_factor``), the reconstruction ``decode(encode(x))`` of the raw features."""
    s = {k: v.double().numpy() for k, v in state.items()}
    f = np.maximum((x - s["bias"]) @ s["encoder.weight"].T + s["encoder.bias"], 0)
    return f / s.get("activation_rescale_factor", 1.0), f @ s["decoder.weight"].T + s["bias"]


def np_interprot(state: dict, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = {k: v.double().numpy() for k, v in state.items()}
    z, mu, std = np_zscore(x)
    f = np_topk((z - s["b_pre"]) @ s["w_enc"] + s["b_enc"], k)
    return f, (f @ s["w_dec"] + s["b_pre"]) * std + mu


def np_esmc(state: dict, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = {k: v.double().numpy() for k, v in state.items()}
    z, mu, std = np_zscore(x)
    f = np_topk(np.maximum((z - s["b_dec"]) @ s["W_enc"], 0), k)
    return f, (f @ s["W_dec"] + s["b_dec"]) * std + mu


def stream_sample(d: int = DIM, seed: int = 1) -> torch.Tensor:
    """A time-first ``(T, B, d)`` stream with an offset and uneven scales (z-scoring matters)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(7, 3, d, generator=g, dtype=torch.float64) * 2.5 + 0.7).contiguous()


def assert_parity(sae: SparseAutoencoder, ref_f: np.ndarray, ref_hat: np.ndarray, h: torch.Tensor) -> None:
    sae = sae.double()
    code = sae.code(h)
    assert code.f.shape == (*h.shape[:2], sae.n_features)
    np.testing.assert_allclose(code.f.numpy(), ref_f, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sae.decode(code).numpy(), ref_hat, rtol=1e-9, atol=1e-9)
    active = (ref_f > 0).sum(-1)
    assert active.min() > 0 and (sae.k is None or active.max() <= sae.k)


def test_interplm_relu_sae_matches_the_published_formulas(tmp_path):
    path = interplm_file(tmp_path / "layer_1")
    state = torch.load(path, weights_only=True)
    assert set(state) == {
        "bias",
        "encoder.weight",
        "encoder.bias",
        "decoder.weight",
        "activation_rescale_factor",
    }
    h = stream_sample()
    ref_f, ref_hat = np_interplm(state, h.numpy())
    for given in (path, path.parent):  # the file, or its layer folder
        sae = load_sae(given, "interplm", layer=1)
        assert (sae.layer, sae.d, sae.n_features, sae.k, sae.source) == (1, DIM, 96, None, str(path))
        assert_parity(sae, ref_f, ref_hat, h)


@pytest.mark.parametrize("layout", ["pt", "safetensors", "lightning"])
def test_interprot_topk_sae_matches_the_published_formulas(tmp_path, layout):
    state = interprot_state()
    name = f"esm2_plm{DIM}_l1_sae96_k12_auxk64"
    if layout == "pt":
        path = tmp_path / f"{name}.pt"
        torch.save(state, path)
    elif layout == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:  # Lightning: the SAE's tensors under sae_model., beside the wrapper's own
        path = tmp_path / f"{name}.ckpt"
        wrapped = {f"sae_model.{k}": v for k, v in state.items()} | {
            "esm2_model.embed.weight": torch.zeros(3)
        }
        torch.save({"state_dict": wrapped, "epoch": 3, "global_step": 100}, path)
    sae = load_sae(path, "interprot", layer=1)
    assert (sae.k, sae.n_features, sae.zscore) == (12, 96, True)  # k from the file name
    h = stream_sample()
    assert_parity(sae, *np_interprot(state, h.numpy(), 12), h)


def test_interprot_k_from_the_caller_else_128(tmp_path):
    path = tmp_path / "sae.pt"
    torch.save(interprot_state(n=160), path)
    assert load_sae(path, "interprot", layer=0).k == 128
    assert load_sae(path, "interprot", layer=0, k=20).k == 20


def test_esmc_sae_folder_matches_the_design_formulas(tmp_path):
    from safetensors.torch import load_file

    folder = esmc_folder(tmp_path / "esmc_sae", layers=(0, 1))
    sae = load_sae(folder, "esmc", layer=1)
    assert (sae.k, sae.layer, sae.source) == (12, 1, str(folder / "layer_1.safetensors"))
    h = stream_sample()
    assert_parity(sae, *np_esmc(load_file(str(folder / "layer_1.safetensors")), h.numpy(), 12), h)


def test_edit_formula_keeps_the_error_term():
    """h' = h + ((f' - f) W_dec) s with s = sigma + 1e-5 (z-scored) or 1, recomputed by hand."""
    h = stream_sample()
    state = interprot_state()
    sae = SparseAutoencoder(
        W_enc=state["w_enc"],
        b_enc=state["b_enc"],
        W_dec=state["w_dec"],
        b_pre=state["b_pre"],
        b_dec=state["b_pre"],
        layer=1,
        k=12,
        zscore=True,
        format="interprot",
        source="test",
    ).double()
    code = sae.code(h)
    f_new = code.f.clone()
    f_new[..., :5] = 3.0
    x = h.numpy()
    sigma = (x - x.mean(-1, keepdims=True)).std(-1, ddof=1, keepdims=True)
    expected = x + ((f_new - code.f).numpy() @ state["w_dec"].double().numpy()) * (sigma + 1e-5)
    np.testing.assert_allclose(sae.edit(h, code, f_new).numpy(), expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(sae.edit(h, code, code.f.clone()), h)


# -- refusals: each names the file ----------------------------------------------------------------
def test_refused_sae_files_name_the_file_and_the_tensor(tmp_path):
    good = interprot_state()
    cases = {
        "missing.pt": (
            {k: v for k, v in good.items() if k != "b_enc"},
            r"not an interprot SAE: missing tensors \['b_enc'\] \(the file holds \['b_pre', "
            r"'stats_last_nonzero', 'w_dec', 'w_enc'\]; an interprot SAE holds",
        ),
        "extra.pt": (good | {"W_other": torch.zeros(3)}, r"unexpected tensors \['W_other'\]"),
        "shape.pt": (
            good | {"w_dec": torch.zeros(96, DIM + 1)},
            r"tensor w_dec is \(96, 33\), expected \(F = 96, d = 32\)",
        ),
        "nan.pt": (
            good | {"b_pre": torch.full((DIM,), float("nan"))},
            "tensor b_pre \\(32,\\) holds 32 NaN and 0 inf value",
        ),
    }
    for name, (state, message) in cases.items():
        torch.save(state, tmp_path / name)
        with pytest.raises(InputError, match=f"{tmp_path / name}: .*{message}"):
            load_sae(tmp_path / name, "interprot", layer=1)
    named = tmp_path / f"esm2_plm{DIM}_l5_sae96_k8.pt"
    torch.save(good, named)
    with pytest.raises(InputError, match=rf"{named}: the file name says layer = 5, not 1"):
        load_sae(named, "interprot", layer=1)
    with pytest.raises(InputError, match=rf"{named}: the file name says k = 8, but k = 16 was asked for"):
        load_sae(named, "interprot", layer=5, k=16)
    other = interplm_file(tmp_path / "layer_2")
    with pytest.raises(
        InputError, match=rf"{other}: the folder layer_2 says layer 2, but the SAE is attached at layer 1"
    ):
        load_sae(other, "interplm", layer=1)
    folder = esmc_folder(tmp_path / "esmc", layers=(0, 2))
    with pytest.raises(InputError, match=rf"{folder}: no SAE for layer 1 .*available_layers \[0, 2\]"):
        load_sae(folder, "esmc", layer=1)
    with pytest.raises(InputError, match="no such SAE file"):
        load_sae(tmp_path / "absent.pt", "interprot", layer=1)
    with pytest.raises(InputError, match="unknown SAE format 'saelens'"):
        load_sae(tmp_path / "missing.pt", "saelens", layer=1)


def test_wrong_width_and_layer_out_of_range_are_refused_on_attach(tmp_path):
    model = fair_model()
    wide = tmp_path / "wide.pt"
    torch.save(interprot_state(d=DIM * 2), wide)
    with pytest.raises(
        InputError, match=rf"{wide}: the SAE reads a 64-dim stream, but the model's .* 32-dim"
    ):
        model.attach_sae(load_sae(wide, "interprot", layer=1, k=12))
    far = tmp_path / "far.pt"
    torch.save(interprot_state(), far)
    with pytest.raises(InputError, match=rf"{far}: layer 3 is not a stream point of this 2-layer model"):
        model.attach_sae(load_sae(far, "interprot", layer=3, k=12))
    assert model.saes == {}


def test_missing_safetensors_says_what_to_install(tmp_path, monkeypatch):
    folder = esmc_folder(tmp_path / "esmc")
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ModelError, match=r"layer_1.safetensors: .*pip install 'kneurons\[hf\]'"):
        load_sae(folder, "esmc", layer=1)


# -- exactness of feature edits on an attached SAE ------------------------------------------------
def attach_interprot(model: EsmClassifier, layer: int, tmp_path: Path, seed: int = 0) -> SparseAutoencoder:
    path = tmp_path / f"sae_{layer}.pt"
    torch.save(interprot_state(d=model.embed_dim, seed=seed), path)
    sae = load_sae(path, "interprot", layer=layer, k=12)
    model.attach_sae(sae)
    return sae


@pytest.mark.parametrize("backend", ["fair-esm", "esmc"])
def test_identity_edit_is_the_intact_model_bit_for_bit(backend, tmp_path):
    model = BACKENDS[backend]()
    tokens = model.tokenize(SEQS)
    keys = set(model.state_dict())
    with torch.no_grad():
        model.embedding_rescale = False  # InterProt's input point: ESM-2 without the x 0.88
        intact = model(tokens)
        model.embedding_rescale = True
    for layer in (1, model.num_layers):
        attach_interprot(model, layer, tmp_path)
        point = model.module(layer, FEATURE_MODULE)
        assert point.out_features == 96
        with torch.no_grad():
            assert torch.equal(model(tokens), intact)  # attached, no hook: nothing but the input point
            with module_output_hook(point, lambda f: f.clone()):
                assert torch.equal(model(tokens), intact)  # f' = f through the edit
            with module_output_hook(point, lambda f: None):
                assert torch.equal(model(tokens), intact)  # a hook that only reads
            with module_output_hook(point, lambda f: torch.zeros_like(f)):
                zeroed = model(tokens)
        assert not torch.allclose(zeroed, intact, atol=1e-4)
        assert point._stream_handle is None  # hooks removed: the stream point is bare again
    assert set(model.state_dict()) == keys  # SAEs are no part of the checkpoint


def test_zeroing_features_keeps_the_error_term(tmp_path):
    model = fair_model().double()
    sae = attach_interprot(model, 1, tmp_path)
    tokens = model.tokenize(SEQS)
    with torch.no_grad():
        x, pm = model.embed(tokens)
        h = model.run_layers(x, pm, 0, 1)  # (T, B, E): fair-esm is time-first
        code = sae.code(h)
        expected = model.classify(
            model.run_layers(h - (code.f @ sae.W_dec) * (code.sigma + 1e-5), pm, 1), tokens
        )
        with module_output_hook(model.module(1, FEATURE_MODULE), lambda f: torch.zeros_like(f)):
            got = model(tokens)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # Several hooks chain on the features, encoded once: the second sees the first's replacement.
    seen = []
    point = model.module(1, FEATURE_MODULE)
    with (
        torch.no_grad(),
        module_output_hook(point, lambda f: f * 2),
        module_output_hook(point, lambda f: seen.append(f.clone())),
    ):
        model(tokens)
    torch.testing.assert_close(seen[0], 2 * code.f)


def test_features_are_units_with_a_hook_point_but_no_weight(tmp_path):
    model = fair_model()
    with pytest.raises(ModelError, match="no SAE is attached at layer 1"):
        model.module(1, FEATURE_MODULE)
    attach_interprot(model, 2, tmp_path)
    assert FEATURE_MODULE not in MODULE_TYPES
    assert model.unit_layers(FEATURE_MODULE) == [2] and model.unit_layers("k_proj") == [0, 1]
    with pytest.raises(ModelError, match="not the output of one linear layer"):
        _ = model.module(2, FEATURE_MODULE).weight
    check_layer(model, 2, [FEATURE_MODULE])  # layer L exists for features
    with pytest.raises(ModelError, match="layer 2 does not exist; the model has 2 layers"):
        check_layer(model, 2)
    with pytest.raises(ModelError, match=r"no sae units at layer 1; only at \[2\]"):
        check_layer(model, 1, [FEATURE_MODULE])
    model.detach_sae(2)
    assert model.unit_layers(FEATURE_MODULE) == []


# -- scoring over features ------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [1, LAYERS])
def test_activation_scores_over_features(layer, tmp_path):
    model = fair_model()
    sae = attach_interprot(model, layer, tmp_path)
    got = activation_per_sequence(model, SEQS, layer, [FEATURE_MODULE], bf16=False)[FEATURE_MODULE]
    tokens = model.tokenize(SEQS)
    (h,) = record_streams(model, lambda: model(tokens), [layer])[layer]
    f = sae.encode(h).abs()  # (T, B, F)
    mask = tokens.ne(model.padding_idx).T.unsqueeze(-1)
    expected = ((f * mask).sum(0) / mask.sum(0)).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert got.shape == (len(SEQS), 96) and (got > 0).any(1).all()


@pytest.mark.parametrize("layer", [1, LAYERS])
def test_ig_over_features_equals_captum_and_is_complete(layer, tmp_path):
    model = fair_model().double()
    attach_interprot(model, layer, tmp_path)
    tokens, gold = model.tokenize(SEQS), torch.tensor(GOLD)
    alphas, weights = integration_points(16, "gausslegendre")
    ours = attribution_per_sequence(
        model, SEQS, GOLD, layer, [FEATURE_MODULE], alphas, weights, dtype=torch.float64
    )[FEATURE_MODULE]
    gap = (
        target_at_scale(model, tokens, gold, layer, FEATURE_MODULE, 1.0)
        - target_at_scale(model, tokens, gold, layer, FEATURE_MODULE, 0.0)
    ).numpy()
    assert np.abs(gap).max() > 0.02  # zeroing the features (error term kept) moves the target
    np.testing.assert_allclose(ours.sum(1), gap, rtol=0, atol=1e-6 * max(1.0, np.abs(gap).max()))
    ref = captum_ig_per_sequence(model, tokens, gold, layer, FEATURE_MODULE, 4, "riemann_right").numpy()
    a, w = integration_points(4, "riemann_right")
    ours4 = attribution_per_sequence(model, SEQS, GOLD, layer, [FEATURE_MODULE], a, w, dtype=torch.float64)
    np.testing.assert_allclose(ours4[FEATURE_MODULE], ref, rtol=1e-6, atol=1e-12)


# -- our own SAE, trained on a fine-tuned model ---------------------------------------------------
@pytest.fixture(scope="module")
def trained_sae(trained_synthetic, tmp_path_factory):
    """A kneurons SAE trained on the fine-tuned synthetic model's stream entering layer 1, saved."""
    model, _ = load_classifier(trained_synthetic.checkpoint)
    split = trained_synthetic.split
    sae = train_sae(
        model,
        split.loc[split["split"] == "train", "sequence"].tolist(),
        1,
        model_sha256=sha256_file(trained_synthetic.checkpoint),
    )
    path = tmp_path_factory.mktemp("sae") / "layer_1.sae.pt"
    save_sae(path, sae)
    return model, sae, path


def test_trained_sae_reconstructs_held_out_tokens(trained_sae, trained_synthetic):
    model, sae, path = trained_sae
    meta = sae.meta
    assert (sae.d, sae.n_features, sae.k) == (32, 256, 8)  # the defaults: F = 8 d, k = d / 4
    assert meta["fvu"] < 0.1, meta
    assert 0 <= meta["dead_share"] < 0.5 and meta["n_heldout_tokens"] > 0
    assert meta["model_sha256"] == sha256_file(trained_synthetic.checkpoint)
    loaded = load_sae(path, "kneurons", layer=1)
    for name in ("W_enc", "b_enc", "W_dec", "b_pre", "b_dec"):
        assert torch.equal(getattr(loaded, name), getattr(sae, name)), name
    assert loaded.meta == meta and loaded.k == sae.k
    with pytest.raises(
        InputError, match=rf"{path}: trained on the stream entering layer 1, asked for layer 2"
    ):
        load_sae(path, "kneurons", layer=2)
    split = trained_synthetic.split
    held = split.loc[split["split"] == "val", "sequence"].tolist()
    report = reconstruction_report(model, loaded, held)
    assert report["fvu"][1] < 0.1 and set(report["fvu"]) == {0, 1, 2}


def test_an_sae_on_the_wrong_layer_is_refused(trained_sae, trained_synthetic, tmp_path):
    model, sae, _ = trained_sae
    split = trained_synthetic.split
    held = split.loc[split["split"] == "val", "sequence"].tolist()
    # The same tensors as an InterProt file given for the neighbouring layers.
    path = tmp_path / "sae_for_layer_1.pt"
    torch.save({"w_enc": sae.W_enc, "w_dec": sae.W_dec, "b_enc": sae.b_enc, "b_pre": sae.b_pre}, path)
    for wrong in (0, 2):
        misplaced = load_sae(path, "interprot", layer=wrong, k=sae.k)
        errors = reconstruction_errors(model, misplaced, held)
        assert errors[wrong] > WRONG_LAYER_RATIO * errors[1], errors
        with pytest.raises(
            InputError, match=rf"{path}: attached to layer {wrong}, .* layer 1 far better \(FVU layer"
        ):
            reconstruction_report(model, misplaced, held)
    check_layer_fit(sae, {0: 0.3, 1: 0.04, 2: 0.5}, max_fvu=0.2)  # its own layer best: accepted


def test_sae_training_is_seeded_and_deterministic(trained_synthetic):
    model, _ = load_classifier(trained_synthetic.checkpoint)
    seqs = trained_synthetic.split["sequence"].tolist()[:60]
    a, b, c = (train_sae(model, seqs, 2, epochs=2, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.W_enc, b.W_enc) and torch.equal(a.W_dec, b.W_dec) and a.meta == b.meta
    assert not torch.equal(a.W_enc, c.W_enc)


def test_features_score_end_to_end_on_a_tiny_fine_tuned_run(trained_sae, trained_synthetic):
    """Attach the trained SAE and score its features like neurons: activation and IG tables."""
    from kneurons.scoring.activation import Activation
    from kneurons.scoring.ig import IntegratedGradients
    from kneurons.scoring.rows import scores_table

    model, sae, path = trained_sae
    model.attach_sae(load_sae(path, "kneurons", layer=1))
    subset = trained_synthetic.split.iloc[:24]
    labels = subset["label"].astype(str).tolist()
    index = {str(label): i for i, label in enumerate(trained_synthetic.labels)}
    try:
        for method in (Activation(bf16=False), IntegratedGradients(steps=4, bf16=False)):
            per = method.attribute(
                model, subset["sequence"].tolist(), [index[x] for x in labels], 1, [FEATURE_MODULE]
            )
            table = scores_table(per, method.name, 1, labels, class_conditional=method.class_conditional)
            assert set(table["module"]) == {FEATURE_MODULE}
            assert len(table[table["label"].isna()]) == sae.n_features
            assert np.isfinite(table["score"]).all() and (table["score"] != 0).any()
    finally:
        model.detach_sae(1)
