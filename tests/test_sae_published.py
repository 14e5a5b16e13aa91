"""SAEs as people publish them (issue #34): the files their projects' public code writes, read at the
input point each was trained on, their activations on one scale, and how well they fit each model.

The files are written here from the public layouts (each fake keeps the published state-dict names
and serialiser; the formulas are re-derived in numpy, float64):

* ESM C: Biohub's ``esm/models/esmc/sae.py``: ``EsmcSaeModel.save_pretrained`` writes
  ``config.json`` (``EsmcSaeConfig``: d_model, codebook_dim, k, available_layers,
  use_residual_update_instead_of_states, model_type) and one ``layer_<N>.safetensors`` per layer
  holding ``EsmcSaeLayer``'s whole state dict: ``W_enc``, ``W_dec``, ``b_dec`` and the buffers
  ``idf`` and ``max``; ``normalize_sae`` reports ``f / max * idf``; with the flag, layer N reads
  ``h[N] - h[N-1]`` (``h[0]`` at layer 0);
* InterPLM: ``interplm/sae/dictionary.py`` (v1.0 ``ReLUSAE``: buffer ``activation_rescale_factor``,
  ``normalize_to_sqrt_d`` saved as a bool tensor; ``encode(normalize_features=True)`` divides by
  the factor) and the first release's ``AutoEncoder`` (no buffers) with ``interplm/sae/normalize.py``
  of each release: v1.0 stores each feature's maximum in the factor, the first release folds it
  into the weights of ``ae_normalized.pt``; ``interplm/embedders/esm.py`` keeps residues only;
* InterProt: ``interprot/sae_model.py`` tensors, and the stream its SAEs were trained on
  (``interprot/esm_wrapper.py``: ESM-2's layers on embeddings without the token-dropout rescale,
  no padding mask), recomputed here from the backbone's own modules.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_sae import (
    BACKENDS,
    DIM,
    GOLD,
    SEQS,
    InterPlmReluSae,
    assert_parity,
    fair_model,
    interprot_state,
    library_hidden_states,
    np_esmc,
    np_interprot,
    stream_sample,
)
from torch import nn

from kneurons.ablation.engine import evaluate_masks
from kneurons.ablation.masks import layout_of
from kneurons.ablation.naive import evaluate_masks_naive
from kneurons.errors import InputError, ModelError
from kneurons.features.formats import load_sae
from kneurons.features.quality import (
    MAX_USEFUL_FVU,
    check_layer_fit,
    sae_inputs,
)
from kneurons.features.sae import OWN_UNITS
from kneurons.model.hooks import module_output_hook
from kneurons.scoring.activation import activation_per_sequence
from kneurons.scoring.ig import attribution_per_sequence
from kneurons.scoring.integration import integration_points
from kneurons.scoring.random import INELIGIBLE, RandomScores
from kneurons.scoring.reference import captum_ig_per_sequence, target_at_scale
from kneurons.vocabulary import FEATURE_MODULE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- ESM C: EsmcSaeModel.save_pretrained's folder -------------------------------------------------
class EsmcSaeLayerLayout(nn.Module):
    """``EsmcSaeLayer``'s parameters and buffers (published names and shapes)."""

    def __init__(self, d: int, c: int, seed: int, stats: bool) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W_enc = nn.Parameter(torch.randn(d, c, generator=g) / d**0.5)
        self.W_dec = nn.Parameter(torch.randn(c, d, generator=g) / d**0.5)
        self.b_dec = nn.Parameter(0.2 * torch.randn(d, generator=g))
        # trained variants ship their statistics; others keep the ones the class registers
        self.register_buffer("idf", torch.rand(c, generator=g) + 0.5 if stats else torch.ones(c))
        self.register_buffer("max", torch.rand(c, generator=g) + 0.5 if stats else torch.ones(c))


def esmc_published(
    dest: Path,
    d: int = DIM,
    c: int = 96,
    k: int = 12,
    layers=(1,),
    update: bool | None = False,
    stats: bool = True,
    seed: int = 0,
) -> Path:
    """A folder as ``EsmcSaeModel.save_pretrained`` writes it; ``update`` None: a legacy config
    without the flag (the repos published before it)."""
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    config = {"d_model": d, "codebook_dim": c, "k": k, "available_layers": list(layers)}
    if update is not None:
        config["use_residual_update_instead_of_states"] = update
    (dest / "config.json").write_text(json.dumps({**config, "model_type": "esmc_sae"}, indent=2))
    for i, layer in enumerate(layers):
        module = EsmcSaeLayerLayout(d, c, seed + i, stats)
        shard = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
        save_file(shard, str(dest / f"layer_{layer}.safetensors"))
    return dest


def test_esmc_shards_with_idf_and_max_are_read_on_the_max_scale(tmp_path):
    from safetensors.torch import load_file

    folder = esmc_published(tmp_path / "esmc", layers=(0, 1))
    shard = load_file(str(folder / "layer_1.safetensors"))
    assert set(shard) == {"W_enc", "W_dec", "b_dec", "idf", "max"}  # what save_pretrained writes
    sae = load_sae(folder, "esmc", layer=1)
    h = stream_sample()
    raw, hat = np_esmc(shard, h.numpy(), 12)
    # features as normalize_sae's `max` scales them; the reconstruction is the SAE's own
    assert_parity(sae, raw / shard["max"].double().numpy(), hat, h)
    desc = sae.describe()
    assert desc["activation_scale"].startswith("per-feature maximum 1") and "max" in desc["activation_scale"]
    assert (
        "held, not applied" in sae.meta["idf"] and sae.meta["use_residual_update_instead_of_states"] is False
    )
    # a variant that ships no statistics (ones): its own units, the raw features
    plain = load_sae(esmc_published(tmp_path / "plain", stats=False), "esmc", layer=1)
    assert plain.activation_scale == OWN_UNITS and plain.feature_scale is None
    # a zero maximum (a feature that never fired) leaves that feature in its own units, counted
    shard["max"][3] = 0.0
    from safetensors.torch import save_file

    save_file(shard, str(folder / "layer_1.safetensors"))
    assert load_sae(folder, "esmc", layer=1).meta["features_unscaled"] == 1
    shard["max"][3] = -1.0
    save_file(shard, str(folder / "layer_1.safetensors"))
    with pytest.raises(InputError, match=r"layer_1.safetensors: tensor max must hold finite values >= 0"):
        load_sae(folder, "esmc", layer=1)


def test_a_wrong_file_is_told_the_tensors_it_holds(tmp_path):
    from safetensors.torch import save_file

    folder = esmc_published(tmp_path / "esmc")
    save_file(
        {"W_enc": torch.zeros(DIM, 96), "W_dec": torch.zeros(96, DIM), "b_pre": torch.zeros(DIM)},
        str(folder / "layer_1.safetensors"),
    )
    with pytest.raises(
        InputError,
        match=r"not an esmc SAE: missing tensors \['b_dec'\]; unexpected tensors \['b_pre'\] \(the file "
        r"holds \['W_dec', 'W_enc', 'b_pre'\]; an esmc SAE holds \['W_enc', 'W_dec', 'b_dec'\], and may "
        r"hold \['idf', 'max'\]\)",
    ):
        load_sae(folder, "esmc", layer=1)
    plm = tmp_path / "ae_normalized.pt"
    torch.save({"encoder.weight": torch.zeros(8, DIM)}, plm)
    with pytest.raises(InputError, match=r"not an interplm SAE: .*the file holds \['encoder.weight'\]"):
        load_sae(plm, "interplm", layer=1)


class _Namespace:
    """A plain Python object in a checkpoint's hyper-parameters (an argparse Namespace in InterProt's)."""


def test_the_lightning_hint_only_for_a_lightning_checkpoint(tmp_path):
    state = {f"sae_model.{k}": v for k, v in interprot_state().items()}
    lightning = tmp_path / "lightning.ckpt"
    torch.save(
        {"state_dict": state, "pytorch-lightning_version": "2.4.0", "hyper_parameters": {"a": _Namespace()}},
        lightning,
    )
    with pytest.raises(
        InputError, match="(?s)not readable as weights.*; a Lightning checkpoint whose hyper-parameters"
    ):
        load_sae(lightning, "interprot", layer=1, k=12)
    other = tmp_path / "other.pt"
    torch.save({"w_enc": _Namespace()}, other)
    with pytest.raises(InputError, match="not readable as weights") as err:
        load_sae(other, "interprot", layer=1, k=12)
    assert "Lightning" not in str(err.value)


# -- ESM C: SAEs on each block's update ------------------------------------------------------------
@pytest.mark.parametrize("backend", ["fair-esm", "esmc"])
def test_residual_update_sae_reads_and_edits_the_update(backend, tmp_path):
    model = BACKENDS[backend]()
    d = model.embed_dim
    folder = esmc_published(tmp_path / "update", d=d, layers=(0, 1, 2), update=True)
    saes = {layer: load_sae(folder, "esmc", layer) for layer in (0, 1)}
    assert saes[1].input_point.update and "update h[l] - h[l-1]" in saes[1].describe()["input_point"]
    for sae in saes.values():
        model.attach_sae(sae)
    tokens = model.tokenize(SEQS)
    hidden = library_hidden_states(model, tokens)  # the library's own h[0..L], batch-first
    seen = {}
    for layer in (0, 1):
        with (
            torch.no_grad(),
            module_output_hook(
                model.module(layer, FEATURE_MODULE), lambda f, n=layer: seen.__setitem__(n, f)
            ),
        ):
            model(tokens)
    update = hidden[1] - hidden[0]
    torch.testing.assert_close(seen[1].transpose(0, 1), saes[1].encode(update), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(seen[0].transpose(0, 1), saes[0].encode(hidden[0]), rtol=1e-4, atol=1e-5)
    # zeroing the layer-1 features: the stream entering 1 is h[0] + the edited update (h[1] + delta)
    sae = saes[1]
    code = sae.code(update)
    delta = sae.edit_delta(code, torch.zeros_like(code.f))
    with torch.no_grad():
        x, pm = model.embed(tokens)
        h1 = model.run_layers(x, pm, 0, 1)
        h1 = h1 + (delta if model.batch_dim == 0 else delta.transpose(0, 1))
        model.detach_sae(0)
        expected = model.classify(model.run_layers(h1, pm, 1), tokens)
        with module_output_hook(model.module(1, FEATURE_MODULE), torch.zeros_like):
            got = model(tokens)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, model(tokens), atol=1e-4)
    # a pass that starts at layer 1 cannot know the update of block 0: refused, not guessed
    with torch.no_grad(), module_output_hook(model.module(1, FEATURE_MODULE), torch.zeros_like):
        x, pm = model.embed(tokens)
        h1 = model.run_layers(x, pm, 0, 1)
        model.classify(model.run_layers(h1, pm, 0, 1), tokens)  # passes block 0 first: fine
        with pytest.raises(ModelError, match="the stream entering layer 0 is not known at layer 1"):
            model.run_layers(h1, pm, 1)
    assert model.unit_start(1, FEATURE_MODULE) == (0, 0)


def test_residual_update_features_are_scored_and_ablated_from_the_block_before(tmp_path):
    model = fair_model().double()
    folder = esmc_published(tmp_path / "update", layers=(1, 2), update=True)
    for layer in (1, 2):
        model.attach_sae(load_sae(folder, "esmc", layer))
    tokens, gold = model.tokenize(SEQS), torch.tensor(GOLD)
    for layer in (1, 2):
        alphas, weights = integration_points(32, "gausslegendre")
        ours = attribution_per_sequence(
            model, SEQS, GOLD, layer, [FEATURE_MODULE], alphas, weights, bf16=False, dtype=torch.float64
        )[FEATURE_MODULE]
        gap = (
            target_at_scale(model, tokens, gold, layer, FEATURE_MODULE, 1.0)
            - target_at_scale(model, tokens, gold, layer, FEATURE_MODULE, 0.0)
        ).numpy()
        assert np.abs(gap).max() > 1e-3
        np.testing.assert_allclose(ours.sum(1), gap, rtol=0, atol=1e-5 * max(1.0, np.abs(gap).max()))
        ref = captum_ig_per_sequence(model, tokens, gold, layer, FEATURE_MODULE, 4, "riemann_right").numpy()
        a, w = integration_points(4, "riemann_right")
        ours4 = attribution_per_sequence(
            model, SEQS, GOLD, layer, [FEATURE_MODULE], a, w, dtype=torch.float64
        )
        np.testing.assert_allclose(ours4[FEATURE_MODULE], ref, rtol=1e-6, atol=1e-12)
    # the ablation engine starts these masks at the block before: the naive loop's predictions
    layout = layout_of(model, (FEATURE_MODULE,))
    rng = np.random.default_rng(0)
    masks = [
        {b: rng.random(n) < 0.4 for b, n in zip(layout.blocks, layout.sizes, strict=True)} for _ in range(4)
    ]
    masks.append({layout.blocks[0]: np.ones(layout.sizes[0], dtype=bool)})
    fast = evaluate_masks(model.float(), SEQS, [*masks, {}], token_budget=60, masks_per_pass=2)
    naive = evaluate_masks_naive(model, SEQS, [*masks, {}], token_budget=60)
    assert (fast == naive).all()


def test_esmc_configs_without_the_flag_read_states_and_a_bad_flag_is_refused(tmp_path):
    legacy = load_sae(esmc_published(tmp_path / "legacy", update=None), "esmc", layer=1)
    assert not legacy.input_point.update and legacy.input_point == legacy.input_point.plain
    bad = esmc_published(tmp_path / "bad")
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "use_residual_update_instead_of_states": "yes"}))
    with pytest.raises(InputError, match="use_residual_update_instead_of_states must be true or false"):
        load_sae(bad, "esmc", layer=1)


# -- InterPLM: both releases, one scale ----------------------------------------------------------------
def interplm_trained(d: int = DIM, n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """A trained ``ReLUSAE``'s weights (no buffers: the first release's ``AutoEncoder`` layout)."""
    torch.manual_seed(seed)
    state = InterPlmReluSae(d, n).state_dict()
    return {k: v for k, v in state.items() if k != "activation_rescale_factor"}


def np_raw_features(state: dict, x: np.ndarray) -> np.ndarray:
    s = {k: v.double().numpy() for k, v in state.items()}
    return np.maximum((x - s["bias"]) @ s["encoder.weight"].T + s["encoder.bias"], 0)


def released(root: Path, state: dict, maximum: torch.Tensor) -> dict[str, Path]:
    """The same SAE as each release's ``normalize.py`` leaves it, in ``layer_1`` folders."""
    out = {}
    v1 = root / "v1" / "layer_1"
    v1.mkdir(parents=True)
    torch.save(  # v1.0: the maximum in the buffer, the flag saved as a bool tensor
        {**state, "activation_rescale_factor": maximum, "normalize_to_sqrt_d": torch.tensor(False)},
        v1 / "ae_normalized.pt",
    )
    out["v1"] = v1 / "ae_normalized.pt"
    first = root / "first" / "layer_1"
    first.mkdir(parents=True)
    folded = {k: v.clone() for k, v in state.items()}
    with torch.no_grad():  # the first release's create_normalized_model, inf replaced by 0 as it does
        folded["encoder.weight"].div_(maximum.unsqueeze(1))
        folded["encoder.weight"][folded["encoder.weight"].isinf()] = 0
        folded["encoder.bias"].div_(maximum)
        folded["encoder.bias"][folded["encoder.bias"].isinf()] = 0
        folded["decoder.weight"].mul_(maximum.unsqueeze(0))
    torch.save(folded, first / "ae_normalized.pt")
    torch.save(state, first / "ae_unnormalized.pt")
    out["first"], out["raw"] = first / "ae_normalized.pt", first / "ae_unnormalized.pt"
    return out


def test_both_interplm_releases_report_activations_on_one_scale(tmp_path):
    state = interplm_trained()
    state["encoder.bias"][0] = -100.0  # a dead feature: its maximum is 0
    h = stream_sample()
    x = h.numpy().reshape(-1, DIM)
    raw = np_raw_features(state, x)
    maximum = torch.as_tensor(raw.max(0), dtype=torch.float32)  # normalize.py's statistic
    assert (maximum > 0).any() and (maximum == 0).any()  # live and dead features alike
    files = released(tmp_path, state, maximum)
    saes = {name: load_sae(path, "interplm", layer=1).double() for name, path in files.items()}
    f = {name: sae.encode(h).reshape(-1, sae.n_features).numpy() for name, sae in saes.items()}
    # one scale whichever release wrote the file: every live feature peaks at 1 on the data
    np.testing.assert_allclose(f["v1"], f["first"], rtol=1e-5, atol=1e-6)
    live = maximum.numpy() > 0
    np.testing.assert_allclose(f["v1"].max(0)[live], 1.0, rtol=1e-5)
    np.testing.assert_allclose(f["raw"], raw, rtol=1e-5, atol=1e-6)  # no maximum: its own units
    assert saes["v1"].activation_scale.startswith("per-feature maximum 1 (activations divided")
    assert saes["first"].activation_scale.startswith("per-feature maximum 1 (folded into the weights")
    assert saes["raw"].activation_scale == OWN_UNITS
    assert (saes["v1"].meta["release"], saes["first"].meta["release"]) == ("v1.0", "first release")
    assert saes["v1"].meta["features_unscaled"] == int((~live).sum())
    # the same SAE: the same reconstruction
    hats = [sae.decode(sae.code(h)).numpy() for sae in saes.values()]
    for hat in hats[1:]:
        np.testing.assert_allclose(hat, hats[0], rtol=1e-5, atol=1e-5)
    assert all(sae.input_point.positions == "residues" for sae in saes.values())


def test_interplm_v1_normalize_to_sqrt_d(tmp_path):
    """v1.0's ``normalize_to_sqrt_d``: inputs scaled to norm sqrt(d), the reconstruction scaled back."""
    state = interplm_trained()
    factor = torch.rand(64, generator=torch.Generator().manual_seed(3)) + 0.5
    path = tmp_path / "layer_1" / "ae_normalized.pt"
    path.parent.mkdir()
    torch.save(
        {**state, "activation_rescale_factor": factor, "normalize_to_sqrt_d": torch.tensor(True)}, path
    )
    sae = load_sae(path, "interplm", layer=1)
    assert sae.normalize_to_sqrt_d and sae.meta["normalize_to_sqrt_d"]
    h = stream_sample()
    x = h.numpy()
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    xn = x / norm * math.sqrt(DIM)
    s = {k: v.double().numpy() for k, v in state.items()}
    f_raw = np.maximum((xn - s["bias"]) @ s["encoder.weight"].T + s["encoder.bias"], 0)
    hat = (f_raw @ s["decoder.weight"].T + s["bias"]) * norm / math.sqrt(DIM)
    assert_parity(sae, f_raw / factor.double().numpy(), hat, h)
    # an edit keeps the error term and is scaled back by the token's norm / sqrt(d)
    sae = sae.double()
    code = sae.code(h)
    zeroed = sae.edit(h, code, torch.zeros_like(code.f))
    expected = x - (f_raw @ s["decoder.weight"].T) * norm / math.sqrt(DIM)
    np.testing.assert_allclose(zeroed.numpy(), expected, rtol=1e-9, atol=1e-9)
    assert torch.equal(sae.edit(h, code, code.f.clone()), h)


# -- input points: InterPLM's residues ------------------------------------------------------------------
def interplm_attached(model, tmp_path: Path, layer: int = 1, state: dict | None = None):
    path = tmp_path / f"layer_{layer}" / "ae_unnormalized.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state or interplm_trained(), path)
    sae = load_sae(path, "interplm", layer=layer)
    model.attach_sae(sae)
    return sae


def test_interplm_features_exist_at_residues_only(tmp_path):
    model = fair_model()
    sae = interplm_attached(model, tmp_path)
    tokens = model.tokenize(SEQS)
    residues = model.residue_mask(tokens).T  # (T, B)
    seen, entering = {}, {}
    layer1 = model.esm.layers[1]
    handle = layer1.register_forward_pre_hook(lambda _m, args: entering.__setitem__("x", args[0]))
    try:
        with (
            torch.no_grad(),
            module_output_hook(model.module(1, FEATURE_MODULE), lambda f: seen.__setitem__("f", f)),
        ):
            model(tokens)
            clean = entering["x"]
            expected = sae.encode(clean) * residues.unsqueeze(-1)
            torch.testing.assert_close(seen["f"], expected)
            assert (seen["f"][~residues] == 0).all() and (seen["f"][residues] != 0).any()
            with module_output_hook(model.module(1, FEATURE_MODULE), lambda f: torch.full_like(f, 5.0)):
                model(tokens)
    finally:
        handle.remove()
    edited = entering["x"]
    # neither encoded nor edited outside the residues: BOS, EOS and padding keep the clean stream
    assert torch.equal(edited[~residues], clean[~residues])
    assert not torch.allclose(edited[residues], clean[residues])
    # activation scores average over the residues, where the features exist
    got = activation_per_sequence(model, SEQS, 1, [FEATURE_MODULE], bf16=False)[FEATURE_MODULE]
    want = (expected.abs().sum(0) / residues.sum(0, keepdim=True).T).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # the SAE report's inputs are the residue tokens
    assert len(sae_inputs(model, sae, SEQS)[1]) == sum(len(s) for s in SEQS)


def test_random_features_are_drawn_among_those_active_at_the_input_tokens(tmp_path):
    """A feature that fires at BOS only is absent for a residues-only SAE: it is never drawn."""
    model = fair_model()
    with torch.no_grad():
        x, _ = model.embed(model.tokenize(SEQS))
    bos = x[0, 0].double()  # time-first: the BOS embedding, the same in every protein
    state = interplm_trained(n=8)
    state["bias"] = torch.zeros(DIM)
    state["encoder.weight"][0] = (bos / bos.norm()).float()
    state["encoder.bias"][0] = -0.99 * float(bos.norm())
    sae = interplm_attached(model, tmp_path, layer=0, state=state)
    everywhere = (sae.encode(x) != 0).any(0).any(0)
    assert everywhere[0]  # it fires at BOS
    scoring = pd.DataFrame({"sequence": SEQS, "label": list("abcb"), "label_index": GOLD})
    table = RandomScores(seeds=(0,)).score_layer(model, scoring, 0, module_types=(FEATURE_MODULE,))
    scores = table.sort_values("neuron")["score"].to_numpy()
    residues = model.residue_mask(model.tokenize(SEQS)).T
    at_residues = (sae.encode(x)[residues] != 0).any(0).numpy()
    assert scores[0] == INELIGIBLE and not at_residues[0]
    np.testing.assert_array_equal(scores != INELIGIBLE, at_residues)


# -- input points: InterProt's unrescaled run --------------------------------------------------------
def interprot_wrapper_stream(model, sequence: str, layer: int) -> torch.Tensor:
    """InterProt's ``ESM2Model.get_layer_activations`` on our backbone's modules: ``embed_scale *
    embed_tokens(tokens)`` (embed_scale 1, no token-dropout rescale), then ``layers[:layer]`` without
    a padding mask, one protein at a time. ``(T, d)``, BOS and EOS included."""
    e = model.esm
    tokens = model.tokenize([sequence])
    with torch.no_grad():
        x = (1 * e.embed_tokens(tokens)).transpose(0, 1)
        for block in e.layers[:layer]:
            x, _ = block(x, self_attn_padding_mask=None, need_head_weights=False)
    return x[:, 0]


def test_interprot_reads_the_stream_it_was_trained_on(tmp_path):
    model = fair_model()
    state = interprot_state()
    path = tmp_path / f"esm2_plm{DIM}_l1_sae96_k12.pt"
    torch.save(state, path)
    sae = load_sae(path, "interprot", layer=1)
    assert not sae.input_point.rescaled_embeddings and "0.88" in sae.describe()["input_point"]
    tokens = model.tokenize(SEQS)
    with torch.no_grad():
        plain = {}
        with module_output_hook(model.stream_point(1), lambda h: plain.__setitem__("h", h.clone())):
            model(tokens)  # the model's own run, before the SAE is attached
    model.attach_sae(sae)
    assert not model.embedding_rescale
    seen = {}
    with (
        torch.no_grad(),
        module_output_hook(model.module(1, FEATURE_MODULE), lambda f: seen.__setitem__("f", f)),
    ):
        model(tokens)
    differ = 0
    for b, seq in enumerate(SEQS):
        stream = interprot_wrapper_stream(model, seq, 1)
        n = len(seq) + 2
        ref_f, _ = np_interprot(state, stream.double().numpy(), 12)
        np.testing.assert_allclose(seen["f"][:n, b].double().numpy(), ref_f, rtol=1e-4, atol=1e-5)
        # the model's own (rescaled) run is another stream: other active features
        own = sae.encode(plain["h"][:n, b])
        differ += int(((own != 0) != (seen["f"][:n, b] != 0)).sum())
    assert differ > 0
    # one run of the model cannot serve an SAE with the rescale and one without
    other = tmp_path / "kn.pt"
    torch.save(interprot_state(seed=1), other)
    trained_layout = load_sae(other, "interprot", layer=2, k=12)
    trained_layout.input_point = trained_layout.input_point.plain  # as the workflow's own SAEs read
    with pytest.raises(
        InputError, match=r"kn.pt: reads the model run with ESM-2's token-dropout rescale.*cannot serve both"
    ):
        model.attach_sae(trained_layout)
    model.detach_sae(1)
    assert model.embedding_rescale


# -- the quality of an SAE on a model -----------------------------------------------------------------
def test_wrong_layer_check_compares_every_layer_and_has_an_absolute_limit(tmp_path):
    path = tmp_path / "sae.pt"
    torch.save(interprot_state(), path)
    sae = load_sae(path, "interprot", layer=3, k=12)
    check_layer_fit(sae, {0: 0.5, 1: 0.3, 2: 0.1, 3: 0.05, 4: 0.2}, max_fvu=0.2)  # its own layer best
    # two layers off: it fits layer 1 far better (the old check compared the neighbours only)
    with pytest.raises(
        InputError, match=rf"{path}: attached to layer 3, this SAE reconstructs layer 1 far better"
    ):
        check_layer_fit(sae, {0: 0.5, 1: 0.017, 2: 0.3, 3: 0.48, 4: 0.6}, max_fvu=0.2)
    # it fits no layer (a neighbour is only less bad): no wrong layer, the quality rule's business
    check_layer_fit(sae, {2: 0.367, 3: 0.726, 4: 0.9}, max_fvu=0.2)
    # worse than predicting every token by the mean: refused whatever the other layers say
    with pytest.raises(InputError, match=rf"{path}: .* worse than predicting every token by the mean"):
        check_layer_fit(sae, {2: 1.5, 3: 1.42, 4: 1.3}, max_fvu=0.2)
    assert MAX_USEFUL_FVU == 1.0
