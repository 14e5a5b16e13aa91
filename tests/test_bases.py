"""Claim 6 at the same site (issue 33, part C): the stream's linear bases (dimensions, PCA, a random
orthogonal basis) as linear dictionaries, the grid of directions kept, and a model whose class signal
lives in two known PCA directions, where the verdicts must come out that way: the PCA components are
the most compact basis, the SAE's features (which hold the signal in 4 of 32 features) beat the
stream's own dimensions but not its PCA components."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_ablation import random_sequences, tiny_model
from test_claims import SETTINGS

from kneurons.ablation.fill import Fill
from kneurons.config import validate_config
from kneurons.errors import InputError
from kneurons.features.bases import fit_bases, linear_basis, pca_directions, random_rotation
from kneurons.features.quality import stream_tokens
from kneurons.features.sae import InputPoint, SparseAutoencoder
from kneurons.features.same_site import ablate_bases, grid_rows
from kneurons.features.sizes import direction_counts
from kneurons.model.hooks import module_output_hook
from kneurons.stats.claims import evaluate_claims
from kneurons.stats.compactness import compactness
from kneurons.tables import AblationData
from kneurons.vocabulary import FEATURE_MODULE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_linear_basis_reconstructs_the_stream_and_edits_it_as_an_sae_does():
    model = tiny_model(layers=2, dim=16)
    seqs = random_sequences(12, seed=1)
    h = stream_tokens(model, seqs, [1], point=InputPoint(positions="residues"))[1]
    bases = fit_bases(h, 1, seed=3)
    tokens = model.tokenize(seqs)
    with torch.no_grad():
        intact = model(tokens)
    seen: list[torch.Tensor] = []
    for name, basis in bases.items():
        assert basis.linear and basis.n_features == 16 and basis.k is None
        code = basis.code(h)
        assert torch.allclose(basis.decode(code), h, atol=1e-4), name  # exact: no error term
        assert (code.f < 0).any(), name  # negative coordinates stay (no ReLU)
        model.attach_sae(basis)
        point = model.module(1, FEATURE_MODULE)
        with torch.no_grad():
            assert torch.equal(model(tokens), intact)  # attached, nothing edited
            with module_output_hook(point, lambda f: f.clone()):
                assert torch.allclose(model(tokens), intact, atol=1e-5)
            with (
                module_output_hook(point, torch.zeros_like),
                module_output_hook(model.stream_point(1), lambda x, seen=seen: seen.append(x.clone())),
            ):
                model(tokens)
        # every coordinate 0: the stream is the residue mean, in every centred basis
        mean = torch.from_numpy(h.double().mean(0).numpy()).float()
        assert torch.allclose(seen[-1], mean.expand_as(seen[-1]), atol=1e-4), name
    # the basis orders and signs: PCA by variance, fixed signs; the random basis seeded
    q, ratio = pca_directions(h.numpy())
    assert np.all(np.diff(ratio) <= 1e-12) and ratio.sum() == pytest.approx(1.0)
    projected = (h.numpy() - h.numpy().mean(0)) @ q
    assert np.allclose(projected.var(0, ddof=1) / projected.var(0, ddof=1).sum(), ratio, atol=1e-6)
    r = random_rotation(16, seed=3, layer=1)
    assert np.allclose(r.T @ r, np.eye(16), atol=1e-10)
    assert np.array_equal(r, random_rotation(16, 3, 1)) and not np.allclose(r, random_rotation(16, 3, 2))
    with pytest.raises(InputError, match="not a 16 x 16 orthonormal"):
        linear_basis(2 * np.eye(16), np.zeros(16), 1, "dimensions", "test")
    with pytest.raises(InputError, match="no TopK"):
        SparseAutoencoder(
            W_enc=torch.eye(4),
            b_enc=torch.zeros(4),
            W_dec=torch.eye(4),
            b_pre=torch.zeros(4),
            b_dec=torch.zeros(4),
            layer=0,
            k=2,
            zscore=False,
            format="basis",
            source="test",
            linear=True,
        )


def test_the_grid_of_directions_kept():
    assert direction_counts(64) == [1, 2, 4, 8, 16, 32, 64]
    assert direction_counts(48) == [1, 2, 4, 8, 16, 32, 48]
    assert direction_counts(64, [3, 200, 26, 3]) == [3, 26]
    with pytest.raises(InputError, match="none lies in 1..64"):
        direction_counts(64, [100])
    cfg = validate_config({"units": {"directions": [2, 4]}})
    assert cfg["units"]["directions"] == [2, 4] and cfg["units"]["bases"] == [
        "dimensions",
        "pca",
        "random_basis",
    ]


def _signal_model(n_test: int = 72):
    """A 2-layer, 16-dim model whose prediction reads only the pooled final stream's projections
    on its top two PCA directions ``u1, u2`` (the head's weights lie in their span); the labels are
    its own intact predictions. An SAE on that stream (32 features, ReLU) holds ``+u1, -u1, +u2,
    -u2`` as four features and 28 others in the orthogonal complement."""
    model = tiny_model(seed=4, layers=2, dim=16, classes=3)
    layer = model.num_layers  # the stream after the final norm, which the head pools
    scoring = random_sequences(48, seed=20, lo=20, hi=40)
    h = stream_tokens(model, scoring, [layer], point=InputPoint(positions="residues"))[layer]
    q, _ = pca_directions(h.numpy())
    u = q[:, :2]  # (16, 2)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(rng.standard_normal((3, 2)) @ u.T * 8).float())
        model.head.bias.zero_()
    test = random_sequences(n_test, seed=21, lo=20, hi=40)
    with torch.no_grad():
        model.head.bias -= model(model.tokenize(test)).mean(0)  # every class predicted somewhere
        y = model(model.tokenize(test)).argmax(-1).numpy()
    rest = rng.standard_normal((16, 28))
    rest -= u @ (u.T @ rest)  # orthogonal to the signal's plane
    rest /= np.linalg.norm(rest, axis=0)
    dec = np.concatenate([u[:, :1], -u[:, :1], u[:, 1:], -u[:, 1:], rest], axis=1)  # (16, 32)
    mu = torch.from_numpy(h.numpy().astype(np.float64).mean(0)).float()
    w = torch.from_numpy(dec).float()
    sae = SparseAutoencoder(
        W_enc=w,
        b_enc=torch.zeros(32),
        W_dec=w.T.contiguous(),
        b_pre=mu,
        b_dec=mu,
        layer=layer,
        k=None,
        zscore=False,
        format="test",
        source="an SAE holding the signal in 4 features",
    )
    subset = pd.DataFrame({"sequence": scoring, "label": "0", "label_index": 0})
    return model, layer, sae, h, subset, test, y


def test_a_stream_whose_signal_lives_in_two_pca_directions_gives_the_verdicts_it_should():
    model, layer, sae, h, subset, test, y = _signal_model()
    assert len(set(y)) == 3  # the intact model separates the classes
    score = validate_config({})["score"]
    bases = {"features": sae, **fit_bases(h, layer, seed=0)}
    result = ablate_bases(
        model,
        layer,
        bases,
        subset,
        test,
        y,
        ["0", "1", "2"],
        lambda: [Fill()],
        ["activation", "random"],
        score,
        fractions=[0, 0.0625, 0.125, 0.25, 0.5, 1],
        counts=direction_counts(16),
        random_seeds=[0, 1, 2],
    )
    t = result.table
    assert set(t["basis"]) == {"features", "dimensions", "pca", "random_basis"}
    assert set(t["scope"]) == {"global", "directions"} and set(t["mode"]) == {"preserve"}
    assert (result.full_pred == y).all()
    kept = t["n_scope"] - t["n_filled"]
    acc = t.assign(kept=kept).set_index(["basis", "method", "scope", "kept"])["accuracy"]
    # the signal is 2 PCA directions and 4 features: keeping them keeps every prediction
    assert acc[("pca", "activation", "directions", 2)] == 1.0
    assert acc[("features", "activation", "directions", 4)] == 1.0
    assert acc[("dimensions", "activation", "directions", 4)] < 0.9
    data = AblationData(
        t,
        result.preds == y[None, :],
        y,
        result.full_pred,
        np.asarray(result.accessions),
        result.logp,
        result.full_logp,
    )
    table = compactness([data], n_boot=300, seed=1).set_index(["method", "comparison"])
    pca, dims = table.loc[("activation", "pca")], table.loc[("activation", "dimensions")]
    assert pca.k95_other == 2 and pca.k95_features == 4 and dims.k95_other > 4
    assert pca.gap_directions < 0 and dims.gap_directions > 0 and dims.gap_fraction > 0
    assert pca.ci_hi < 0 and dims.ci_lo > 0, table.to_string()
    settings = SETTINGS | {"claims": SETTINGS["claims"] | {"compactness_margin": 0.02}}
    claims = evaluate_claims(
        pd.DataFrame(columns=["method"]), None, None, settings, compactness=table.reset_index()
    )
    six = claims[claims["claim"] == "6"].set_index("statement")["verdict"].to_dict()
    assert six == {
        "knowledge is more compact in SAE features than in the stream's own dimensions": "supported",
        "knowledge is more compact in SAE features than in its PCA components": "not supported",
    }


def test_grid_rows_count_directions_kept_on_both_grids():
    from kneurons.ranking import NeuronLayout
    from kneurons.scoring.random import random_scores

    layout = NeuronLayout(((2, FEATURE_MODULE),), (64,))
    scores = random_scores({FEATURE_MODULE: 64}, 2, [0])
    keys, masks = grid_rows(scores, layout, "random", [0, 0.05, 1], [1, 2, 4, 100], seeds=[0])
    by = keys.assign(kept=keys["n_scope"] - keys["n_filled"])
    assert by[by["scope"] == "global"]["kept"].tolist() == [0, 3, 64]
    assert by[by["scope"] == "directions"]["kept"].tolist() == [0, 1, 2, 4]  # 100 > 64 dropped
    assert [int((~m[(2, FEATURE_MODULE)]).sum()) for m in masks] == [0, 3, 64, 0, 1, 2, 4]
