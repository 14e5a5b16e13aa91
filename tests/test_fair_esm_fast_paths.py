"""The fair-esm backend's fast paths (gelu, tokenisation): bit-identical to fair-esm's own."""

from __future__ import annotations

import math

import esm.modules
import pytest
import torch

from kneurons.model.backends.fair_esm import backend as fair_esm


def reference_gelu(x: torch.Tensor) -> torch.Tensor:
    """fair-esm's formula, written out (the function the backend replaces)."""
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_gelu_is_bit_identical_without_grad(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x = (torch.randn(300, 257) * 4).to(dtype)
    with torch.no_grad():
        assert torch.equal(fair_esm.gelu(x), reference_gelu(x))
    # the input is not modified in place
    assert torch.equal(x, (torch.manual_seed(0), (torch.randn(300, 257) * 4).to(dtype))[1])


def test_gelu_gradient_matches_fair_esm() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = fair_esm.gelu(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(reference_gelu(x2).sum(), x2)
    assert torch.equal(y, reference_gelu(x2))
    assert torch.equal(g, g2)


def test_transformer_layers_use_it_and_match_the_formula() -> None:
    """fair-esm's TransformerLayer looks gelu up at call time, so the layer runs the backend's."""
    assert esm.modules.gelu is fair_esm.gelu
    torch.manual_seed(2)
    layer = esm.modules.TransformerLayer(32, 64, 4, use_rotary_embeddings=True).eval()
    x = torch.randn(9, 3, 32)
    with torch.no_grad():
        out, _ = layer(x)
        h = x + layer.self_attn(*(layer.self_attn_layer_norm(x),) * 3)[0]
        expected = h + layer.fc2(reference_gelu(layer.fc1(layer.final_layer_norm(h))))
    assert torch.equal(out, expected)


def test_tokenize_gives_fair_esm_batch_converter_ids() -> None:
    """The fast per-character path and fair-esm's own encoder give the same tensor, specials,
    whitespace and unknown characters included (those take fair-esm's path)."""
    import random

    alphabet = fair_esm.get_alphabet()
    assert all(t.startswith("<") for t in alphabet.all_toks if len(t) > 1)  # what the fast path relies on
    singles = [t for t in alphabet.all_toks if len(t) == 1]
    rng = random.Random(0)
    seqs = ["".join(rng.choice(singles) for _ in range(rng.randint(0, 40))) for _ in range(200)]
    seqs += ["MKT<mask>AYIA", "<cls>ACD", "AC DE", "  ", "", "ACD<unk>"]
    reference = alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(seqs)])[2]
    assert torch.equal(fair_esm.tokenize(seqs), reference)
    with pytest.raises(KeyError):  # an unknown character fails as fair-esm's encoder fails
        fair_esm.tokenize(["ACDj"])
