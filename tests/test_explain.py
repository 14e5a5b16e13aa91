"""``kneurons explain``: proteins explained with a finished run (the ``explain_run`` fixture: two
replicates of a small ESM-2 fine-tuned on planted motifs, with IG scores, class sets, an SAE and the
atlas).

The science: on the test proteins the named units fire on the planted motifs more than elsewhere,
and filling them drops the predicted class's probability more than filling as many random units;
a unit's contribution is the per-protein term of the run's IG ranking; the per-residue track is
complete against its baseline. Then the outputs, the command, the rule and every kind of bad input.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from workflow_rules import REPO

from kneurons.cli import main as cli_main
from kneurons.errors import InputError
from kneurons.explain.proteins import apply_residue_policies, read_explain_proteins
from kneurons.explain.run import RunSettings, find_run, run_fill
from kneurons.schema import section_defaults

SETTINGS = {"explain": section_defaults("explain")}


@pytest.fixture(scope="module")
def explained(explain_run, tmp_path_factory, one_torch_thread) -> tuple[dict, dict[str, Path]]:
    """The test split's proteins explained with the tiny run: ``(explain.json, written paths)``."""
    from kneurons.jobs.explain import run_explain_job

    out = tmp_path_factory.mktemp("explained") / "page"
    paths = run_explain_job(find_run(explain_run.results), explain_run.proteins, SETTINGS, out)
    return json.loads(paths["json"].read_text()), paths


def _sites(protein: dict) -> set[int]:
    return set(protein["sites"] or [])


# -- the science -----------------------------------------------------------------------------------
def test_named_units_fire_on_the_planted_motif_more_than_elsewhere(explained):
    """The named neurons put more of their contribution on the protein's planted motif residues than
    a residue's share of the protein (what a unit blind to the motif gets), in both replicates; most
    of them do, their peaks fall on the motif more often than chance, and so does the track.

    Measured on the tiny run (24 proteins, replicate 0 / 1): 37% / 31% of the named neurons'
    positive contribution on the 25% of residues that are motif; 78% / 64% of them above that share;
    peaks on the motif 47% / 38%; the track's positive part 52% on the motif."""
    result, _ = explained
    for rep in (0, 1):
        share, expected, peaks, chance = [], [], [], []
        for p in result["proteins"]:
            sites = _sites(p)
            assert sites, p["accession"]  # every test protein carries its class's motifs
            for u in p["replicates"][rep]["units"]:
                if u["kind"] != "neuron" or u["on_sites"]["share"] is None:
                    continue
                share.append(u["on_sites"]["share"])
                expected.append(u["on_sites"]["expected"])
                peaks += [pk["center"] in sites for pk in u["peaks"]]
                chance += [len(sites) / p["model_length"]] * len(u["peaks"])
        assert len(share) > 100
        assert np.mean(share) > 1.15 * np.mean(expected), (rep, np.mean(share), np.mean(expected))
        assert np.mean(np.array(share) > np.array(expected)) > 0.55, rep
        assert np.mean(peaks) > 1.3 * np.mean(chance), (rep, np.mean(peaks), np.mean(chance))
    track = [p["replicates"][0]["track_on_sites"] for p in result["proteins"]]
    assert np.mean([t["share"] for t in track]) > 1.5 * np.mean([t["expected"] for t in track])


def test_filling_the_named_units_drops_the_prediction_more_than_random_units(explained):
    """Averaged over the test proteins, in every replicate and for neurons and SAE features alike.

    Measured on the tiny run (24 proteins, replicate 0 / 1): the named neurons' fill drops the
    predicted class's probability by 0.350 / 0.358, random neurons by 0.035 / 0.069 (above random
    for 88% / 83% of the proteins); features 0.010 / 0.065 against -0.002 / 0.007."""
    result, _ = explained
    summary = {(c["replicate"], c["kind"]): c for c in result["summary"]["causal"]}
    assert set(summary) == {(0, "neurons"), (1, "neurons"), (0, "features"), (1, "features")}
    for key, c in summary.items():
        assert c["mean_drop"] > c["mean_drop_random"], (key, c)
        assert c["share_above_random"] > 0.6, (key, c)
    for rep in (0, 1):  # every protein has named neurons; the features' contributions may all be <= 0
        neurons = summary[(rep, "neurons")]
        assert neurons["proteins"] == len(result["proteins"])
        assert neurons["mean_drop"] > 3 * neurons["mean_drop_random"] and neurons["mean_drop"] > 0.1, neurons
    main = summary[(0, "neurons")]
    # the summary is the mean of the per-protein checks
    drops = [
        next(c for c in p["replicates"][0]["causal"] if c["kind"] == "neurons") for p in result["proteins"]
    ]
    assert main["mean_drop"] == pytest.approx(np.mean([d["drop"] for d in drops]))
    assert main["mean_drop_random"] == pytest.approx(np.mean([np.mean(d["drop_random"]) for d in drops]))


def test_a_contribution_is_the_per_protein_term_of_the_run_ranking(explain_run, one_torch_thread):
    """With the gold class as target, the mean of a knowledge neuron's contribution over the run's
    scoring set is its score in the run's IG table (to the run's completeness tolerance): the
    ranking the units come from averages the quantity explain ranks them by on one protein."""
    from kneurons.atlas.page import read_atlas_data
    from kneurons.explain.batch import load_replicate
    from kneurons.explain.compute import unit_contributions
    from kneurons.explain.run import run_settings
    from kneurons.tables import read_score_table, read_scoring_set

    files = find_run(explain_run.results)
    rm = load_replicate(files, 0, run_settings(files), read_atlas_data(files.atlas), torch.device("cpu"))
    scoring = read_scoring_set(files.scoring_set)
    total = np.zeros(len(rm.neurons))
    for seq, gold in zip(scoring["sequence"], scoring["label_index"], strict=True):
        tokens = rm.model.tokenize([seq])
        per_token = unit_contributions(
            rm.model, tokens, torch.tensor([int(gold)]), rm.columns["neurons"], len(rm.neurons), rm.ig, 8192
        )
        assert np.all(per_token[tokens[0] == rm.model.padding_idx] == 0)
        total += per_token.sum(axis=0)
    scores, _ = read_score_table(files.replicates[0].ig_scores)
    overall = scores[scores["label"].isna()].set_index(["layer", "module", "neuron"])["score"]
    expected = overall.loc[
        list(zip(rm.neurons["layer"], rm.neurons["module"], rm.neurons["neuron"], strict=True))
    ].to_numpy()
    # Both sides integrate until complete within the run's tolerance (the run over its scoring set,
    # explain per protein), so they agree to it; at the first steps alone they were 3% apart.
    assert rm.ig.tolerance == pytest.approx(0.01)
    np.testing.assert_allclose(total / len(scoring), expected, rtol=rm.ig.tolerance, atol=1e-9)
    # and the run's table is what the knowledge units were taken from: its global top fraction
    assert rm.neurons["run_score"].to_numpy() == pytest.approx(expected)
    assert list(rm.neurons["run_rank"]) == sorted(rm.neurons["run_rank"])


def test_the_track_is_complete_against_its_baseline_of_unknown_residues(explained):
    """The per-residue track sums to the target's change from the all-X sequence to the protein, up
    to the gap the JSON reports (measured on these proteins with ``explain.track_steps`` points: 8
    miss 0.26 on average, up to 0.88; 64 miss 0.0007, up to 0.016; 128 nothing)."""
    result, _ = explained
    gaps = []
    for p in result["proteins"]:
        for r in p["replicates"]:
            t = r["track_target"]
            assert len(r["track"]) == p["model_length"] and t["steps"] == 64
            assert sum(r["track"]) - (t["protein"] - t["baseline"]) == pytest.approx(t["gap"], abs=1e-6)
            gaps.append(abs(t["gap"]))
    assert np.mean(gaps) < 0.005 and max(gaps) < 0.05, (np.mean(gaps), max(gaps))


def test_a_zero_baseline_breaks_completeness_where_the_x_baseline_keeps_it(explain_run, one_torch_thread):
    """Why the track's baseline is a sequence of X: every layer opens with a LayerNorm, so the
    network at alpha x jumps as alpha reaches 0 and a zero baseline's integrated gradients miss
    part of F(x) - F(0); the X baseline's sum to F(x) - F(X)."""
    from kneurons.model.checkpoint import load_classifier
    from kneurons.scoring.ig import input_attribution, target_value
    from kneurons.scoring.integration import integration_points

    model, _ = load_classifier(explain_run.trained.checkpoint)
    for q in model.parameters():
        q.requires_grad_(False)
    al, wt = (
        torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in integration_points(32, "gausslegendre")
    )
    seqs = pd.read_csv(explain_run.proteins, sep="\t")["sequence"].tolist()[:8]
    zero_err, x_err = [], []
    for seq in seqs:
        tokens = model.tokenize([seq])
        gold = model(tokens).argmax(-1)
        x, pm = model.embed(tokens)

        def f(stream: torch.Tensor, pm=pm, tokens=tokens, gold=gold) -> torch.Tensor:
            return target_value(model.classify(model.run_layers(stream, pm), tokens), gold, "prob")

        grads = torch.zeros_like(x)
        for a, w in zip(al, wt, strict=True):
            s = (a * x).requires_grad_(True)
            (g,) = torch.autograd.grad(f(s).sum(), [s])
            grads += w * g
        with torch.no_grad():
            zero_err.append(abs(float((x * grads).sum()) - float(f(x) - f(torch.zeros_like(x)))))
            baseline = model.tokenize(["X" * len(seq)])
            fx = float(f(x) - target_value(model(baseline), gold, "prob"))
        track = input_attribution(model, tokens, baseline, gold, al, wt, "prob")
        x_err.append(abs(float(track.sum()) - fx))
    assert max(x_err) < 1e-3, x_err
    assert np.mean(zero_err) > 20 * np.mean(x_err) and np.mean(zero_err) > 0.01, (zero_err, x_err)


@pytest.mark.parametrize("backend", ["fair-esm", "hf", "esmc"])
def test_every_backend_explains_a_protein(backend, one_torch_thread):
    """On each backend (random weights): a unit's per-token terms sum to the run's per-sequence IG
    (``attribution_per_sequence``, what a score table averages), the track is complete against the X
    baseline, and a whole explanation runs (windows inside the protein, the causal check)."""
    from kneurons.ablation.fill import Fill
    from kneurons.explain.compute import explain_protein, neuron_layout, unit_contributions
    from kneurons.explain.units import ExplainSettings, IgSettings, ReplicateModel
    from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone
    from kneurons.scoring.ig import attribution_per_sequence, input_attribution, target_value

    if backend != "fair-esm":
        pytest.importorskip("transformers")
    torch.manual_seed(0)
    dim = 64 if backend == "esmc" else 32
    model = EsmClassifier(build_backbone(BackboneSpec("custom", 2, dim, 4, backend=backend)), 3).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.5)
    for q in model.parameters():
        q.requires_grad_(False)
    layout = neuron_layout(model)
    rng = np.random.default_rng(0)
    flat = np.sort(rng.choice(layout.total, size=12, replace=False))
    units = layout.keys(flat).assign(run_rank=np.arange(1, 13), run_score=1.0, top_class="1", class_share=1.0)
    ig = IgSettings(16, "gausslegendre", "prob")
    rm = ReplicateModel(0, model, ["1", "2", "3"], units, None, Fill(), ig, layout, None)
    seq = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
    tokens = model.tokenize([seq])
    gold = model(tokens).argmax(-1)
    per_token = unit_contributions(model, tokens, gold, rm.columns["neurons"], len(units), ig, 8192)
    alphas, weights = (np.asarray(v) for v in ig.points(torch.device("cpu")))
    for layer in (0, 1):
        modules = sorted({m for (lay, m) in rm.columns["neurons"] if lay == layer})
        run = attribution_per_sequence(
            model, [seq], [int(gold)], layer, modules, alphas, weights, "prob", bf16=False
        )
        for m in modules:
            idx, rows = rm.columns["neurons"][(layer, m)]
            np.testing.assert_allclose(per_token[:, rows].sum(0), run[m][0, idx], rtol=1e-4, atol=1e-9)
    al, wt = ig.points(torch.device("cpu"))
    baseline = model.tokenize(["X" * len(seq)])
    track = input_attribution(model, tokens, baseline, gold, al, wt, "prob")
    with torch.no_grad():
        change = float(
            target_value(model(tokens), gold, "prob") - target_value(model(baseline), gold, "prob")
        )
    assert float(track.sum()) == pytest.approx(change, abs=1e-4)
    assert float(track[0, 0]) == 0 and float(track[-1, 0]) == 0  # BOS and EOS: shared with the baseline
    out = explain_protein(rm, seq, ExplainSettings(top_units=5), sites=[3, 4, 5])
    assert out["predicted"] == "123"[int(gold)] and len(out["track"]) == len(seq)
    assert 0 < len(out["units"]) <= 5 and out["track_on_sites"]["expected"] == pytest.approx(3 / len(seq))
    for u in out["units"]:
        assert all(1 <= pk["start"] <= pk["center"] <= pk["end"] <= len(seq) for pk in u["peaks"])
    (check,) = out["causal"]
    assert check["n_units"] == len(out["units"]) and len(check["drop_random"]) == 5


def test_a_run_with_the_mean_fill_is_explained_with_it(explain_run, one_torch_thread):
    """The fill is the run's: ``mean`` measures the scoring set's mean activations (every module)."""
    from kneurons.atlas.page import read_atlas_data
    from kneurons.explain.batch import load_replicate
    from kneurons.explain.compute import explain_protein
    from kneurons.explain.run import run_settings
    from kneurons.explain.units import ExplainSettings

    files = find_run(explain_run.results)
    run = run_settings(files)
    run = RunSettings(**{**run.__dict__, "fill": "mean"})
    rm = load_replicate(files, 0, run, read_atlas_data(files.atlas), torch.device("cpu"))
    assert rm.fill.kind == "mean" and set(rm.fill.means) == set(rm.neuron_layout.blocks)
    seq = pd.read_csv(explain_run.proteins, sep="\t")["sequence"].iloc[0]
    neurons = [c for c in explain_protein(rm, seq, ExplainSettings())["causal"] if c["kind"] == "neurons"]
    assert neurons[0]["fill"] == "mean"


# -- what is written ---------------------------------------------------------------------------------
def test_the_outputs_hold_every_named_unit_with_its_windows_and_atlas_link(explained, explain_run):
    result, paths = explained
    table = pd.read_csv(paths["tsv"], sep="\t", keep_default_na=False)
    n_units = sum(len(r["units"]) for p in result["proteins"] for r in p["replicates"])
    assert len(table) == n_units > 0
    atlas = (explain_run.results / "atlas/index.html").resolve()
    for p in result["proteins"]:
        seq = p["sequence"]
        for r in p["replicates"]:
            assert set(r["probabilities"]) == set(result["run"]["classes"])
            assert r["predicted"] == max(r["probabilities"], key=r["probabilities"].get)
            for kind in ("neuron", "feature"):
                units = [u for u in r["units"] if u["kind"] == kind]
                assert len(units) <= SETTINGS["explain"]["top_units"]
                contributions = [u["contribution"] for u in units]
                assert contributions == sorted(contributions, reverse=True) and all(
                    c > 0 for c in contributions
                )
                assert [u["rank"] for u in units] == list(range(1, len(units) + 1))
            for u in r["units"]:
                for pk in u["peaks"]:
                    assert 1 <= pk["start"] <= pk["center"] <= pk["end"] <= len(seq)
                    # the window is the sequence around the peak (padded with - past its ends)
                    assert pk["window"].strip("-") == seq[pk["start"] - 1 : pk["end"]]
                    assert pk["values"][(len(pk["window"]) - 1) // 2] == pytest.approx(pk["value"])
                if u["atlas"]:
                    target, unit = u["atlas"].split("#")
                    assert (paths["html"].parent / target).resolve() == atlas and unit == u["unit"]
    named = table[(table["replicate"] == 0) & (table["kind"] == "neuron")]
    assert (named["atlas"] != "").all()  # the atlas holds the top IG neurons
    assert result["run"]["fill"] == "zero" and "ablation/ig/global.tsv" in result["run"]["fill_source"]
    assert result["run"]["ig"] == {
        "steps": 8,
        "rule": "gausslegendre",
        "target": "prob",
        "tolerance": 0.01,
        "max_steps": 256,
    }
    page = paths["html"].read_text()
    assert 'id="explain-data"' in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_units_carry_the_class_profile_and_class_sets_of_the_run(explained, explain_run):
    from kneurons.tables import read_characterise_table

    result, _ = explained
    sets = read_characterise_table(explain_run.results / "characterise/class_neurons.tsv", "class_neurons")
    members = {}
    for row in sets.itertuples(index=False):
        members.setdefault(f"L{row.layer}.{row.module}.{row.neuron}", []).append(str(row.label))
    units = [u for p in result["proteins"] for u in p["replicates"][0]["units"] if u["kind"] == "neuron"]
    assert any(u["class_sets"] for u in units)
    for u in units:
        assert u["class_sets"] == members.get(u["unit"], [])
        assert set(u["specificity"]) == set(u["class_sets"])
        assert u["top_class"] in result["run"]["classes"] and 0 < u["class_share"] <= 1


def test_replicates_agree_and_the_consensus_is_the_annotated_class(explained):
    result, _ = explained
    s = result["summary"]
    assert s["annotated"] == len(result["proteins"]) and s["correct"] >= 0.9 * s["annotated"]
    for p in result["proteins"]:
        a = p["agreement"]
        votes = [r["predicted"] for r in p["replicates"]]
        assert a["share"] == votes.count(a["consensus"]) / len(votes)
        assert a["unanimous"] == (len(set(votes)) == 1)


def test_a_failure_writes_nothing(tmp_path, monkeypatch):
    """Everything is rendered before the first file is written."""
    from kneurons.explain import report

    result = {"proteins": [], "summary": {}, "run": {}}

    def broken(_result):
        raise RuntimeError("the page failed")

    monkeypatch.setattr(report, "render_page", broken)
    with pytest.raises(RuntimeError):
        report.write_explanation(result, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- the command ---------------------------------------------------------------------------------------
def test_the_command_writes_the_page_and_refuses_what_is_not_a_finished_run(
    explain_run, tmp_path, capsys, caplog
):
    fasta = tmp_path / "two.fasta"
    table = pd.read_csv(explain_run.proteins, sep="\t").head(2)
    fasta.write_text(
        "".join(
            f">{a} EC={e}\n{s}\n"
            for a, e, s in zip(table["accession"], table["ec"], table["sequence"], strict=True)
        )
    )
    out = tmp_path / "page"
    with caplog.at_level(logging.INFO):
        rc = cli_main(
            [
                "explain",
                "--results",
                str(explain_run.results),
                str(fasta),
                "--out",
                str(out),
                "--top-units",
                "3",
            ]
        )
    assert rc == 0, capsys.readouterr().err
    data = json.loads((out / "explain.json").read_text())
    assert [p["accession"] for p in data["proteins"]] == table["accession"].tolist()
    assert all(
        len([u for u in r["units"] if u["kind"] == "neuron"]) <= 3
        for p in data["proteins"]
        for r in p["replicates"]
    )
    assert data["proteins"][0]["sites"] is None  # a FASTA file has no site annotations
    assert "explain: protein 2/2" in caplog.text  # a progress line per protein (stderr without pytest)
    capsys.readouterr()
    # a results folder that is not a finished run: every missing file named, nothing written
    partial = tmp_path / "partial"
    (partial / "model").mkdir(parents=True)
    rc = cli_main(["explain", "--results", str(partial), str(fasta), "--out", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a finished kneurons run" in err
    for missing in ("model/best.pt", "scores/ig.parquet", "atlas/index.html", "data/label_report.json"):
        assert missing in err
    assert not (tmp_path / "none").exists()
    rc = cli_main(["explain", "--results", str(explain_run.results), str(fasta), "--top-units", "0"])
    assert rc == 2 and "explain.top_units" in capsys.readouterr().err
    rc = cli_main(["explain", "--results", str(explain_run.results), str(fasta), "--threads", "0"])
    assert rc == 2 and "--threads 0" in capsys.readouterr().err


# -- bad input ---------------------------------------------------------------------------------------
POLICY = RunSettings(
    labels=["1", "2"],
    level=1,
    nonstandard="drop",
    long_sequences="crop",
    max_length=20,
    fill="zero",
    fill_source="test",
    model={},
)


def _policy(**changes) -> RunSettings:
    return RunSettings(**{**POLICY.__dict__, **changes})


def test_residues_follow_the_run_label_policy():
    with pytest.raises(
        InputError, match=r"in.fasta, record 2 \(accession P2\): non-standard residue\(s\) U at 3"
    ):
        apply_residue_policies("MKUA", "in.fasta, record 2 (accession P2)", POLICY)
    seq, notes = apply_residue_policies("MKUAB", "x", _policy(nonstandard="to_x"))
    assert seq == "MKXAX" and "U at 3, B at 5" in notes[0]
    seq, notes = apply_residue_policies("MKUA", "x", _policy(nonstandard="keep"))
    assert seq == "MKUA" and "kept" in notes[0]
    seq, notes = apply_residue_policies("A" * 25, "x", POLICY)
    assert seq == "A" * 20 and "cropped to its first 20 of 25 residues" in notes[0]
    with pytest.raises(InputError, match="25 residues, more than the run's labels.max_length 20"):
        apply_residue_policies("A" * 25, "x", _policy(long_sequences="drop"))


def test_bad_files_are_refused_naming_the_file_and_record(tmp_path):
    empty = tmp_path / "empty.fasta"
    empty.write_text(">P1 EC=1.1.1.1\nMKTA\n>P2\n>P3\nMKV\n")
    with pytest.raises(InputError, match=r"empty.fasta, line 3: header without sequence"):
        read_explain_proteins(empty, POLICY)
    bad = tmp_path / "bad.tsv"
    bad.write_text("accession\tsequence\nP1\tMKTA\nP2\t\n")
    with pytest.raises(InputError, match=r"bad.tsv, line 3 \(accession P2\): empty sequence"):
        read_explain_proteins(bad, POLICY)
    odd = tmp_path / "odd.fasta"
    odd.write_text(">P1\nMKT#A\n")
    with pytest.raises(InputError, match=r"odd.fasta, line 2 \(accession P1\): invalid character '#'"):
        read_explain_proteins(odd, POLICY)
    nonstd = tmp_path / "nonstd.fasta"
    nonstd.write_text(">P1\nMKTA\n>P2 EC=2.1.1.1\nMKZA\n")
    with pytest.raises(InputError, match=r"nonstd.fasta, record 2 \(accession P2\): non-standard"):
        read_explain_proteins(nonstd, POLICY)


def test_sites_and_annotated_classes_are_read_and_a_crop_is_said(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text(
        "Entry\tEC number\tSequence\tActive site\n"
        f"P1\t2.7.1.1\t{'A' * 30}\tACT_SITE 4; ACT_SITE 25\n"
        "P2\t\tMKTAYIAK\t\n"
    )
    one, two = read_explain_proteins(path, POLICY)
    assert one.sequence == "A" * 20 and one.length == 30 and one.sites == [4]
    assert one.annotated == ["2"] and any("cropped" in n for n in one.notes)
    assert any("1 annotated site(s) beyond the crop" in n for n in one.notes)
    assert two.sites is None and two.annotated == [] and two.notes == []


def test_residues_outside_the_model_alphabet_are_named():
    """fair-esm refuses an unknown character; ESM C (and a tokenizer like it) reads it as <unk>."""
    from kneurons.explain.batch import check_alphabet, unknown_characters
    from kneurons.explain.proteins import Protein
    from kneurons.model.backends.fair_esm.backend import tokenize

    assert unknown_characters(tokenize, set("ACDXUBZO")) == set()
    assert unknown_characters(tokenize, {"A", "#"}) == {"#"}

    class UnkTokenizer:  # an alphabet without U: it reads U as <unk> (id 3)
        ids = {c: i + 4 for i, c in enumerate("ACDEFGHIKLMNPQRSTVWYX")}

        def tokenize(self, seqs):
            return torch.tensor([[0, *(self.ids.get(c, 3) for c in s), 2] for s in seqs])

    assert unknown_characters(UnkTokenizer().tokenize, set("ACUX")) == {"U"}
    proteins = [Protein(1, "P1", "MKTA", 4, "", [], None), Protein(2, "P2", "MKUAU", 5, "", [], None)]
    with pytest.raises(InputError, match=r"in.tsv, record 2 \(accession P2\): residue\(s\) U at 3, U at 5"):
        check_alphabet(UnkTokenizer(), proteins, "in.tsv")


def test_the_run_fill_is_the_first_the_ablation_recorded(tmp_path):
    from kneurons.io import write_table_atomic

    table = pd.DataFrame(
        {
            "method": "ig",
            "scope": "global",
            "scope_name": "global",
            "layer": None,
            "module": None,
            "mode": "suppress",
            "f": [0.1, 0.1],
            "seed": None,
            "accuracy": 0.5,
            "fill": ["mean", "zero"],
        }
    )
    write_table_atomic(table, tmp_path / "a.tsv")
    fill, source = run_fill(tmp_path / "a.tsv")
    assert fill == "mean" and "the first of mean, zero" in source
    write_table_atomic(table.drop(columns=["fill"]), tmp_path / "b.tsv")
    assert run_fill(tmp_path / "b.tsv")[0] == "zero"
    # resample needs a donor protein drawn for each of the run's own evaluated proteins: skipped
    write_table_atomic(table.assign(fill=["resample", "mean"]), tmp_path / "c.tsv")
    fill, source = run_fill(tmp_path / "c.tsv")
    assert fill == "mean" and "needs no donor protein" in source
    write_table_atomic(table.assign(fill=["resample", "resample"]), tmp_path / "d.tsv")
    fill, source = run_fill(tmp_path / "d.tsv")
    assert fill == "zero" and "records only resample" in source


# -- the workflow ---------------------------------------------------------------------------------------
def test_the_rule_reads_what_the_command_finds_in_a_results_folder(explain_run):
    """The rule's named inputs and a results folder give the same files (one job, two doors)."""
    from kneurons.jobs.explain import output_dir, run_files

    found = find_run(explain_run.results)
    r = explain_run.results
    inputs = {
        "proteins": str(explain_run.proteins),
        "checkpoints": [str(r / "model/best.pt"), str(r / "replicates/1/model/best.pt")],
        "ig_scores": [str(r / "scores/ig.parquet"), str(r / "replicates/1/scores/ig.parquet")],
        "feature_scores": [
            str(r / "features/scores/ig.parquet"),
            str(r / "replicates/1/features/scores/ig.parquet"),
        ],
        "class_neurons": [
            str(r / "characterise/class_neurons.tsv"),
            str(r / "replicates/1/characterise/class_neurons.tsv"),
        ],
        "class_specificity": [
            str(r / "characterise/class_specificity.tsv"),
            str(r / "replicates/1/characterise/class_specificity.tsv"),
        ],
        "atlas": str(r / "atlas/index.html"),
        "label_report": str(r / "data/label_report.json"),
        "ablation": str(r / "ablation/ig/global.tsv"),
        "metadata": str(r / "model/run_metadata.json"),
        "scoring_set": str(r / "scores/scoring_set.tsv"),
    }
    from_rule = run_files(inputs)
    assert from_rule.replicates == found.replicates
    for name in ("atlas", "label_report", "ablation", "metadata", "scoring_set"):
        assert getattr(from_rule, name) == getattr(found, name)
    out = {
        k: f"results/explain/{n}"
        for k, n in (("html", "index.html"), ("tsv", "explain.tsv"), ("json", "explain.json"))
    }
    assert output_dir(out) == Path("results/explain")
    with pytest.raises(InputError, match="explain outputs must be"):
        output_dir({**out, "tsv": "elsewhere/explain.tsv"})


def test_the_workflow_rule_lists_the_run_files_and_the_example():
    """The embedded default explains its shipped example, which the synthetic generator makes."""
    import yaml

    from kneurons.config import validate_config
    from kneurons.data.synthetic import generate_synthetic

    cfg = validate_config(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    example = REPO / cfg["explain"]["proteins"]
    shipped = pd.read_csv(example, sep="\t", dtype=str)
    made, _ = generate_synthetic(
        **{**cfg["data"]["synthetic"], "n_per_class": 2},
        seed=cfg["seed"],
        sequence_seed=2,
        accession_prefix="EXPLAIN",
    )
    pd.testing.assert_frame_equal(shipped, made[list(shipped.columns)].astype(str))
    rules = (REPO / "workflow/rules/functions/explain.smk").read_text()
    for key in (
        "checkpoints",
        "ig_scores",
        "feature_scores",
        "class_neurons",
        "class_specificity",
        "atlas",
        "label_report",
        "ablation",
        "metadata",
        "scoring_set",
    ):
        assert f'"{key}"' in rules, key
    with pytest.raises(Exception, match="explain.proteins: an explanation names"):
        validate_config(
            {
                "explain": {"proteins": "x.fasta"},
                "score": {"methods": ["activation"]},
                "characterise": {"enabled": False},
            }
        )


def test_the_plan_counts_the_explain_job(tmp_path):
    """One job; its passes grow with the proteins' tokens and the replicates; none without proteins."""
    import yaml

    from kneurons.config import validate_config
    from kneurons.plan import plan_costs

    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    one = tmp_path / "one.fasta"
    one.write_text(">P1\n" + "MKTAYIAKQR" * 8 + "\n")
    two = tmp_path / "two.fasta"
    two.write_text(one.read_text() + ">P2\n" + "MKTAYIAKQR" * 8 + "\n")

    def stage(**explain) -> object:
        cfg = validate_config({**base, "explain": explain, "train": {**base["train"], "replicates": 1}})
        return next((c for c in plan_costs(cfg)[0] if c.stage == "explain"), None)

    assert stage(proteins=None) is None
    a, b = stage(proteins=str(one)), stage(proteins=str(two))
    assert a.jobs == b.jobs == 1 and a.backward > 0
    assert b.forward == pytest.approx(2 * a.forward) and b.backward == pytest.approx(2 * a.backward)
    cfg = validate_config({**base, "explain": {"proteins": str(one)}})  # two replicates
    doubled = next(c for c in plan_costs(cfg)[0] if c.stage == "explain")
    assert doubled.forward == pytest.approx(2 * a.forward)
    shipped = next(c for c in plan_costs(validate_config(base))[0] if c.stage == "explain")
    assert shipped.forward > 0  # the shipped example, found from any working directory
