"""Characterisation of knowledge neurons (kneurons.characterise): units, model plumbing, science.

The science tests use the ``trained_synthetic`` fixture (planted class motifs as ground truth):
class-specific neurons must hurt their own class when suppressed, and the top IG neurons'
best windows must recover the planted motif of their class, while random neurons do not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sstats

from kneurons import characterise as ch
from kneurons.ablation.fill import Fill
from kneurons.ablation.masks import layout_of
from kneurons.ablation.naive import evaluate_masks_naive
from kneurons.config import validate_config
from kneurons.errors import ConfigError, InputError
from kneurons.jobs import characterise as char_jobs
from kneurons.model.checkpoint import save_classifier
from kneurons.model.classifier import MODULE_TYPES, BackboneSpec, EsmClassifier, build_backbone, tokenize
from kneurons.ranking import NeuronLayout
from kneurons.settings import job_settings

# -- helpers ---------------------------------------------------------------------------------


def tiny_model(n_classes: int = 2, seed: int = 0) -> tuple[EsmClassifier, BackboneSpec]:
    torch.manual_seed(seed)
    spec = BackboneSpec(name="custom", num_layers=2, embed_dim=16, attention_heads=2)
    return EsmClassifier(build_backbone(spec), n_classes).eval(), spec


def fake_ig(layout: NeuronLayout, labels: list[str], seed: int = 0) -> pd.DataFrame:
    """A score table shaped like scores/ig.parquet: gold-class rows (label NA) + one set per class."""
    rng = np.random.default_rng(seed)
    frames = []
    for label in [None, *labels]:
        for (layer, module), size in zip(layout.blocks, layout.sizes, strict=False):
            frames.append(
                pd.DataFrame(
                    {
                        "method": "ig",
                        "layer": layer,
                        "module": module,
                        "neuron": np.arange(size),
                        "label": pd.array([label] * size, dtype="string"),
                        "seed": pd.array([None] * size, dtype="Int64"),
                        "score": rng.normal(size=size),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def char_cfg(**over) -> dict:
    cfg = validate_config({})["characterise"]
    cfg.update(over)
    return cfg


# -- windows, PFMs, consensus ------------------------------------------------------------------


def test_best_windows_centre_on_peaks_pad_ends_and_skip_overlaps():
    seqs = ["ACDEFGHIKL", "MNPQRSTVWY"]
    r0 = np.zeros(10)
    r0[0], r0[1], r0[6] = 5.0, 4.0, 3.0  # 1 overlaps the window of 0; 6 does not
    r1 = np.zeros(10)
    r1[4] = 9.0
    wins = ch.best_windows([r0, r1], seqs, width=5, n_windows=10, per_protein=2)
    # protein 1's second peak is the best residue outside its first window (value 0, at the end)
    assert list(wins["window"]) == ["PQRST", "--ACD", "FGHIK", "VWY--"]
    assert list(wins["center"]) == [5, 1, 7, 10]
    assert list(wins["protein"]) == [1, 0, 0, 1]
    top1 = ch.best_windows([r0, r1], seqs, width=5, n_windows=1, per_protein=2)
    assert list(top1["window"]) == ["PQRST"]


def test_best_windows_break_ties_at_random_not_by_order():
    # A residue detector: every A responds the same. Proteins sorted "by class" (first half
    # W-rich, second half not) must not decide which windows are read.
    seqs = ["WAWWAWWWAW"] * 10 + ["GAGGAGGGAG"] * 10
    resp = [np.array([1.0 if a == "A" else 0.0 for a in s]) for s in seqs]
    first = ch.best_windows(resp, seqs, width=3, n_windows=10, per_protein=1, seed=None)
    assert (first["protein"] < 10).all() and (first["center"] == 2).all()  # the old, order-driven pick
    wins = ch.best_windows(resp, seqs, width=3, n_windows=10, per_protein=1, seed=0)
    assert 2 <= (wins["protein"] >= 10).sum() <= 8
    assert set(wins["center"]) == {2, 5, 9}  # every A of a protein can be the peak
    assert (wins["value"] == 1.0).all()
    again = ch.best_windows(resp, seqs, width=3, n_windows=10, per_protein=1, seed=0)
    pd.testing.assert_frame_equal(wins, again)  # seeded: reproducible


def test_pfm_consensus_and_motif_match():
    wins = ["KYQTF", "KYQTA", "KWQTF", "LLLLL"]
    pfm = ch.position_frequency_matrix(wins + ["--Q--"], 5)
    assert pfm.loc[0, "K"] == 3 and pfm.loc[2, "Q"] == 4 and pfm.loc[2, "L"] == 1
    assert pfm.to_numpy().sum() == 21  # gaps are not counted
    assert ch.consensus(pfm, 0.5) == "KYQTF"
    assert ch.consensus(pfm, 0.8) == "--Q--"  # Q: 4/5 residues; K: 3/4
    assert ch.motif_match("KYQTF", "KYQTFA") == 5  # motif overhangs the consensus end
    assert ch.motif_match("--KYQTFA---", "KYQTFA") == 6
    assert ch.motif_match("AAAAAAA", "KYQTFC") == 0


# -- AUROC, permutation test, BH ------------------------------------------------------------------


def test_auroc_equals_mann_whitney():
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(size=200), 1)  # ties on purpose
    labels = rng.random(200) < 0.3
    u = sstats.mannwhitneyu(values[labels], values[~labels]).statistic
    assert ch.auroc(values, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()))
    assert np.isnan(ch.auroc(values, np.zeros(200, bool)))


def _tracks(rng, n_prot=30, length=60, site_len=6):
    tracks = []
    for _ in range(n_prot):
        t = np.zeros(length, bool)
        s = rng.integers(0, length - site_len)
        t[s : s + site_len] = True
        tracks.append(t)
    return tracks


def test_site_enrichment_finds_planted_signal():
    rng = np.random.default_rng(0)
    tracks = _tracks(rng)
    resp = [rng.normal(size=len(t)) + 2.0 * t for t in tracks]
    auc, p = ch.site_enrichment(resp, tracks, permutations=200, seed=0)
    assert auc > 0.85
    assert p == pytest.approx(1 / 201)


def test_site_enrichment_null_is_calibrated():
    rng = np.random.default_rng(3)
    ps = []
    for i in range(40):
        tracks = _tracks(rng, n_prot=10)
        resp = [rng.normal(size=len(t)) for t in tracks]
        ps.append(ch.site_enrichment(resp, tracks, permutations=99, seed=i)[1])
    ps = np.array(ps)
    assert (ps < 0.05).mean() <= 0.15
    assert 0.3 < ps.mean() < 0.7


def test_site_tracks_flank_and_unannotated():
    tr = ch.site_tracks([10, 5], [[1, 5], None], flank=1)
    assert tr[0].nonzero()[0].tolist() == [0, 1, 3, 4, 5]
    assert tr[1] is None


def test_bh_qvalues_against_hand_computation():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    q = ch.bh_qvalues(p)
    # sorted p: .01 .03 .04 .5 (m = 4): q = min over tail of p*m/rank
    assert q[0] == pytest.approx(0.04)
    assert q[2] == pytest.approx(0.04 * 4 / 3)
    assert q[1] == pytest.approx(0.04 * 4 / 3)
    assert q[4] == pytest.approx(0.5)
    assert np.isnan(q[3])


def test_orient_responses_follows_the_heavier_tail():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 2))
    a[:5, 0] -= 20  # neuron 0 fires negative
    a[:5, 1] += 20
    resp, sign = ch.orient_responses([a[:250], a[250:]], "tail")
    assert sign.tolist() == [-1.0, 1.0]
    assert resp[0][:5, 0].min() > 15  # the negative spikes now rank highest
    resp_abs, _ = ch.orient_responses([a], "abs")
    assert (resp_abs[0] >= 0).all()
    with pytest.raises(InputError):
        ch.orient_responses([a], "sideways")


def test_top_class_orientation_and_windows_follow_the_neurons_class():
    rng = np.random.default_rng(0)
    acts = [rng.normal(size=(30, 3)) for _ in range(4)]
    acts[0][:, 0] -= 2.0  # neuron 0 is lower in its class "a" (proteins 0, 1)
    acts[1][:, 0] -= 2.0
    acts[3][:3, 0] += 30.0  # ... though its heavier tail is positive (in class "b")
    acts[2][:, 1] += 2.0  # neuron 1 is higher in class "b" (proteins 2, 3)
    acts[3][:, 1] += 2.0
    labels = ["a", "a", "b", "b"]
    _, tail = ch.orient_responses(acts, "tail")
    resp, sign = ch.orient_responses(acts, "top_class", labels, ["a", "b", float("nan")])
    assert tail[0] == 1.0 and sign[0] == -1.0  # the class decides, not the tail
    assert sign[1] == 1.0 and sign[2] == tail[2]  # no top class: the tail sign
    assert np.mean([r[:, 0].mean() for r in resp[:2]]) > np.mean([r[:, 0].mean() for r in resp[2:]])
    _, no_labels = ch.orient_responses(acts, "top_class")
    assert no_labels.tolist() == tail.tolist()
    pick, source = ch.window_proteins(np.array(labels), "b")
    assert pick.tolist() == [2, 3] and source == "top_class"
    for cls in ("z", float("nan")):
        pick, source = ch.window_proteins(np.array(labels), cls)
        assert pick.tolist() == [0, 1, 2, 3] and source == "all"
    assert ch.window_proteins(np.array(labels), "b", "all")[1] == "all"
    with pytest.raises(InputError):
        ch.window_proteins(np.array(labels), "b", "sideways")


# -- class-specific selection ------------------------------------------------------------------


def _layout():
    return NeuronLayout.from_sizes(1, {m: 4 for m in MODULE_TYPES})


def test_select_class_neurons_top_fraction_and_relative_threshold():
    layout = _layout()
    ig = fake_ig(layout, ["a", "b"], seed=0)
    ig["score"] = 0.01
    # class a: one k_proj neuron stands out; class b: two fc1 neurons
    ig.loc[(ig["label"] == "a") & (ig["module"] == "k_proj") & (ig["neuron"] == 2), "score"] = 5.0
    ig.loc[(ig["label"] == "b") & (ig["module"] == "fc1") & (ig["neuron"].isin([0, 3])), "score"] = [4.0, 3.0]
    _, per_class = ch.split_ig_scores(ig)
    top = ch.select_class_neurons(per_class, layout, "top_fraction", fraction=1 / 24)
    assert top.groupby("label").size().tolist() == [1, 1]
    assert top.set_index("label").loc["a", ["module", "neuron"]].tolist() == ["k_proj", 2]
    thr = ch.select_class_neurons(per_class, layout, "relative_threshold", threshold=0.5)
    b = thr[thr["label"] == "b"]
    assert sorted(b["neuron"]) == [0, 3] and set(b["module"]) == {"fc1"}
    assert len(thr[thr["label"] == "a"]) == 1
    with pytest.raises(InputError):
        ch.select_class_neurons(per_class.iloc[0:0], layout)


def test_class_overlap_jaccard_and_shared_by_all():
    sets = pd.DataFrame(
        {
            "label": ["a", "a", "a", "b", "b", "c"],
            "layer": [0, 0, 1, 0, 1, 0],
            "module": ["fc1", "fc1", "k_proj", "fc1", "k_proj", "fc1"],
            "neuron": [1, 2, 3, 1, 3, 1],
        }
    )
    table, shared = ch.class_overlap(sets)
    j = table.set_index(["class_a", "class_b"])["jaccard"]
    assert j[("a", "b")] == pytest.approx(2 / 3)
    assert j[("a", "c")] == pytest.approx(1 / 3)
    assert j[("b", "c")] == pytest.approx(1 / 2)
    assert j[("a", "a")] == 1.0
    assert shared == 1


def test_neuron_class_profile():
    per_class = pd.DataFrame(
        {
            "label": ["a", "b", "a", "b"],
            "layer": 0,
            "module": "fc1",
            "neuron": [0, 0, 1, 1],
            "score": [3.0, 1.0, -1.0, 2.0],
        }
    )
    prof = ch.neuron_class_profile(per_class).set_index("neuron")
    assert prof.loc[0, "top_class"] == "a" and prof.loc[0, "class_share"] == pytest.approx(0.75)
    assert prof.loc[1, "top_class"] == "b" and prof.loc[1, "class_share"] == pytest.approx(1.0)


def test_random_matched_mask_keeps_module_composition():
    layout = _layout()
    neurons = pd.DataFrame({"layer": [0, 0, 0], "module": ["fc1", "fc1", "q_proj"], "neuron": [0, 1, 2]})
    m = ch.random_matched_mask(neurons, layout, np.random.default_rng(0))
    assert {b: int(v.sum()) for b, v in m.items()} == {(0, "fc1"): 2, (0, "q_proj"): 1}


# -- model plumbing (random-init tiny model) ----------------------------------------------------


def test_residue_activations_equal_module_outputs():
    from kneurons.scoring.reference import module_output

    model, _ = tiny_model()
    seqs = ["MKTAYIAKQRQISFVKSHFSRQ", "MLSD", "ACDEFGHIKLMNPQRSTVWYAC"]
    neurons = pd.DataFrame({"layer": [1, 0, 0], "module": ["fc1", "q_proj", "fc1"], "neuron": [5, 3, 7]})
    acts = ch.residue_activations(model, seqs, neurons, token_budget=40)
    tokens = tokenize(seqs)
    for col, (layer, module, neuron) in enumerate(neurons.itertuples(index=False)):
        out = module_output(model, tokens, layer, module)  # (B, T, n)
        for i, s in enumerate(seqs):
            assert acts[i].shape == (len(s), 3)
            np.testing.assert_allclose(acts[i][:, col], out[i, 1 : 1 + len(s), neuron].numpy(), atol=1e-5)


def test_class_suppression_matches_naive_masking():
    model, _ = tiny_model(n_classes=2)
    layout = layout_of(model)
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=int(n))) for n in rng.integers(15, 30, 16)]
    y = np.arange(16) % 2
    sets = pd.DataFrame(
        {
            "label": ["a"] * 20 + ["b"] * 20,
            "layer": 0,
            "module": "fc1",
            "neuron": list(range(20)) + list(range(20, 40)),
        }
    )
    matrix, spec = ch.class_suppression(model, seqs, y, ["a", "b"], sets, random_sets=3, seed=0)
    naive = evaluate_masks_naive(model, seqs, [{}, ch.as_mask(sets[sets["label"] == "a"], layout)], Fill())
    base = ch.per_class_recall(y, naive[0], 2)
    sup_a = ch.per_class_recall(y, naive[1], 2)
    rows = matrix[matrix["suppressed"] == "a"].set_index("evaluated")
    np.testing.assert_allclose(rows["recall"].to_numpy(), sup_a)
    np.testing.assert_allclose(rows["recall_base"].to_numpy(), base)
    s = spec.set_index("class").loc["a"]
    assert s["drop_own"] == pytest.approx(base[0] - sup_a[0])
    assert s["specificity_diff"] == pytest.approx((base[0] - sup_a[0]) - (base[1] - sup_a[1]))
    assert 1 / 4 <= s["p_value"] <= 1
    with pytest.raises(InputError, match="does not have"):
        ch.class_suppression(model, seqs, y, ["a", "x"], sets, random_sets=0)


def test_config_requires_class_conditional_ig():
    with pytest.raises(ConfigError, match="class_conditional"):
        validate_config({"score": {"ig": {"class_conditional": False}}})
    with pytest.raises(ConfigError, match="add `ig`"):
        validate_config({"score": {"methods": ["activation"]}})
    validate_config({"score": {"methods": ["activation"]}, "characterise": {"enabled": False}})


# -- science on the planted-motif model ----------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_ig(trained_synthetic):
    """Gold-class and class-conditional IG scores of the fixture model (48 training proteins)."""
    from kneurons.model.checkpoint import load_classifier
    from kneurons.scoring.base import score_layer

    model, _ = load_classifier(trained_synthetic.checkpoint)
    split = trained_synthetic.split
    train = split[split["split"] == "train"]
    index = {lab: i for i, lab in enumerate(trained_synthetic.labels)}
    subset = (
        train.groupby("label", group_keys=False).head(12).assign(label_index=lambda d: d["label"].map(index))
    )
    score_cfg = validate_config({})["score"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ig = pd.concat(
            [score_layer(model, subset, "ig", layer, score_cfg) for layer in range(model.num_layers)]
        )
    finally:
        torch.set_num_threads(threads)
    return model, ig.reset_index(drop=True)


def _held_out(ts):
    return ts.split[ts.split["split"] == "test"].reset_index(drop=True)


def test_class_neurons_are_specific_to_their_class(trained_synthetic, synthetic_ig):
    model, ig = synthetic_ig
    test = _held_out(trained_synthetic)
    _, per_class = ch.split_ig_scores(ig)
    sets = ch.select_class_neurons(per_class, layout_of(model), "top_fraction", 0.01)
    overlap, shared = ch.class_overlap(sets)
    index = {lab: i for i, lab in enumerate(trained_synthetic.labels)}
    matrix, spec = ch.class_suppression(
        model,
        test["sequence"].tolist(),
        test["label"].map(index).to_numpy(),
        trained_synthetic.labels,
        sets,
        random_sets=6,
        seed=0,
    )
    own = matrix[matrix["suppressed"] == matrix["evaluated"]]["recall_change"]
    other = matrix[matrix["suppressed"] != matrix["evaluated"]]["recall_change"]
    print(
        spec[
            [
                "class",
                "n_neurons",
                "drop_own",
                "drop_other",
                "specificity_diff",
                "random_diff_mean",
                "p_value",
            ]
        ]
    )
    # Suppressing a class's neurons costs that class, not the others, and beats same-size random sets.
    assert own.mean() < other.mean() - 0.03
    assert spec["specificity_diff"].mean() > spec["random_diff_mean"].mean() + 0.03
    assert (spec["specificity_diff"] > 0).sum() >= 3
    # Planted motifs differ between classes, so class neuron sets barely overlap.
    assert overlap.loc[overlap["class_a"] != overlap["class_b"], "jaccard"].max() < 0.5
    assert shared == 0


def _motif_recovery(model, neurons, classes, motifs, test, width=13):
    """Per neuron: the best number of its class motif's residues matched by its window consensus.

    Windows as characterise_neurons takes them by default (response and windows_from
    ``top_class``), so top neurons and all neurons are compared on equal terms.
    """
    seqs = test["sequence"].tolist()
    labels = test["label"].astype(str).to_numpy()
    acts = ch.residue_activations(model, seqs, neurons.reset_index(drop=True))
    resp, _ = ch.orient_responses(acts, "top_class", labels, list(classes))
    out = []
    for j, cls in enumerate(classes):
        pick, _ = ch.window_proteins(labels, cls, "top_class")
        wins = ch.best_windows([resp[i][:, j] for i in pick], [seqs[i] for i in pick], width, 20, 1)
        cons = ch.consensus(ch.position_frequency_matrix(wins["window"], width), 0.3)
        out.append(ch.motif_match(cons, motifs[cls]))
    return np.array(out)


def test_top_ig_neurons_recover_planted_motifs(trained_synthetic, synthetic_ig):
    model, ig = synthetic_ig
    test = _held_out(trained_synthetic)
    motifs = dict(zip(trained_synthetic.motifs["ec_class"], trained_synthetic.motifs["motif"], strict=False))
    motif_len = len(next(iter(motifs.values())))
    res = ch.characterise_neurons(model, ig, test, char_cfg(top_n=8, permutations=100))
    n = res["neurons"]
    print(n[["rank", "layer", "module", "neuron", "top_class", "window_consensus", "site_auroc_top_class"]])
    assert res["info"]["annotated_proteins"] == len(test)  # motif_sites are the annotation
    matches = np.array(
        [ch.motif_match(c, motifs[k]) for c, k in zip(n["window_consensus"], n["top_class"], strict=False)]
    )
    reads_motif = matches >= motif_len - 1  # one mismatch allowed: motifs are planted with noise
    recovered = reads_motif | (n["site_auroc_top_class"] >= 0.8).to_numpy()
    # Most of the top 8 IG neurons read their class's motif. Their windows come from their top
    # class's proteins, oriented the way they respond to that class: pooled over all proteins,
    # residue detectors' windows land on that residue in any class, and neurons most active in
    # another class's proteins (as evidence against it) read that class's motif.
    assert (n["windows_from"] == "top_class").all()
    assert recovered.sum() >= 5, n

    # The IG ranking enriches motif readers: compare with every neuron of the model, read the
    # same way (about half of all neurons of this tiny model read their class's motif then).
    overall, per_class = ch.split_ig_scores(ig)
    layout = layout_of(model)
    every = ch.ranked_neurons(overall, layout).merge(ch.neuron_class_profile(per_class), on=ch.NEURON_KEY)
    base_rate = (
        _motif_recovery(model, every[ch.NEURON_KEY], every["top_class"], motifs, test) >= motif_len - 1
    ).mean()
    print(f"motif readers: top 8 {reads_motif.mean():.2f}, all neurons {base_rate:.2f}")
    assert reads_motif.mean() > base_rate + 0.15

    # Another class's motif is not what the top neurons read.
    shifted = {k: motifs[str(int(k) % len(motifs) + 1)] for k in motifs}
    wrong = np.array(
        [ch.motif_match(c, shifted[k]) for c, k in zip(n["window_consensus"], n["top_class"], strict=False)]
    )
    assert wrong.mean() < matches.mean() - 1.5

    # Every class has a class-specific neuron whose best windows spell its motif.
    sets = ch.select_class_neurons(per_class, layout, "top_fraction", 0.01)
    best = {
        label: int(_motif_recovery(model, g[ch.NEURON_KEY], [label] * len(g), motifs, test).max())
        for label, g in sets.groupby("label")
    }
    assert all(v >= motif_len - 1 for v in best.values()), best


# -- file-level jobs on a UniProt-format file with site features -----------------------------------


def _uniprot_tsv(path: Path, with_sites: bool = True, n_per_class: int = 12) -> pd.DataFrame:
    """A small UniProt REST-style TSV: class 1 carries an active site, class 2 a binding stretch."""
    from kneurons.data.synthetic import generate_synthetic

    prot, _ = generate_synthetic(n_classes=2, n_per_class=n_per_class, length_min=40, length_max=50, seed=3)
    rows = []
    for r in prot.itertuples(index=False):
        sites = [int(x) for x in r.motif_sites.split(";")]
        if r.ec.startswith("1."):
            act = (
                f'ACT_SITE {sites[2]}; /note="Proton acceptor"; '
                '/evidence="ECO:0000255|PROSITE-ProRule:PRU10001"'
            )
            bind = ""
        else:
            act = ""
            bind = (
                f'BINDING {sites[0]}..{sites[5]}; /ligand="NAD(+)"; /ligand_id="ChEBI:CHEBI:57540"; '
                f'/evidence="ECO:0000250|UniProtKB:P00330"; BINDING {sites[6]}; /ligand="Zn(2+)"; '
                f'/ligand_id="ChEBI:CHEBI:29105"; /ligand_note="catalytic; shared"'
            )
        rows.append([r.accession, r.ec, r.sequence, str(len(r.sequence)), act, bind])
    header = ["Entry", "EC number", "Sequence", "Length", "Active site", "Binding site"]
    if not with_sites:
        header, rows = header[:4], [r[:4] for r in rows]
    path.write_text("\n".join("\t".join(x) for x in [header, *rows]) + "\n")
    return prot


def _prepare_run(tmp_path: Path, with_sites: bool):
    from kneurons.data.labels import extract_labels
    from kneurons.data.local import read_uniprot_tsv
    from kneurons.data.split import stratified_split

    tsv = tmp_path / "uniprot.tsv"
    _uniprot_tsv(tsv, with_sites)
    proteins = read_uniprot_tsv(tsv)
    labels_df, classes, _ = extract_labels(proteins, {"level": 1, "min_class_size": 2})
    split = stratified_split(labels_df, {"train": 0.5, "val": 0.1, "test": 0.4}, seed=0)
    split_path = tmp_path / "split.tsv"
    split.to_csv(split_path, sep="\t", index=False)
    labels = classes.sort_values("label_index")["label"].astype(str).tolist()
    model, spec = tiny_model(n_classes=len(labels))
    save_classifier(tmp_path / "best.pt", model, spec, labels)
    fake_ig(layout_of(model), labels, seed=1).to_parquet(tmp_path / "ig.parquet")
    cfg = validate_config({"characterise": {"top_n": 6, "permutations": 50, "random_sets": 3, "window": 7}})
    return cfg, split, split_path


def _run_jobs(tmp_path, cfg, split_path):
    out_c = {k: tmp_path / f"c_{k}.tsv" for k in ("neurons", "overlap", "matrix", "specificity")}
    out_c["summary"] = tmp_path / "c_summary.json"
    char_jobs.run_class_job(
        tmp_path / "best.pt",
        tmp_path / "ig.parquet",
        split_path,
        job_settings("characterise_classes", cfg),
        out_c,
    )
    names = ("neurons", "windows", "pfm", "summary", "window_activations")
    out_n = {k: tmp_path / f"n_{k}.tsv" for k in names}
    out_n["info"] = tmp_path / "n_info.json"
    info = char_jobs.run_neuron_job(
        tmp_path / "best.pt",
        tmp_path / "ig.parquet",
        split_path,
        out_c["neurons"],
        job_settings("characterise_neurons", cfg),
        out_n,
    )
    return out_c, out_n, info


def test_run_on_uniprot_tsv_with_site_features(tmp_path):
    cfg, split, split_path = _prepare_run(tmp_path, with_sites=True)
    out_c, out_n, info = _run_jobs(tmp_path, cfg, split_path)
    test = split[split["split"] == "test"]
    # Expected site residues, computed from the TSV text independently of the parser.
    expected = 0
    for r in test.itertuples(index=False):
        if r.active_site:
            expected += 1
        if r.binding_site:
            expected += 7
    neurons = pd.read_csv(out_n["neurons"], sep="\t")
    assert info["site_columns"] == ["active_site", "binding_site"]
    assert info["annotated_proteins"] == len(test)
    assert (neurons["n_site_residues"] == expected).all()
    assert neurons["site_auroc"].between(0, 1).all() and neurons["site_q"].notna().all()
    assert len(neurons) == 6 and neurons["window_consensus"].str.len().eq(7).all()
    windows = pd.read_csv(out_n["windows"], sep="\t")
    assert set(windows["accession"]) <= set(test["accession"])
    # Every window's residues carry the neuron's response; its peak residue's is the window's value.
    acts = pd.read_csv(out_n["window_activations"], sep="\t", keep_default_na=False)
    spelled = acts.groupby(["rank", "accession", "center"], sort=False)["residue"].apply("".join)
    both = windows.join(spelled, on=["rank", "accession", "center"])
    assert len(acts) == 7 * len(windows) and (both["window"] == both["residue"]).all()
    peak = acts[acts["position"] == 3].merge(windows, on=["rank", "accession", "center"])
    assert len(peak) == len(windows)
    assert (peak["response"].astype(float) - peak["value"]).abs().max() < 1e-9
    summary = pd.read_csv(out_n["summary"], sep="\t")
    assert {"all", "module", "layer"} <= set(summary["group_by"])
    cls = json.loads(out_c["summary"].read_text())
    assert cls["held_out_proteins"] == len(test) and cls["classes"] == ["1", "2"]
    # the intact model on these held-out proteins (claim 5's baseline rule), predicted here anew
    from kneurons.model.checkpoint import load_classifier
    from kneurons.training.loop import predict

    model, ckpt = load_classifier(tmp_path / "best.pt")
    y = test["label"].map({lab: i for i, lab in enumerate(ckpt["labels"])}).to_numpy()
    right = int((predict(model, test["sequence"].tolist(), bf16=False).argmax(1) == y).sum())
    majority = test["label"].value_counts().max() / len(test)
    assert cls["intact"] == {"accuracy": right / len(test), "n": len(test), "majority_baseline": majority}


def test_missing_annotations_are_reported_not_fatal(tmp_path):
    from kneurons.jobs.figures import make_figures

    cfg, _, split_path = _prepare_run(tmp_path, with_sites=False)
    out_c, out_n, info = _run_jobs(tmp_path, cfg, split_path)
    assert info["annotation"].startswith(ch.NO_ANNOTATION)
    neurons = pd.read_csv(out_n["neurons"], sep="\t")
    assert neurons["site_auroc"].isna().all()
    assert neurons["annotation"].str.startswith(ch.NO_ANNOTATION).all()
    # pdf for one figure only: logomaker draws every glyph as a path, which is slow
    figs = {
        "logos": [tmp_path / "logos.png"],
        "site_auroc": [tmp_path / "site_auroc.png", tmp_path / "site_auroc.pdf"],
    }
    figs["class_specificity"] = [tmp_path / "class_specificity.png"]
    make_figures(
        out_n["neurons"],
        out_n["pfm"],
        out_n["info"],
        out_c["matrix"],
        out_c["overlap"],
        figs,
        logos=2,
        dpi=60,
    )
    for paths in figs.values():
        for p in paths:
            assert p.stat().st_size > 1000
