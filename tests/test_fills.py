"""Every claim under more than one fill (issue 33, part A): the ``resample`` fill (donors, alignment,
its values against a hand computation), every fill through the engine against the naive loop, several
fills in one evaluation equal to one evaluation per fill, the log-probabilities beside the
predictions, SAE features under mean and resample, and ``ablate.fills`` / the old ``ablate.fill``
in the configuration."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_ablation import random_masks, random_sequences, tiny_model
from test_sae import SEQS, attach_interprot, fair_model
from workflow_rules import REPO

from kneurons.ablation.engine import evaluate_fills, evaluate_masks
from kneurons.ablation.fill import Fill, make_fill, mean_activations
from kneurons.ablation.masks import layout_of
from kneurons.ablation.naive import evaluate_masks_naive
from kneurons.ablation.resample import align_to, donor_activations, donor_index, donor_sequences
from kneurons.config import prefer_user_fill, validate_config
from kneurons.errors import ConfigError, InputError
from kneurons.features.quality import stream_tokens
from kneurons.model.hooks import OutputRecorder
from kneurons.plan import plan_costs
from kneurons.settings import job_settings
from kneurons.vocabulary import FEATURE_MODULE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


# -- resample: donors and alignment ---------------------------------------------------------------
def test_the_donor_depends_on_the_protein_and_the_seed_only_and_is_another_protein():
    donors = random_sequences(30, seed=1)
    evaluated = random_sequences(12, seed=2)
    first = donor_sequences(evaluated, donors, seed=0)
    # the same protein gets the same donor in any order, any batch, alone
    again = donor_sequences(evaluated[::-1], donors, seed=0)[::-1]
    alone = [donor_sequences([s], donors, seed=0)[0] for s in evaluated]
    assert first == again == alone
    # the seed moves the draws (a different run draws other donors)
    assert donor_sequences(evaluated, donors, seed=1) != first
    # donors are spread over the scoring set, not one protein for all
    assert len(set(first)) > 6
    # a protein of the scoring set never donates to itself: the next protein is taken
    for s in donors:
        assert donors[donor_index(s, donors, 0)] != s
    with pytest.raises(InputError, match="no other protein"):
        donor_index("ACDE", ["ACDE", "ACDE"], 0)
    with pytest.raises(InputError, match="no proteins"):
        donor_index("ACDE", [], 0)


def test_alignment_from_the_start_and_the_donors_residue_mean_beyond_its_length():
    # two donors of 3 and 2 tokens (BOS + residues + EOS), one unit; a batch 5 tokens wide
    values = torch.tensor([[[1.0], [10.0]], [[2.0], [20.0]], [[3.0], [0.0]]])  # (T_d=3, B=2, n=1)
    means = torch.tensor([[7.0], [70.0]])
    got = align_to(values, torch.tensor([3, 2]), means, width=5)[..., 0]
    assert got.T.tolist() == [[1, 2, 3, 7, 7], [10, 20, 70, 70, 70]]
    # a batch narrower than the donors takes their first tokens
    assert align_to(values, torch.tensor([3, 2]), means, width=2)[..., 0].T.tolist() == [[1, 2], [10, 20]]


def test_donor_activations_are_the_donors_own_outputs_aligned():
    """The values a resample fill gives: the module's output on the donor, position by position, and
    beyond the donor's tokens the donor's mean over its residues (BOS and EOS excluded)."""
    model = tiny_model(layers=2)
    donors = random_sequences(10, seed=3, lo=5, hi=25)
    evaluated = ["ACDEFGHIKLMNPQRSTVWYACDEF", "MKV"]  # longer and shorter than most donors
    tokens = model.tokenize(evaluated)
    block = (1, "fc1")
    got = donor_activations(model, donors, 4, evaluated, tokens.shape[1], [block])[block]
    assert got.shape == (tokens.shape[1], 2, model.neuron_count("fc1"))
    for b, seq in enumerate(evaluated):
        donor = donors[donor_index(seq, donors, 4)]
        with torch.no_grad(), OutputRecorder({"m": model.module(*block)}) as rec:
            model(model.tokenize([donor]))
        own = rec.outputs["m"][0][:, 0]  # (len(donor) + 2, n): the donor alone, no padding
        n_tok = len(donor) + 2
        upto = min(n_tok, tokens.shape[1])
        assert torch.allclose(got[:upto, b], own[:upto], atol=1e-6)
        if tokens.shape[1] > n_tok:
            assert torch.allclose(got[n_tok:, b], own[1:-1].mean(0).expand_as(got[n_tok:, b]), atol=1e-6)


# -- every fill through the engine ---------------------------------------------------------------
def _fills(model, scoring: list[str]) -> dict[str, Fill]:
    return {
        "zero": Fill(),
        "mean": Fill(kind="mean", means=mean_activations(model, scoring)),
        "pretrained": Fill.from_reference(tiny_model(seed=7, layers=3).esm, layout_of(model)),
        "resample": make_fill("resample", model, {}, scoring_sequences=scoring, seed=3),
    }


@pytest.mark.parametrize("kind", ["resample", "mean"])
def test_the_engine_equals_the_naive_loop_under_resample(kind):
    model = tiny_model(layers=3)
    seqs = random_sequences(23)
    fill = _fills(model, random_sequences(9, seed=5))[kind]
    masks = random_masks(layout_of(model), 40)
    naive = evaluate_masks_naive(model, seqs, masks, fill, token_budget=200)
    for per_pass in (1, 4):
        fast = evaluate_masks(model, seqs, masks, fill, token_budget=200, masks_per_pass=per_pass)
        assert (fast == naive).all()
    assert (naive != naive[0]).any()  # the masks change predictions
    # resample is not zero: the donors' values move predictions the zero fill does not
    assert (naive != evaluate_masks_naive(model, seqs, masks, Fill(), token_budget=200)).any()


def test_resample_predictions_do_not_depend_on_the_batching():
    model = tiny_model(layers=2)
    seqs = random_sequences(17, seed=8)
    fill = make_fill("resample", model, {}, scoring_sequences=random_sequences(6, seed=9), seed=0)
    masks = random_masks(layout_of(model), 12, seed=1)
    small = evaluate_masks(model, seqs, masks, fill, token_budget=60)
    large = evaluate_masks(model, seqs, masks, fill, token_budget=4000)
    assert (small == large).all()


def test_several_fills_in_one_evaluation_equal_one_evaluation_per_fill():
    model = tiny_model(layers=3)
    seqs = random_sequences(19, seed=4)
    fills = _fills(model, random_sequences(9, seed=5))
    masks = random_masks(layout_of(model), 15, seed=2)
    y = np.arange(len(seqs)) % 3
    ev = evaluate_fills(model, seqs, masks, list(fills.values()), y, token_budget=200, masks_per_pass=3)
    assert ev.pred.shape == ev.logp.shape == (len(fills), len(masks), len(seqs))
    for i, fill in enumerate(fills.values()):
        assert (ev.pred[i] == evaluate_masks(model, seqs, masks, fill, token_budget=200)).all()
    # the intact mask ({}) is the same model under every fill
    assert all((ev.pred[i, 0] == ev.pred[0, 0]).all() for i in range(len(fills)))
    assert np.array_equal(ev.logp[:, 0], np.repeat(ev.logp[:1, 0], len(fills), axis=0))
    # the fills differ from each other somewhere
    assert len({ev.pred[i].tobytes() for i in range(len(fills))}) == len(fills)


def test_log_probabilities_are_those_of_the_true_class_within_float_rounding():
    """The log-probabilities come from the batch that ran (tighter batches than the naive loop's,
    several masks per pass): within 1e-5 of each protein's own forward pass."""
    model = tiny_model(layers=2)
    seqs = random_sequences(11, seed=6)
    y = (np.arange(len(seqs)) * 7) % 3
    masks = random_masks(layout_of(model), 5, seed=4)
    fill = _fills(model, random_sequences(7, seed=1))["resample"]
    ev = evaluate_fills(model, seqs, masks, [fill], y, token_budget=90, masks_per_pass=2)
    from kneurons.ablation.fill import fill_hooks
    from kneurons.ablation.masks import active, chunk_tensors, unit_sizes

    sizes = unit_sizes(model)
    worst = 0.0
    for mi, mask in enumerate(masks):
        filled = chunk_tensors([active(mask)], sizes, torch.device("cpu"))
        for si, seq in enumerate(seqs):
            tokens = model.tokenize([seq])
            values = donor_activations(model, fill.donors, fill.seed, [seq], tokens.shape[1], list(filled))
            with torch.no_grad(), fill_hooks(model, filled, fill, values):
                ref = torch.log_softmax(model(tokens).float(), -1)[0, y[si]].item()
            worst = max(worst, abs(ref - float(ev.logp[0, mi, si])))
    assert worst < 1e-5
    assert evaluate_fills(model, seqs, masks, [fill]).logp is None  # no targets, no log-probabilities


# -- SAE features under mean and resample ----------------------------------------------------------
def test_a_features_mean_is_its_mean_over_the_scoring_tokens_zeros_included(tmp_path):
    model = fair_model()
    sae = attach_interprot(model, 1, tmp_path)
    means = mean_activations(model, SEQS, modules=(FEATURE_MODULE,))
    h = stream_tokens(model, SEQS, [1])[1]
    expected = sae.encode(h).mean(0)
    assert torch.allclose(means[(1, FEATURE_MODULE)], expected, atol=1e-5)
    assert (sae.encode(h) == 0).any()  # TopK: the zeros are in the mean


@pytest.mark.parametrize("kind", ["mean", "resample"])
def test_feature_masks_under_mean_and_resample_equal_the_naive_loop(tmp_path, kind):
    model = fair_model()
    with torch.no_grad():
        model.head.bias -= model(model.tokenize(SEQS)).mean(0)
    attach_interprot(model, 1, tmp_path)
    donors = random_sequences(6, seed=3)
    fill = make_fill(kind, model, {}, scoring_sequences=donors, modules=(FEATURE_MODULE,), seed=2)
    layout = layout_of(model, (FEATURE_MODULE,))
    rng = np.random.default_rng(0)
    masks = [{layout.blocks[0]: rng.random(layout.sizes[0]) < p} for p in (0.2, 0.5, 0.9, 1.0)]
    seqs = [*SEQS, *random_sequences(5, seed=11)]
    fast = evaluate_masks(model, seqs, [*masks, {}], fill, token_budget=60, masks_per_pass=2)
    naive = evaluate_masks_naive(model, seqs, [*masks, {}], fill, token_budget=60)
    assert (fast == naive).all()
    assert (fast[:-1] != fast[-1]).any()


def test_pretrained_is_refused_for_features_and_resample_needs_donors(tmp_path):
    model = fair_model()
    attach_interprot(model, 1, tmp_path)
    with pytest.raises(InputError, match="SAE features have no weights to roll back"):
        make_fill("pretrained", model, {"meta": {"pretrained": True}}, modules=(FEATURE_MODULE,))
    with pytest.raises(InputError, match="no scoring sequences"):
        make_fill("resample", model, {})


# -- configuration --------------------------------------------------------------------------------
def test_ablate_fills_and_the_old_one_value_key():
    assert validate_config({"ablate": {"fills": "mean"}})["ablate"]["fills"] == ["mean"]
    old = validate_config({"ablate": {"fill": "mean"}})
    assert old["ablate"]["fills"] == ["mean"] and "fill" not in old["ablate"]
    assert validate_config(old)["ablate"]["fills"] == ["mean"]  # a validated config validates again
    with pytest.raises(ConfigError, match=r"ablate\.fill and ablate\.fills are both given"):
        validate_config({"ablate": {"fill": "mean", "fills": ["zero"]}})
    with pytest.raises(ConfigError, match=r"ablate\.fills: \['zero'\] repeated"):
        validate_config({"ablate": {"fills": ["zero", "mean", "zero"]}})
    with pytest.raises(ConfigError, match=r"unknown fill\(s\) \['half'\]"):
        validate_config({"ablate": {"fill": "half"}})
    with pytest.raises(ConfigError, match="SAE features are ablated with zero, mean, resample"):
        validate_config(
            {"ablate": {"fills": ["pretrained"]}, "units": {"features": [{"layer": 1, "sae": "train"}]}}
        )


def test_a_users_old_fill_wins_over_the_embedded_defaults_fills():
    """Snakemake merges a user's file over config/config.yaml key by key: an old ``ablate.fill`` lands
    beside the default's ``ablate.fills``; the user's one fill wins, and a user's fills stay theirs."""
    merged = copy.deepcopy(BASE)
    merged["ablate"]["fill"] = "mean"
    with pytest.raises(ConfigError, match="both given"):
        validate_config(merged)
    cfg = validate_config(prefer_user_fill(merged, {"ablate": {"fill": "mean"}}))
    assert cfg["ablate"]["fills"] == ["mean"]
    assert merged["ablate"]["fills"] == ["zero", "resample"]  # not changed in place
    # a user who writes fills (or nothing about fills) keeps the merge as it is
    assert prefer_user_fill(BASE, {"ablate": {"fills": ["mean"]}}) is BASE
    assert prefer_user_fill(BASE, {"seed": 3}) is BASE


def test_features_take_the_fills_that_apply_to_them_and_the_plan_counts_every_fill():
    cfg = validate_config(copy.deepcopy(BASE))
    assert cfg["ablate"]["fills"] == ["zero", "resample"]  # the embedded default
    assert job_settings("ablate_features", cfg)["ablate"]["fills"] == ["zero", "resample"]
    more = copy.deepcopy(cfg)
    more["ablate"]["fills"] = ["zero", "mean", "pretrained"]
    more["model"] |= {"pretrained": True, "name": "esm2_t6_8M_UR50D"}
    assert job_settings("ablate_features", more)["ablate"]["fills"] == ["zero", "mean"]
    # one fill more runs every mask's tail once more; resample adds a donor pass per job
    one = copy.deepcopy(cfg)
    one["ablate"]["fills"] = ["zero"]
    costs = {c.stage: c for c in plan_costs(cfg)[0]}
    base = {c.stage: c for c in plan_costs(one)[0]}
    for stage in ("ablate global", "ablate features", "characterise"):
        assert 1.6 < costs[stage].forward / base[stage].forward < 2.2, stage
        assert costs[stage].jobs == base[stage].jobs  # the same jobs: the fills share them


def test_the_main_fill_of_a_table_is_the_one_every_scope_has_whatever_the_row_order():
    """A statistics table sorted by fill names resample first; with ablate.fill_scopes the run's first
    fill (zero) is the only one of the module scopes: figures of one fill draw zero's rows."""
    from kneurons.stats.keys import first_fill

    table = pd.DataFrame(
        {
            "scope": ["global", "global", "layer_module", "layer_module"],
            "fill": ["resample", "zero", "zero", "zero"],
        }
    )
    rows, fill = first_fill(table)
    assert fill == "zero" and list(rows["scope"]) == ["global", "layer_module", "layer_module"]
    # every fill in every scope: the order the rows name them
    even = pd.DataFrame({"scope": ["global"] * 2, "fill": ["mean", "zero"]})
    assert first_fill(even)[1] == "mean"
