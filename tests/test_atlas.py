"""The neuron atlas's data and page, from result tables written through kneurons.tables (no model)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from atlas_tables import (
    CHARACTERISED,
    CHARACTERISED_FEATURES,
    CLASSES,
    METHODS,
    N_FEATURES,
    write_feature_tables,
    write_tables,
)
from workflow_rules import REPO

from kneurons.atlas import FEATURE_FIGURES, OVERVIEW_FIGURES, AtlasInputs, build_atlas, render_atlas
from kneurons.atlas.page import data_json
from kneurons.characterise.windows import best_windows, window_responses
from kneurons.config import validate_config
from kneurons.jobs.atlas import run_atlas_job
from kneurons.settings import job_settings
from kneurons.tables import read_score_table


def settings(**atlas) -> dict:
    cfg = validate_config({"atlas": atlas, "score": {"methods": METHODS}, "stats": {"top_fraction": 0.1}})
    return job_settings("atlas", cfg)


def expected_ranks(path) -> pd.Series:
    """Global rank of every neuron (id -> rank), computed here with pandas: activation and random
    are divided by their module's mean |score| (ablate.normalise auto), IG is not; ties by layout."""
    df, _ = read_score_table(path)
    df = df[df["label"].isna()]
    if df["seed"].notna().any():
        df = df[df["seed"] == df["seed"].min()]
    method = df["method"].iloc[0]
    s = df["score"].astype(float)
    if method != "ig":
        s = s / df.groupby(["layer", "module"])["score"].transform(lambda x: x.abs().mean())
    order = {"q_proj": 0, "k_proj": 1, "v_proj": 2, "out_proj": 3, "fc1": 4, "fc2": 5}
    df = df.assign(norm=s, mo=df["module"].map(order)).sort_values(["layer", "mo", "neuron"])
    df = df.sort_values("norm", ascending=False, kind="stable")
    ids = [f"L{a}.{b}.{c}" for a, b, c in zip(df["layer"], df["module"], df["neuron"], strict=True)]
    return pd.Series(np.arange(1, len(df) + 1), index=ids)


def test_atlas_holds_the_characterised_and_top_neurons_with_their_global_ranks(tmp_path):
    inputs = write_tables(tmp_path)
    out = tmp_path / "atlas/index.html"
    run_atlas_job(inputs, settings(top_per_method=10), out)
    html = out.read_text()
    blob = re.search(r'<script type="application/json" id="atlas-data">(.*?)</script>', html, re.S)
    data = json.loads(blob[1])
    ranks = {m: expected_ranks(p) for m, p in zip(METHODS, inputs["scores"], strict=True)}
    wanted = {f"L{a}.{b}.{c}" for a, b, c, _ in CHARACTERISED}
    for m in ("activation", "ig"):  # random's top neurons are not worth showing
        wanted |= set(ranks[m].index[:10])
    rows = {r["id"]: r for r in data["neurons"]}
    assert set(rows) == wanted and data["n_shown"] == len(wanted) and data["n_neurons_total"] == 144
    for nid, r in rows.items():
        for m in METHODS:
            assert r[f"rank_{m}"] == ranks[m][nid]
            assert r[f"top_{m}"] == (ranks[m][nid] <= 15)  # ceil(0.1 x 144)
    # Characterised neurons come first, with their details; the others have none.
    assert [r["id"] for r in data["neurons"][:4]] == [f"L{a}.{b}.{c}" for a, b, c, _ in CHARACTERISED]
    k3 = data["details"]["L1.k_proj.3"]
    assert len(k3["windows"]) == 3 and len(k3["pfm"]["counts"]) == 7
    assert k3["windows"][0]["responses"][3] == pytest.approx(3.0)  # the peak residue's response
    assert rows["L1.k_proj.3"]["class_sets"] == ["1"] and rows["L1.k_proj.3"]["top_class"] == "1"
    assert set(rows["L1.k_proj.3"]["profile"]) == set(CLASSES)
    assert data["suppression"]["1"]["recall_change"]["1"] == pytest.approx(-0.5)
    # Overview: no claims -> the "no verdicts yet" box; metrics and the gap table are shown.
    assert "No verdicts yet" in html and "overview" not in data  # rendered into the page, not its JSON
    assert "0.917" in html and "[0.200, 0.450]" in html
    # Nothing on the page may reach the network.
    assert "default-src 'none'" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def _page_data(html: str) -> dict:
    return json.loads(
        re.search(r'<script type="application/json" id="atlas-data">(.*?)</script>', html, re.S)[1]
    )


def test_sae_features_are_units_beside_the_neurons_ranked_among_the_features(tmp_path):
    inputs = write_tables(tmp_path)
    features = write_feature_tables(tmp_path)
    run_atlas_job({**inputs, **features}, settings(top_per_method=5), tmp_path / "with.html")
    run_atlas_job(inputs, settings(top_per_method=5), tmp_path / "without.html")
    html = (tmp_path / "with.html").read_text()
    data, alone = _page_data(html), _page_data((tmp_path / "without.html").read_text())
    ranks = {m: expected_ranks(p) for m, p in zip(METHODS, features["feature_scores"], strict=True)}
    wanted = {f"L{a}.{b}.{c}" for a, b, c, _ in CHARACTERISED_FEATURES}
    for m in ("activation", "ig"):
        wanted |= set(ranks[m].index[:5])
    rows = {r["id"]: r for r in data["features"]["rows"]}
    assert set(rows) == wanted and data["features"]["n_shown"] == len(wanted)
    assert data["features"]["n_total"] == N_FEATURES and data["features"]["methods"] == METHODS
    for nid, r in rows.items():
        assert r["module"] == "sae" and nid == f"L2.sae.{r['neuron']}"
        for m in METHODS:  # ranks among the 40 features; the top 0.1 = 4 of them
            assert r[f"rank_{m}"] == ranks[m][nid] and r[f"top_{m}"] == (ranks[m][nid] <= 4)
    # Characterised features come first, with the neurons' panel parts and their class profile.
    first = [r["id"] for r in data["features"]["rows"][:2]]
    assert first == [f"L{a}.{b}.{c}" for a, b, c, _ in CHARACTERISED_FEATURES]
    panel = data["details"]["L2.sae.31"]
    assert len(panel["windows"]) == 3 and len(panel["pfm"]["counts"]) == 7
    assert rows["L2.sae.31"]["characterised"] and rows["L2.sae.31"]["site_auroc"] == pytest.approx(0.75)
    assert set(rows["L2.sae.31"]["profile"]) == set(CLASSES)
    # Features only add: the neurons' rows and panels are those of the page without features.
    assert data["neurons"] == alone["neurons"] and data["n_shown"] == alone["n_shown"]
    assert {k: v for k, v in data["details"].items() if ".sae." not in k} == alone["details"]
    # The SAE section: the report's numbers, claim 6's table, the features' gap to random.
    sae = re.search(r'<table class="small" id="sae-table">(.*?)</table>', html, re.S)[1]
    cells = re.findall(r"<td>([^<]*)</td>", sae)
    # layer, format, F, k, input point, activation scale (none in this older report), FVU
    assert cells[:4] + cells[6:7] == ["2", "kneurons", "40", "4", "0.0456"] and "L1 0.4321, L3 0.3789" in sae
    assert "0.125" in sae and "7 epochs, held-out FVU 0.0512" in sae
    compact = re.search(r'id="compactness">(.*?)</table>', html, re.S)[1]
    assert "0.300 [0.200, 0.400]" in compact and "4 / 32 (of 40 / 8)" in compact
    assert " /  (of 40 / 8)" in compact  # never reached: no k95
    assert "<td>L2</td><td>activation</td><td>zero</td><td>pca</td>" in compact
    assert "[0.050, 0.200]" in re.search(r'id="feature-gap">(.*?)</table>', html, re.S)[1]
    assert 'id="filter-unit"' in html and "The table also holds <strong>" in html


def test_without_features_the_page_is_the_neurons_page(tmp_path):
    """A page built with features, its feature parts taken out, renders byte for byte as the page
    built without them: features add to the page and change nothing else."""
    inputs = write_tables(tmp_path)
    alone = build_atlas(
        AtlasInputs(
            scores=dict(zip(METHODS, inputs["scores"], strict=True)),
            density=inputs["density"],
            characterise={k: inputs[k] for k in ("neurons", "windows", "pfm", "window_activations")},
        ),
        settings(top_per_method=5),
    )
    features = write_feature_tables(tmp_path)
    both = build_atlas(
        AtlasInputs(
            scores=dict(zip(METHODS, inputs["scores"], strict=True)),
            density=inputs["density"],
            characterise={k: inputs[k] for k in ("neurons", "windows", "pfm", "window_activations")},
            feature_scores=dict(zip(METHODS, features["feature_scores"], strict=True)),
            feature_characterise={k: features[f"feature_{k}"] for k in ("neurons", "pfm")},
            sae_report=features["sae_report"],
            compactness=features["compactness"],
        ),
        settings(top_per_method=5),
    )
    assert "features" not in alone and alone["overview"]["features"] is None
    html = render_atlas(alone)
    for part in ('id="saes"', 'id="filter-unit"', "features-shown", "SAE features</a>"):
        assert part not in html
    assert "features" in both and both["overview"]["features"] is not None
    del both["features"]
    both["overview"]["features"] = None
    both["details"] = {k: v for k, v in both["details"].items() if ".sae." not in k}
    assert render_atlas(both) == html


def test_features_get_the_same_caps_applied_separately(tmp_path):
    inputs = {**write_tables(tmp_path), **write_feature_tables(tmp_path)}
    out = tmp_path / "index.html"
    run_atlas_job(inputs, settings(top_per_method=50, max_neurons=6), out)
    data = _page_data(out.read_text())
    assert data["n_shown"] == 6 and data["features"]["n_shown"] == 6 and data["features"]["capped"]
    first = [r["id"] for r in data["features"]["rows"][:2]]
    assert first == [f"L{a}.{b}.{c}" for a, b, c, _ in CHARACTERISED_FEATURES]
    shown = re.search(r'<p id="features-shown">(.*?)</p>', out.read_text(), re.S)[1]
    assert "<strong>6</strong> of the 40" in shown and "the cap was reached" in shown


def test_claim_6_rows_show_with_the_other_claims(tmp_path):
    from kneurons.stats.claims import evaluate_claims
    from kneurons.tables import read_stats_table, write_claims

    features = write_feature_tables(tmp_path)
    gap = pd.DataFrame(
        [
            {"method": "ig", "scope": "global", "scope_name": "all", "mode": "preserve", "auc_gap": 0.2}
            | {"ci_lo": 0.1, "ci_hi": 0.3, "p_value": 0.001}
        ]
    )
    margins = {"auc_margin": 0.01, "log2_enrichment_margin": 0.1, "specificity_margin": 0.02}
    stats = {"confidence": 0.95, "top_fraction": 0.01, "claims": margins | {"compactness_margin": 0.02}}
    compact = read_stats_table(features["compactness"], "compactness")
    claims = evaluate_claims(gap, None, None, stats, n_replicates=2, compactness=compact)
    # the random basis is the null, shown in the table, not a claim
    assert len(claims[claims["claim"] == "6"]) == 3
    path = tmp_path / "claims.tsv"
    write_claims(claims, path)
    inputs = write_tables(tmp_path, with_characterise=False)
    data = build_atlas(
        AtlasInputs(
            scores=dict(zip(METHODS, inputs["scores"], strict=True)), density=inputs["density"], claims=path
        ),
        settings(top_per_method=5),
    )
    shown = [(r["claim"], r["method"], r["verdict"]) for r in data["overview"]["claims"]]
    assert ("2", "ig", "supported") in shown
    assert ("6", "activation", "supported") in shown and ("6", "activation", "not supported") in shown
    assert ("6", "ig", "inconclusive") in shown
    page = render_atlas(data)
    assert "knowledge is more compact in SAE features than in its PCA components" in page
    assert "SAE features - dimensions (stream L2, preserve)" in page


def test_the_cap_keeps_characterised_neurons_first(tmp_path):
    inputs = write_tables(tmp_path)
    out = tmp_path / "index.html"
    run_atlas_job(inputs, settings(top_per_method=50, max_neurons=6), out)
    data = json.loads(re.search(r'id="atlas-data">(.*?)</script>', out.read_text(), re.S)[1])
    assert data["n_shown"] == 6 and data["cap"]["capped"]
    assert [r["id"] for r in data["neurons"][:4]] == [f"L{a}.{b}.{c}" for a, b, c, _ in CHARACTERISED]
    assert "the cap was reached" in out.read_text()


def test_claims_are_shown_when_given_and_the_page_builds_without_characterisation(tmp_path):
    inputs = write_tables(tmp_path, with_characterise=False, claims=True)
    html = render_atlas(
        build_atlas(
            AtlasInputs(
                scores=dict(zip(METHODS, inputs["scores"], strict=True)),
                density=inputs["density"],
                claims=inputs["claims"],
            ),
            settings(top_per_method=5),
        )
    )
    assert "No verdicts yet" not in html
    assert 'class="verdict not-supported">not supported<' in html and "dense in k_proj" in html
    assert html.count("Not drawn for this run.") == len(OVERVIEW_FIGURES)


def _atlas_with_one_claim(tmp_path, auc_gap: float, ci_lo: float, ci_hi: float, **gap) -> dict:
    """The atlas's data with claims.tsv holding one claim (IG, preserve) of these statistics."""
    from kneurons.stats.claims import evaluate_claims
    from kneurons.tables import write_claims

    row = {
        "method": "ig",
        "scope": "global",
        "scope_name": "all",
        "mode": "preserve",
        "auc_gap": auc_gap,
        "ci_lo": ci_lo,
        "ci_hi": ci_hi,
        "p_value": 0.001,
        **gap,
    }
    margins = {"auc_margin": 0.01, "log2_enrichment_margin": 0.1, "specificity_margin": 0.02}
    settings_ = {"confidence": 0.95, "top_fraction": 0.01, "claims": margins}
    path = tmp_path / "claims.tsv"
    write_claims(evaluate_claims(pd.DataFrame([row]), None, None, settings_, n_replicates=2), path)
    inputs = write_tables(tmp_path, with_characterise=False)
    scores = dict(zip(METHODS, inputs["scores"], strict=True))
    return build_atlas(
        AtlasInputs(scores=scores, density=inputs["density"], claims=path), settings(top_per_method=5)
    )


def test_a_full_claims_table_is_shown_with_rounded_estimates_and_intervals(tmp_path):
    data = _atlas_with_one_claim(tmp_path, 0.123456, 0.0501234, 0.2009876)
    (row,) = data["overview"]["claims"]
    # rounded to what the interval supports (its width, 0.151, to 3 significant digits)
    assert row["estimate [interval]"] == "0.123 [0.050, 0.201]" and row["p"] == "0.001"
    assert row["verdict"] == "supported" and row["replicates"] == "2" and "ci_lo" not in row
    assert 'class="verdict supported">supported<' in render_atlas(data)


def test_bootstrap_floor_p_values_read_below_the_floor_and_are_explained(tmp_path):
    data = _atlas_with_one_claim(tmp_path, 0.2, 0.1, 0.3, n_boot=1000)  # p 0.001 = 1/B: no draw crossed 0
    (row,) = data["overview"]["claims"]
    assert row["p"] == "< 0.001" and row["claimed"] == "> 0 (±0.01)"
    html = render_atlas(data)
    assert "p &lt; 0.001: no bootstrap draw fell on the other side of 0" in html and "1/B" in html


def test_intact_accuracy_names_replicate_0_beside_the_curves_mean_of_replicates(tmp_path):
    from kneurons.tables import write_stats_tables

    inputs = write_tables(tmp_path, with_characterise=False)
    curves = tmp_path / "stats" / "curves.tsv"
    write_stats_tables(
        {
            "curves": pd.DataFrame(
                {
                    "method": ["ig"],
                    "scope": "global",
                    "scope_name": "global",
                    "mode": "preserve",
                    "f": [0.1],
                    "accuracy": [0.5],
                    "full_accuracy": [0.951],
                    "n_replicates": [2],
                    "n_test": [72],
                }
            )
        },
        {"curves": curves},
    )
    html = render_atlas(
        build_atlas(
            AtlasInputs(
                scores=dict(zip(METHODS, inputs["scores"], strict=True)),
                density=inputs["density"],
                metrics=inputs["metrics"],
                curves=curves,
            ),
            settings(top_per_method=5),
        )
    )
    text = re.sub(r"<[^>]+>", "", re.search(r'<p id="intact-accuracy">(.*?)</p>', html, re.S)[1])
    assert "replicate 0, test split: intact accuracy 0.917" in text, text
    assert "intact line is 0.951: the mean of 2 replicates' intact accuracies on the 72 test proteins" in text


def test_neuron_panel_numbers_are_rounded_rates_not_float_noise(tmp_path):
    from kneurons.tables import write_result_table

    inputs = write_tables(tmp_path)
    spec = pd.read_csv(inputs["class_specificity"], sep="\t")
    spec["random_diff_lo"], spec["drop_other"] = 1.7578531223231644e-17, -3.700743415417188e-17
    spec["random_diff_hi"] = 0.28842592592592586
    write_result_table(spec, inputs["class_specificity"])
    data = build_atlas(
        AtlasInputs(
            scores=dict(zip(METHODS, inputs["scores"], strict=True)),
            density=inputs["density"],
            characterise={k: inputs[k] for k in ("class_neurons", "class_suppression", "class_specificity")},
        ),
        settings(top_per_method=5),
    )
    shown = data["suppression"][CLASSES[0]]["specificity"]
    assert shown["random_diff_lo"] == 0.0 and shown["drop_other"] == 0.0 and shown["random_diff_hi"] == 0.288
    assert "e-17" not in data_json(data)


def test_page_holds_each_figure_once(tmp_path):
    import base64

    png = tmp_path / "fig.png"
    png.write_bytes(
        base64.b64decode(
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        )
    )
    inputs = write_tables(tmp_path, with_characterise=False)
    html = render_atlas(
        build_atlas(
            AtlasInputs(
                scores=dict(zip(METHODS, inputs["scores"], strict=True)),
                density=inputs["density"],
                figures=dict.fromkeys(OVERVIEW_FIGURES, png),
            ),
            settings(top_per_method=5),
        )
    )
    assert html.count("data:image/png;base64,") == len(OVERVIEW_FIGURES)


def test_data_json_cannot_close_its_script_element():
    text = data_json({"label": "</script><script>alert(1)</script> & <!--"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["label"] == "</script><script>alert(1)</script> & <!--"


def test_window_responses_follow_the_windows_and_pad_sequence_ends():
    resp = [np.array([0.0, 5.0, 1.0, 2.0]), np.array([1.0, 0.5, 0.2, 0.1, 9.0])]
    seqs = ["ACDE", "FGHIK"]
    wins = best_windows(resp, seqs, width=3, n_windows=2, per_protein=1)
    out = window_responses(resp, wins, 3)
    assert out["response"].iloc[:3].isna().tolist() == [False, False, True]  # protein 1, peak at its end
    assert out["response"].iloc[:3].tolist()[:2] == [0.1, 9.0]
    assert out["response"].iloc[3:].tolist() == [0.0, 5.0, 1.0]


def test_atlas_is_torch_free_and_ships_its_templates():
    code = "import sys, kneurons.atlas, kneurons.jobs.atlas; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    toml = (REPO / "pyproject.toml").read_text()
    assert '"kneurons.atlas" = ["templates/*"]' in toml


def test_rule_lists_the_overview_figures_of_the_page():
    text = (REPO / "workflow/rules/atlas.smk").read_text()
    listed = re.search(r"ATLAS_FIGURES = \[(.*?)\]", text, re.S)[1]
    assert re.findall(r'"(\w+)"', listed) == list(OVERVIEW_FIGURES) + list(FEATURE_FIGURES)


def test_units_aligned_with_concepts_are_shown_with_their_concepts_and_filterable(tmp_path):
    from atlas_tables import CONCEPT_UNITS, write_concept_tables

    inputs = {**write_tables(tmp_path), **write_feature_tables(tmp_path)}
    concepts = write_concept_tables(tmp_path)
    run_atlas_job({**inputs, **concepts}, settings(top_per_method=2), tmp_path / "with.html")
    run_atlas_job(inputs, settings(top_per_method=2), tmp_path / "without.html")
    html = (tmp_path / "with.html").read_text()
    data = _page_data(html)
    rows = {r["id"]: r for r in data["neurons"] + data["features"]["rows"]}
    for layer, module, index, _, aligned in CONCEPT_UNITS:
        uid = f"L{layer}.{module}.{index}"
        if aligned:  # aligned units join the shown ones, whatever their ranks
            assert rows[uid]["concepts"] == aligned and rows[uid]["best_concept_f1"] == pytest.approx(0.812)
            panel = data["details"][uid]["concepts"]
            assert [c["concept"] for c in panel] == aligned and all(c["aligned"] for c in panel)
            assert panel[0]["f1"] == pytest.approx(0.812)  # rounded to 3 decimals; controls left out
    assert data["concept_names"] == ["Binding site: ATP", "Helix"]
    assert 'id="filter-concept"' in html and 'id="concepts"' in html and "Concepts</a>" in html
    summary = re.search(r'id="concept-summary">(.*?)</table>', html, re.S)[1]
    assert "<td>2 of 3</td>" in summary and "<td>1 of 3</td>" in summary
    assert "[0.100, 0.330]" in re.search(r'id="concept-knowledge">(.*?)</table>', html, re.S)[1]
    # without the concept stage the page has none of it, and its rows no concept fields
    alone = (tmp_path / "without.html").read_text()
    for part in ('id="filter-concept"', 'id="concepts"', "Concepts</a>"):
        assert part not in alone
    assert all("concepts" not in r for r in _page_data(alone)["neurons"])


def test_rule_gives_the_page_the_concept_figures_it_shows():
    from kneurons.atlas import CONCEPT_FIGURES

    text = (REPO / "workflow/rules/concepts.smk").read_text()
    listed = re.search(r"CONCEPT_FIGURES = \{(.*?)\n\}", text, re.S)[1]
    names = re.findall(r'^    "(\w+)": \(', listed, re.M)
    assert [f"concepts_{n}" for n in names] == list(CONCEPT_FIGURES)
    assert 'f"fig_concepts_{name}"' in (REPO / "workflow/rules/functions/atlas.smk").read_text()
