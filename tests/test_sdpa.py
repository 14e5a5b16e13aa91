"""The SDPA attention fast path matches fair-esm's reference attention (outputs, gradients, hooks)."""

from __future__ import annotations

import copy

import pytest
import torch
from esm.multihead_attention import MultiheadAttention

from kneurons.errors import ConfigError
from kneurons.model.backends.fair_esm.attention import (
    SdpaMultiheadAttention,
    attention_backend,
    disable_sdpa,
    enable_sdpa,
    get_attention,
    set_attention,
)
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone, tokenize

ATOL = 1e-5
RTOL = 1e-4
ATTN_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj")


def _model(seed: int = 0) -> EsmClassifier:
    torch.manual_seed(seed)
    spec = BackboneSpec(name="custom", num_layers=2, embed_dim=32, attention_heads=4)
    model = EsmClassifier(build_backbone(spec), num_classes=3)
    disable_sdpa(model)  # start from fair-esm's own attention whatever the package default is
    return model.double()  # float64: differences then come from the algorithm, not rounding


@pytest.fixture()
def tokens() -> torch.Tensor:
    # Three lengths: the shorter sequences are padded, so the key padding mask is exercised.
    toks = tokenize(["MKTAYIAKQRQISFVKSHFSRQ", "MKVLA", "GSHMLEDPVAGW"])
    assert (toks == 1).any(), "test needs padding"
    return toks


def _forward_backward(model: EsmClassifier, tokens: torch.Tensor):
    model.zero_grad()
    logits = model(tokens)
    # A loss that touches every logit, so gradients reach every parameter.
    (logits.pow(2).sum() + logits[:, 0].sum()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


def test_sdpa_matches_reference_outputs_and_gradients(tokens):
    ref = _model()
    fast = enable_sdpa(copy.deepcopy(ref))
    assert get_attention(ref) == "reference" and get_attention(fast) == "sdpa"
    for mode in ("eval", "train"):  # ESM-2 has no attention dropout, so train mode must match too
        getattr(ref, mode)()
        getattr(fast, mode)()
        out_ref, g_ref = _forward_backward(ref, tokens)
        out_fast, g_fast = _forward_backward(fast, tokens)
        torch.testing.assert_close(out_fast, out_ref, atol=ATOL, rtol=RTOL)
        assert g_ref.keys() == g_fast.keys()
        for name in g_ref:
            torch.testing.assert_close(g_fast[name], g_ref[name], atol=ATOL, rtol=RTOL, msg=name)
    # the attention projections' gradients are the ones the fused kernel could get wrong
    assert any("self_attn.k_proj" in n for n in g_ref)


def test_sdpa_matches_reference_per_token_with_padding(tokens):
    """Residual stream after all layers, every position (padding included), fp32 as in real use."""
    ref = _model().float().eval()
    fast = enable_sdpa(copy.deepcopy(ref))
    x, pm = ref.embed(tokens)
    assert pm is not None
    with torch.no_grad():
        h_ref = ref.run_layers(x, pm)
        h_fast = fast.run_layers(x, pm)
    torch.testing.assert_close(h_fast, h_ref, atol=1e-5, rtol=1e-4)
    # padding matters: without the mask the fast path would give different residue states
    with torch.no_grad():
        h_nomask = fast.run_layers(x, None)
    residues = ~pm.transpose(0, 1)  # (T, B)
    assert not torch.allclose(h_nomask[residues], h_ref[residues], atol=1e-4)


def test_neuron_hooks_fire_and_are_used_on_fast_path(tokens):
    """Forward hooks on the four attention Linear modules see the same activations, and a hook
    that zeroes k_proj neurons changes the output identically on both backends."""
    ref = _model().eval()
    fast = enable_sdpa(copy.deepcopy(ref))

    def record(model):
        seen: dict[str, torch.Tensor] = {}
        handles = []
        for layer in range(model.num_layers):
            for mt in ATTN_MODULES:

                def hook(_m, _inp, out, key=f"{layer}.{mt}"):
                    seen[key] = out.detach().clone()

                handles.append(model.module(layer, mt).register_forward_hook(hook))
        with torch.no_grad():
            model(tokens)
        for h in handles:
            h.remove()
        return seen

    seen_ref, seen_fast = record(ref), record(fast)
    assert set(seen_fast) == {f"{layer}.{m}" for layer in range(2) for m in ATTN_MODULES}
    for key in seen_ref:
        torch.testing.assert_close(seen_fast[key], seen_ref[key], atol=ATOL, rtol=RTOL, msg=key)

    def masked_logits(model):
        keep = torch.ones(model.neuron_count("k_proj"), dtype=torch.float64)
        keep[::2] = 0.0
        h = model.module(1, "k_proj").register_forward_hook(lambda _m, _i, out: out * keep)
        with torch.no_grad():
            out = model(tokens)
        h.remove()
        return out

    with torch.no_grad():
        plain = fast(tokens)
    m_ref, m_fast = masked_logits(ref), masked_logits(fast)
    torch.testing.assert_close(m_fast, m_ref, atol=ATOL, rtol=RTOL)
    assert not torch.allclose(m_fast, plain, atol=1e-6), "the mask hook's output was not used"


def test_head_weights_fall_back_to_reference(tokens):
    ref = _model().eval()
    fast = enable_sdpa(copy.deepcopy(ref))
    with torch.no_grad():
        r = ref.esm(tokens, need_head_weights=True)
        f = fast.esm(tokens, need_head_weights=True)
    torch.testing.assert_close(f["attentions"], r["attentions"])
    torch.testing.assert_close(f["logits"], r["logits"])
    # without head weights the fast path returns no weights at all
    attn = fast.esm.layers[0].self_attn
    x, pm = fast.embed(tokens)
    _, w = attn(x, x, x, key_padding_mask=pm, need_weights=True)
    assert w is None
    _, w_ref = ref.esm.layers[0].self_attn(x, x, x, key_padding_mask=pm, need_weights=True)
    assert w_ref is not None


def test_switching_and_context_restore():
    model = _model()
    with attention_backend(model, "sdpa"):
        assert all(
            type(m) is SdpaMultiheadAttention for m in model.modules() if isinstance(m, MultiheadAttention)
        )
    assert get_attention(model) == "reference"
    set_attention(model, "sdpa")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    set_attention(model, "reference")
    assert model.state_dict().keys() == state.keys()
    with pytest.raises(ConfigError, match="unknown backend 'flash'"):
        set_attention(model, "flash")
    with pytest.raises(ConfigError, match="no fair-esm MultiheadAttention"):
        set_attention(torch.nn.Linear(2, 2), "sdpa")


def test_sdpa_under_bf16_autocast(tokens):
    """Mixed precision as on CUDA (here CPU autocast): dtypes line up and results stay close."""
    ref = _model().float().eval()
    fast = enable_sdpa(copy.deepcopy(ref))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        r, f = ref(tokens), fast(tokens)
    assert f.dtype == r.dtype == torch.bfloat16
    with torch.no_grad():
        exact = ref(tokens)
    # bf16 has ~3 significant digits: both backends sit equally close to the fp32 result.
    scale = exact.abs().max()
    assert (f.float() - exact).abs().max() <= 0.03 * scale
    assert (f.float() - r.float()).abs().max() <= 0.03 * scale


def test_config_switch_reaches_models(tmp_path):
    """`model.attention` (default sdpa) selects the backend of built and loaded classifiers."""
    from kneurons.config import validate_config
    from kneurons.model.checkpoint import load_classifier, save_classifier
    from kneurons.model.loading import build_classifier

    cfg = validate_config({})
    assert cfg["model"]["attention"] == "sdpa"
    model, spec = build_classifier(cfg["model"], num_classes=2, download=False)
    assert get_attention(model) == "sdpa"
    ref, _ = build_classifier({**cfg["model"], "attention": "reference"}, num_classes=2, download=False)
    assert get_attention(ref) == "reference"
    save_classifier(tmp_path / "m.pt", model, spec, ["a", "b"])
    assert get_attention(load_classifier(tmp_path / "m.pt")[0]) == "sdpa"
    assert get_attention(load_classifier(tmp_path / "m.pt", attention="reference")[0]) == "reference"
    with pytest.raises(Exception, match="attention"):
        validate_config({"model": {"attention": "flash"}})
