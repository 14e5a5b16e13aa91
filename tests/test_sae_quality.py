"""Does an SAE fit the model it is attached to (issue #34): the SAE report's figures (FVU at every
layer and at the plain point, loss recovered, dead and dense features) recomputed by hand, and the
quality rule that turns claim 6 inconclusive on a replicate the SAE does not fit: an SAE trained on
replicate 0 of a tiny fine-tuned run, attached to replicate 1 (the same backbone fine-tuned with
another seed)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from test_claims import SETTINGS, _compactness, _density, _random_gap, _write_ablation
from test_sae import DIM, SEQS, fair_model
from workflow_rules import REPO

from kneurons.config import validate_config
from kneurons.features.formats import load_sae
from kneurons.features.quality import fraction_unexplained, reconstruct, reconstruction_report, stream_tokens
from kneurons.model.hooks import module_output_hook

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = validate_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


def near_identity_interplm(tmp_path, layer: int = 1, noise: float = 0.05):
    """An InterPLM file (first-release layout) whose features are ReLU(x) and ReLU(-x) of each
    stream dimension, slightly perturbed: it fits any stream well, and not perfectly."""
    g = torch.Generator().manual_seed(0)
    eye = torch.cat([torch.eye(DIM), -torch.eye(DIM), torch.zeros(2, DIM)])  # (2d + 2, d)
    state = {
        "bias": torch.zeros(DIM),
        "encoder.weight": eye + noise * torch.randn(2 * DIM + 2, DIM, generator=g),
        "encoder.bias": torch.cat([torch.zeros(2 * DIM), torch.full((2,), -100.0)]),  # two dead features
        "decoder.weight": eye.T.clone(),
    }
    path = tmp_path / f"layer_{layer}" / "ae_unnormalized.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return load_sae(path, "interplm", layer=layer)


def test_report_figures_recomputed_by_hand(tmp_path):
    model = fair_model()
    sae = near_identity_interplm(tmp_path)
    model.attach_sae(sae)
    gold = [0, 2, 1, 2]
    report = reconstruction_report(model, sae, SEQS, gold, token_budget=200, max_fvu=0.2)
    tokens = model.tokenize(SEQS)
    residues = model.residue_mask(tokens).T
    streams = {}
    with torch.no_grad():
        for layer in range(model.num_layers + 1):
            with module_output_hook(
                model.stream_point(layer), lambda h, n=layer: streams.__setitem__(n, h.clone())
            ):
                model(tokens)
    for layer, h in streams.items():  # FVU at every stream point, over the residues (InterPLM's tokens)
        x = h[residues]
        assert report["fvu"][layer] == pytest.approx(fraction_unexplained(x, reconstruct(sae, x)), rel=1e-6)
    # at the plain point: every non-padding token, BOS and EOS included; not the same figure
    x = streams[1][model.token_mask(tokens)[..., 0]]
    assert report["fvu_plain"] == pytest.approx(fraction_unexplained(x, reconstruct(sae, x)), rel=1e-6)
    assert report["fvu_plain"] != pytest.approx(report["fvu"][1], rel=1e-3)
    assert 0 < report["fvu"][1] < 0.2 and report["n_tokens"] == sum(len(s) for s in SEQS)
    assert report["input_point"] == sae.input_point.describe()
    # loss recovered: the stream at the residues replaced by the reconstruction, or zeroed
    target = torch.tensor(gold)

    def loss(replace=None) -> float:
        def hook(h):
            new = h.clone()
            new[residues] = replace(h[residues])
            return new

        with torch.no_grad():
            if replace is None:
                return float(F.cross_entropy(model(tokens), target))
            with module_output_hook(model.stream_point(1), hook):
                return float(F.cross_entropy(model(tokens), target))

    clean, recon, zero = loss(), loss(lambda x: sae.decode(sae.code(x))), loss(torch.zeros_like)
    got = report["loss"]
    assert (got["clean"], got["reconstruction"], got["zero"]) == pytest.approx((clean, recon, zero), rel=1e-5)
    assert got["recovered"] == pytest.approx((zero - recon) / (zero - clean), rel=1e-5)
    # dead: features never firing on the residues; dense: firing on more than 10% of them
    f = sae.encode(streams[1][residues])
    fired = (f != 0).float().mean(0)
    assert report["dead_share"] == pytest.approx(float((fired == 0).float().mean()))
    assert report["dense_share"] == pytest.approx(float((fired > 0.1).float().mean()))
    assert report["dead_share"] == pytest.approx(2 / sae.n_features) and 0 < report["dense_share"] < 1


# -- the quality rule across replicates ------------------------------------------------------------
@pytest.fixture(scope="module")
def two_replicates(trained_synthetic, tmp_path_factory):
    """Replicate 1 of the tiny run (the same backbone init, fine-tuning seed 1), an SAE the workflow
    trains on replicate 0's layer 1, and the SAE report of that one file on both replicates."""
    from conftest import SYNTHETIC_MODEL, SYNTHETIC_TRAIN

    from kneurons.jobs.features import run_sae_report, run_train_sae, sae_specs
    from kneurons.settings import job_settings
    from kneurons.tables import write_split
    from kneurons.training.loop import fine_tune

    out = tmp_path_factory.mktemp("replicates")
    fine_tune(
        trained_synthetic.split,
        trained_synthetic.labels,
        {**SYNTHETIC_MODEL, "init_seed": 0},
        SYNTHETIC_TRAIN,
        out / "rep1",
        seed=1,
        device="cpu",
    )
    checkpoints = [trained_synthetic.checkpoint, out / "rep1" / "best.pt"]
    split_path = out / "split.tsv"
    write_split(trained_synthetic.split, split_path)
    cfg = copy.deepcopy(BASE)
    cfg["sae"]["epochs"] = 10
    sae_path = out / "layer1.pt"
    run_train_sae(checkpoints[0], split_path, 1, job_settings("train_sae", cfg), sae_path)
    # the trained file given to every replicate, as units.features gives a published SAE
    features = [{"layer": 1, "sae": str(sae_path), "format": "kneurons", "k": None}]
    specs = sae_specs(features)
    settings = job_settings("sae_report", cfg)
    reports = [out / f"saes{r}.json" for r in range(2)]
    for checkpoint, path in zip(checkpoints, reports, strict=True):
        run_sae_report(checkpoint, split_path, specs, settings, path)
    return {"out": out, "reports": reports, "cfg": cfg}


def test_an_sae_trained_on_another_replicate_makes_claim_6_inconclusive(two_replicates, tmp_path):
    from kneurons.jobs.claims import run_claims
    from kneurons.jobs.stats import run_sae_quality
    from kneurons.tables import read_claims, read_stats_table, write_stats_tables

    reports = [json.loads(p.read_text()) for p in two_replicates["reports"]]
    own, other = (r["saes"][0] for r in reports)
    # the same file on two fine-tuned models: it fits the one it was trained on, not the other
    assert own["fvu_own"] < 0.2 < other["fvu_own"] <= 1.0, (own["fvu_own"], other["fvu_own"])
    assert own["loss_recovered"] > other["loss_recovered"]
    assert set(own["fvu"]) == {"0", "1", "2"} and own["fvu_plain"] is None  # every layer; its own point
    quality_path = tmp_path / "sae_quality.tsv"
    run_sae_quality(
        two_replicates["reports"], {"quality": two_replicates["cfg"]["sae"]["quality"]}, quality_path
    )
    quality = read_stats_table(quality_path, "sae_quality")
    assert list(quality["replicate"]) == [0, 1] and list(quality["fits"]) == [True, False]
    assert quality["reason"].iloc[0] == "" and quality["reason"].iloc[1].startswith(
        f"FVU {other['fvu_own']:.3g} > 0.2"
    )
    # claim 6 on tables that would support it: inconclusive, the reason in its note
    paths = {"random_gap": tmp_path / "random_gap.tsv", "density": tmp_path / "density.tsv"}
    gap = _random_gap([("ig", "preserve", 0.2, 0.1, 0.3)])
    write_stats_tables({"random_gap": gap, "density": _density("ig", 30)}, paths)
    write_stats_tables(
        {"compactness": _compactness([("ig", "pca", 1.0, 0.6, 1.4)])}, {"compactness": tmp_path / "c.tsv"}
    )
    y = np.arange(200) % 4
    _, intact = _write_ablation(tmp_path, "ig", y, y, lambda mode, f, seed: y)  # a model that learned
    inputs = {k: str(v) for k, v in paths.items()} | {
        "intact": [str(intact)],
        "compactness": str(tmp_path / "c.tsv"),
    }
    out = tmp_path / "claims.tsv"
    run_claims(inputs, {"stats": SETTINGS}, out)
    assert read_claims(out).set_index("claim").loc["6", "verdict"] == "supported"
    run_claims({**inputs, "sae_quality": str(quality_path)}, {"stats": SETTINGS}, out)
    claims = read_claims(out).set_index("claim")
    six = claims.loc["6"]
    assert six["verdict"] == "inconclusive"
    assert six["note"].startswith("SAE does not fit its model (sae.quality): replicate 1 layer 1: FVU")
    assert claims.loc["2", "verdict"] == "supported" and claims.loc["2", "note"] == ""  # neurons untouched
    # the atlas shows every replicate's figures
    from kneurons.atlas.features import feature_overview

    overview = feature_overview(two_replicates["reports"][0], None, None, {}, quality_path)
    assert [(q["replicate"], q["fits"]) for q in overview["quality"]] == [(0, True), (1, False)]
    assert overview["saes"][0]["loss_recovered"] == pytest.approx(own["loss_recovered"])


def test_the_workflows_own_sae_reads_every_token_of_the_models_run(two_replicates):
    from kneurons.model.checkpoint import load_classifier

    model, _ = load_classifier(two_replicates["out"] / "rep1" / "best.pt")
    sae = load_sae(two_replicates["out"] / "layer1.pt", "kneurons", layer=1)
    assert sae.input_point == sae.input_point.plain and sae.activation_scale.startswith("the SAE's own units")
    h = stream_tokens(model, SEQS, [1])[1]
    assert len(h) == sum(len(s) + 2 for s in SEQS)  # BOS and EOS included
