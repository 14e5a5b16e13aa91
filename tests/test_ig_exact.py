"""Our integrated gradients equal captum's on the network tail after a module, and are complete.

The reference is ``captum.attr.IntegratedGradients`` applied to ``f(a)`` = the whole model with one
module's output replaced by ``a`` (zero baseline, same steps and rule); ours runs only layers >= l
with the alpha steps stacked in the batch dimension. Float64, a batch with padding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient
from captum.attr._utils.approximation_methods import approximation_parameters

from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone, tokenize
from kneurons.scoring.ig import attribution_per_sequence
from kneurons.scoring.integration import INTEGRATION_METHODS, integration_points
from kneurons.scoring.reference import (
    captum_ig_per_sequence,
    module_output,
    replaced_output_forward,
    target_at_scale,
)

# Different lengths, so the batch carries padding.
SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "MKVLAAGIVG", "MSTNPKPQRKTKRNTNRRPQDVKFPGG", "GAVLIPFWMS"]
GOLD = [0, 2, 1, 2]
# captum multiplies the gradients by its step sizes cast to float32 (exact for Riemann's 1/m, not
# for Gauss-Legendre weights), hence a relative tolerance near float32 epsilon, far below the scores.
RTOL, ATOL = 1e-6, 1e-12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> EsmClassifier:
    torch.manual_seed(0)
    m = EsmClassifier(build_backbone(BackboneSpec("custom", 3, 32, 4)), num_classes=3)
    # A larger head spreads the probabilities (0.5-0.8) so they move with the neurons, unsaturated.
    with torch.no_grad():
        m.head.weight.mul_(2)
    return m.double().eval()


def _ours(model, layer, module, steps, method, target="prob", token_budget=10**6, captum_points=True):
    if captum_points:  # captum's own points (its alphas pass through float32): compares the algorithm alone
        step_sizes, alpha_fn = approximation_parameters(method)
        alphas, weights = alpha_fn(steps), step_sizes(steps)
    else:
        alphas, weights = integration_points(steps, method)
    return attribution_per_sequence(
        model,
        SEQS,
        GOLD,
        layer,
        [module],
        alphas,
        weights,
        target,
        token_budget=token_budget,
        dtype=torch.float64,
    )[module]


def _captum(model, layer, module, steps, method, target="prob"):
    tokens = tokenize(SEQS)
    assert tokens.eq(model.esm.padding_idx).any(), "the test batch must contain padding"
    return captum_ig_per_sequence(
        model, tokens, torch.tensor(GOLD), layer, module, steps, method, target
    ).numpy()


@pytest.mark.parametrize(("layer", "module"), [(0, "q_proj"), (1, "k_proj"), (2, "fc1")])
@pytest.mark.parametrize("method", ["riemann_right", "gausslegendre"])
def test_ig_equals_captum(model, layer, module, method):
    ours = _ours(model, layer, module, 8, method)
    ref = _captum(model, layer, module, 8, method)
    assert np.abs(ref).max() > 1e-3  # not trivially zero
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)
    # With our float64 points the difference is captum's float32 rounding of alpha, far below the scores.
    ours64 = _ours(model, layer, module, 8, method, captum_points=False)
    np.testing.assert_allclose(ours64, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("method", ["riemann_left", "riemann_middle", "riemann_trapezoid"])
def test_other_rules_and_logit_target_equal_captum(model, method):
    np.testing.assert_allclose(
        _ours(model, 1, "v_proj", 6, method, "logit"),
        _captum(model, 1, "v_proj", 6, method, "logit"),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("method", ["riemann_right", "riemann_trapezoid", "gausslegendre"])
@pytest.mark.parametrize("attention", ["sdpa", "reference"])
def test_shared_query_key_pass_equals_captum(model, method, attention):
    """q_proj and k_proj scored together share one pass per step (k's gradient rescaled by 1/alpha);
    each must still equal captum's separate run, also for rules with an alpha = 0 step (trapezoid)
    and on fair-esm's own attention code."""
    from kneurons.model.backends.fair_esm.attention import attention_backend

    step_sizes, alpha_fn = approximation_parameters(method)
    with attention_backend(model, attention):
        both = attribution_per_sequence(
            model, SEQS, GOLD, 1, ["k_proj", "q_proj", "fc2"], alpha_fn(5), step_sizes(5), dtype=torch.float64
        )
        for module in ("q_proj", "k_proj", "fc2"):
            ref = _captum(model, 1, module, 5, method)
            # k's 1/alpha weights reorder captum's float32 step-size rounding: 1e-6 of the largest
            # attribution as the absolute floor (a wrong rescaling is off by factors, not 1e-6).
            np.testing.assert_allclose(both[module], ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


def test_alpha_chunks_and_small_batches_change_nothing(model):
    """A token budget that splits sequences into several batches and alpha steps into chunks."""
    big = _ours(model, 1, "out_proj", 7, "riemann_middle")
    small = _ours(model, 1, "out_proj", 7, "riemann_middle", token_budget=40)
    np.testing.assert_allclose(small, big, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", INTEGRATION_METHODS)
@pytest.mark.parametrize("n", [2, 5, 20])
def test_integration_points_match_captum(method, n):
    step_sizes, alphas = approximation_parameters(method)
    a, w = integration_points(n, method)
    np.testing.assert_allclose(a, alphas(n), atol=1e-7)  # captum's alphas pass through float32
    np.testing.assert_allclose(w, step_sizes(n), atol=1e-12)


def test_gradxact_equals_input_x_gradient(model):
    tokens = tokenize(SEQS)
    f = replaced_output_forward(model, tokens, 2, "fc2")
    a = module_output(model, tokens, 2, "fc2").requires_grad_(True)
    ref = InputXGradient(lambda x: torch.softmax(f(x), -1)).attribute(a, target=torch.tensor(GOLD))
    ref = (ref * tokens.ne(model.esm.padding_idx).unsqueeze(-1)).sum(1).detach().numpy()
    ours = attribution_per_sequence(model, SEQS, GOLD, 2, ["fc2"], [1.0], [1.0], dtype=torch.float64)["fc2"]
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


def _completeness_error(model, layer, module, steps, method):
    tokens, gold = tokenize(SEQS), torch.tensor(GOLD)
    gap = (
        target_at_scale(model, tokens, gold, layer, module, 1.0)
        - target_at_scale(model, tokens, gold, layer, module, 0.0)
    ).numpy()
    return np.abs(_ours(model, layer, module, steps, method).sum(1) - gap).max(), np.abs(gap).max()


def test_completeness_error_shrinks_with_steps(model):
    errors = [_completeness_error(model, 1, "v_proj", m, "riemann_right")[0] for m in (2, 8, 32)]
    assert errors[0] > errors[1] > errors[2]
    err_gl, gap = _completeness_error(model, 1, "v_proj", 8, "gausslegendre")
    assert gap > 0.1
    # Gauss-Legendre with 8 points beats the right Riemann sum with 32 on a smooth path.
    assert err_gl < errors[2]
    assert err_gl < 1e-3 * gap
