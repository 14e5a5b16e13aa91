"""Concept alignment (kneurons.concepts): concepts from UniProt columns and planted motifs, InterPLM's F1
by hand, the streamed counts against the reference, the controls and nulls, the knowledge comparison,
and the science on the planted-motif model (the motifs are recovered by the units that fire on them;
the shuffled controls sit at chance)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_annotations import COLUMN_TEXTS
from test_sae import attach_interprot, fair_model
from workflow_rules import REPO

from kneurons.ablation.masks import layout_of
from kneurons.characterise.activations import residue_activations
from kneurons.concepts.activations import concept_counts, unit_maxima
from kneurons.concepts.alignment import is_aligned, null_f1, pair_nulls
from kneurons.concepts.catalogue import (
    CONTROLS,
    PartTracks,
    build_catalogue,
    move_across,
    shuffle_within,
)
from kneurons.concepts.knowledge import knowledge_comparison, select_units
from kneurons.concepts.metric import (
    at_thresholds,
    choose_thresholds,
    count_part,
    f1_scores,
    part_scores,
)
from kneurons.config import validate_config
from kneurons.data.annotations import FEATURE_COLUMNS
from kneurons.errors import InputError
from kneurons.vocabulary import FEATURE_MODULE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = validate_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
THRESHOLDS = [0, 0.15, 0.5, 0.6, 0.8]


# -- concepts from the split's annotation columns -------------------------------------------------
def uniprot_rows(n: int, start: int = 0, length: int = 200) -> pd.DataFrame:
    """Rows shaped like split.tsv from a UniProt export with every feature column: protein ``i``
    carries every column's recorded text (``COLUMN_TEXTS``) except one column, left empty in turn."""
    columns = [c.column for c in FEATURE_COLUMNS]
    rows = []
    for i in range(n):
        seq = "".join("ACDEFGHIKLMNPQRSTVWY"[(i + j) % 20] for j in range(length))
        row = {"accession": f"P{start + i:05d}", "ec": "1.1.1.1", "sequence": seq, "label": "1"}
        row |= {c: ("" if k % n == i else COLUMN_TEXTS[c][0]) for k, c in enumerate(columns)}
        rows.append(row)
    return pd.DataFrame(rows, index=range(start, start + n))


def test_uniprot_columns_make_concepts_by_ligand_and_note_with_their_instances():
    val, test = uniprot_rows(6), uniprot_rows(8, start=6)
    cat = build_catalogue({"val": val, "test": test}, min_proteins=5, seed=0)
    table = cat.table().set_index("concept")
    real = table[table["control"] == ""]
    # every column's whole feature type, and its groups as UniProt names them
    expected = {c.label for c in FEATURE_COLUMNS} | {
        "Active site: Proton acceptor",
        "Active site: Nucleophile",  # "Nucleophile; for the second step": the note up to ";"
        "Binding site: NAD(+)",
        "Binding site: Zn(2+)",
        "Site: Cleavage",
        "Site: Transition state stabilizer",
        "Motif: 'HIGH' region",
        "Motif: 'KMSKS' region",
        "Region: Disordered",
        "Region: Interaction with NAD",
        "Domain: EF-hand",  # "EF-hand 1" and "EF-hand 2": one concept
        "Domain: Protein kinase",
        "Zinc finger: C2H2-type",
        "DNA binding: H-T-H motif",
        "Modified residue: N-acetylserine",
        "Modified residue: Phosphoserine",
        "Transmembrane: Helical",
    }
    assert set(real.index) == expected
    # each protein that carries a column carries its recorded instances
    n_val = {
        c.column: sum(1 for k in range(6) if k % 6 != list(COLUMN_TEXTS).index(c.column) % 6)
        for c in FEATURE_COLUMNS
    }
    for c in FEATURE_COLUMNS:
        per_protein = len(COLUMN_TEXTS[c.column][1])
        assert real.loc[c.label, "proteins_val"] == n_val[c.column], c.column
        assert real.loc[c.label, "instances_val"] == per_protein * n_val[c.column], c.column
    assert (
        real.loc["Binding site: Zn(2+)", "instances_test"]
        == 2 * real.loc["Binding site: Zn(2+)", "proteins_test"]
    )
    assert (
        real.loc["Disulfide bond", "residues_val"] == 3 * real.loc["Disulfide bond", "proteins_val"]
    )  # 30, 95, 50
    assert set(real.index[real["catalytic"]]) == {
        "Active site",
        "Active site: Proton acceptor",
        "Active site: Nucleophile",
        "Binding site",
        "Binding site: NAD(+)",
        "Binding site: Zn(2+)",
    }
    # each real concept has one concept per control, shuffling it
    controls = table[table["control"] != ""]
    assert sorted(controls["source"]) == sorted(list(real.index) * len(CONTROLS))
    assert (
        controls.loc[controls["control"] == "within", "instances_test"].to_numpy()
        == real.loc[controls.loc[controls["control"] == "within", "source"], "instances_test"].to_numpy()
    ).all()


def test_rare_concepts_are_listed_not_scored_and_errors_name_the_line():
    val, test = uniprot_rows(6), uniprot_rows(8, start=6)
    cat = build_catalogue({"val": val, "test": test}, min_proteins=6, seed=0)
    # each column is empty in one of the 6 validation proteins: 5 carry it, fewer than 6
    assert cat.real() == [] and len(cat.too_rare) == len({c.label for c in FEATURE_COLUMNS}) + 17
    assert (cat.too_rare["proteins_val"] == 5).all()
    bad = val.copy()
    bad.loc[3, "domain"] = "DOMAIN 9..3"
    with pytest.raises(InputError, match=r"split.tsv line 5, column domain: invalid location"):
        build_catalogue({"val": bad, "test": test}, min_proteins=1, seed=0, source="split.tsv")


def synthetic_parts(seed: int = 0):
    from kneurons.data.synthetic import generate_synthetic

    prot, motifs = generate_synthetic(n_classes=3, n_per_class=12, length_min=30, length_max=48, seed=seed)
    return prot.iloc[::2], prot.iloc[1::2], motifs


def test_planted_motifs_are_concepts_per_class_with_runs_as_instances():
    val, test, _ = synthetic_parts()
    cat = build_catalogue({"val": val, "test": test}, min_proteins=3, seed=0)
    real = cat.table().set_index("concept").loc[[cat.concepts[i].name for i in cat.real()]]
    assert list(real.index) == ["Planted motif", *(f"Planted motif: EC {c}" for c in (1, 2, 3))]
    assert real["catalytic"].all()
    t = cat.tracks["test"]
    for c in cat.real()[1:]:
        pairs = t.pairs[c]
        cls = cat.concepts[c].group.split()[-1]
        proteins = t.protein_of(pairs[:, 0])
        assert (test["ec"].str.startswith(cls + ".").to_numpy()[proteins]).all()
        # two planted copies of 6 residues per protein: 2 runs, unless the copies touch (one run of 12)
        sizes = pd.Series(pairs[:, 1]).value_counts()
        assert set(sizes) <= {6, 12} and len(pairs) == 12 * len(np.unique(proteins))


def test_controls_shuffle_within_proteins_and_move_across_proteins():
    tracks = PartTracks(np.array([10, 7, 12]))
    pairs = np.array([[2, 0], [3, 0], [4, 0], [12, 1], [21, 2], [28, 2]])  # proteins 0, 1, 2
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        w = shuffle_within(pairs, tracks, rng)
        assert (tracks.protein_of(w[:, 0]) == tracks.protein_of(pairs[:, 0])).all()  # same protein
        assert len(np.unique(w[:3, 0])) == 3 and (w[:, 1] == pairs[:, 1]).all()  # distinct, same instance
        seen.add(tuple(w[:, 0]))
        a = move_across(pairs, tracks, rng)
        src, dst = tracks.protein_of(pairs[:, 0]), tracks.protein_of(a[:, 0])
        assert len(a) <= len(pairs) and (a[:, 0] - tracks.offsets[dst] < tracks.lengths[dst]).all()
        del src
    assert len(seen) > 40  # the draws differ


# -- the metric, by hand ------------------------------------------------------------------------------
def test_precision_recall_f1_and_the_threshold_by_hand():
    # two proteins of 5 residues; concept: instance 0 = residues 1-2 of protein 0, instance 1 = residue 4
    # of protein 1 (flat 9)
    tracks = PartTracks(np.array([5, 5]), [np.array([[1, 0], [2, 0], [9, 1]])])
    acts = np.zeros((10, 3), dtype=np.float32)
    acts[[1, 9], 0] = 2.0  # unit 0: fires on one residue of each instance (max on training: 2)
    acts[[1, 5, 6], 1] = 1.0  # unit 1: one residue inside, two outside (max 4: scaled 0.25)
    acts[:, 2] = -1.0  # unit 2: dead (training max -1)
    maxima = np.array([2.0, 4.0, -1.0])
    counts = count_part(acts, maxima, THRESHOLDS, tracks)
    p, r, f1 = part_scores(counts, np.array([2]))
    # unit 0 at every threshold: precision 2/2, recall 2/2
    assert np.allclose(p[0, :, 0], 1) and np.allclose(r[0, :, 0], 1) and np.allclose(f1[0, :, 0], 1)
    # unit 1 above 0 and 0.15 (scaled 0.25): precision 1/3, recall 1/2 -> F1 = 0.4; nothing above 0.5
    assert np.allclose(f1[1, :, 0], [0.4, 0.4, 0, 0, 0]) and np.allclose(p[1, :2, 0], 1 / 3)
    assert (counts.active[2] == 0).all() and (f1[2] == 0).all()
    chosen = choose_thresholds(f1)
    assert chosen[0, 0] == 4 and chosen[1, 0] == 1  # ties to the higher threshold
    assert at_thresholds(f1, chosen)[1, 0] == pytest.approx(0.4)
    _, _, f1_undefined = f1_scores(np.array([0]), np.array([0]), np.array([0]), np.array([0]))
    assert f1_undefined[0] == 0


def test_streamed_counts_of_neurons_and_features_equal_the_reference(tmp_path):
    model = fair_model()
    attach_interprot(model, 1, tmp_path)
    val, test, _ = synthetic_parts()
    cat = build_catalogue({"val": val, "test": test}, min_proteins=3, seed=0)
    neurons, features = layout_of(model), layout_of(model, (FEATURE_MODULE,))
    rng = np.random.default_rng(0)
    # every unit of some modules, a sample of others (the max_units path), and SAE features
    picked = np.sort(rng.choice(neurons.total, size=neurons.total // 3, replace=False))
    units = pd.concat([neurons.keys(picked), features.keys(np.arange(features.total))], ignore_index=True)
    train = pd.concat([val, test])["sequence"].tolist()
    maxima = unit_maxima(model, train, units, token_budget=200)
    ref_train = np.concatenate(residue_activations(model, train, units, token_budget=200))
    assert np.array_equal(maxima, ref_train.max(axis=0).astype(np.float32))
    seqs = test["sequence"].tolist()
    got = concept_counts(model, seqs, units, maxima, THRESHOLDS, cat.tracks["test"], token_budget=150)
    acts = np.concatenate(residue_activations(model, seqs, units, token_budget=150))
    want = count_part(acts, maxima, THRESHOLDS, cat.tracks["test"])
    assert np.array_equal(got.active, want.active)
    assert np.array_equal(got.tp, want.tp) and np.array_equal(got.hits, want.hits)
    assert got.tp.sum() > 0 and got.hits.sum() > 0  # something was counted


# -- nulls and the aligned decision ---------------------------------------------------------------
def test_a_unit_that_reads_the_concept_beats_its_null_and_a_shuffled_one_does_not():
    val, test, _ = synthetic_parts()
    cat = build_catalogue({"val": val, "test": test}, min_proteins=3, seed=0)
    t = cat.tracks["test"]
    c = cat.real()[1]  # Planted motif: EC 1
    truth = np.zeros(t.n_residues, dtype=np.float32)
    truth[t.pairs[c][:, 0]] = 1.0
    noise = np.random.default_rng(1).random(t.n_residues).astype(np.float32)
    shuffled = np.zeros(t.n_residues, dtype=np.float32)
    shuffled[shuffle_within(t.pairs[c], t, np.random.default_rng(2))[:, 0]] = 1.0
    scaled = np.stack([truth, noise, shuffled], axis=1)
    cand = pd.DataFrame({"unit": [0, 1, 2], "concept": [c, c, c], "threshold_index": [2, 4, 2]})
    nulls = pair_nulls(scaled, np.array([0, 1, 2]), cand, THRESHOLDS, t, shuffles=200, seed=0)
    f1 = []
    for col, thr in ((0, 0.5), (1, 0.8), (2, 0.5)):
        active = scaled[:, [col]] > thr
        from kneurons.concepts.metric import concept_hits

        tp, hits, n = concept_hits(active, t.pairs[c])
        f1.append(f1_scores(tp, hits, active.sum(axis=0), np.array(n))[2][0])
    assert f1[0] == pytest.approx(1.0)
    assert is_aligned(f1, nulls, 0.5).tolist() == [True, False, False]
    # What the nulls should be, worked out: the concept fills 12 of a class-1 protein's ~39 residues.
    # Shuffled within those proteins, each 6-residue instance still meets one of the unit's 12 active
    # residues (recall ~0.9) at precision ~0.31: F1 ~0.45. Moved to random proteins, a third of the
    # instances land in class-1 proteins (recall ~0.3), at a third of their overlap: F1 ~0.15.
    row = nulls.iloc[0]
    assert 0.35 < row["null_within_mean"] < 0.55 and 0.1 < row["null_across_mean"] < 0.3
    assert row["null_within_mean"] < row["null_within_p99"] < 0.7 and row["null_across_p99"] < 0.7
    for control in CONTROLS:
        # the same draws whatever else is drawn with it
        again = null_f1(scaled[:, [0]] > 0.5, t.pairs[c], t, control, 200, (0, c, CONTROLS.index(control)))
        assert np.quantile(again, 0.99) == pytest.approx(nulls[f"null_{control}_p99"].iloc[0])
    # a pair without a null (below the floor) is never aligned
    assert not is_aligned([0.9], pd.DataFrame({f"null_{k}_p99": [np.nan] for k in CONTROLS}), 0.5)[0]


# -- knowledge units against random units ---------------------------------------------------------
def _units_frame(f1_knowledge: float, n_blocks: int = 4, per_block: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(n_blocks):
        for i in range(per_block):
            know = i < 3
            f1 = float(np.clip(rng.normal(f1_knowledge if know else 0.2, 0.05), 0, 1))
            rows.append(
                {
                    "units": "neurons",
                    "layer": b // 2,
                    "module": ("fc1", "k_proj")[b % 2],
                    "ig_score": (10.0 if know else 0.0) + rng.random(),
                    "random_score": rng.random(),
                    "knowledge": know,
                    "catalytic_f1": f1,
                    "catalytic_aligned": f1 > 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_knowledge_units_against_random_units_of_the_same_modules():
    high = knowledge_comparison(_units_frame(0.8), 3, n_boot=300, confidence=0.95, seed=0).iloc[0]
    assert high["n_knowledge"] == 12 and high["n_units"] == 200
    assert high["f1_gap"] == pytest.approx(high["f1_knowledge"] - high["f1_random"])
    assert high["ci_lo"] > 0.4 and high["p_value"] == pytest.approx(1 / 301) == high["p_floor"]
    assert high["spearman_ci_lo"] > 0 and abs(high["spearman_random"]) < 0.15
    null = knowledge_comparison(_units_frame(0.2), 3, n_boot=300, confidence=0.95, seed=0).iloc[0]
    assert null["ci_lo"] < 0 < null["ci_hi"] and null["p_value"] > 0.05
    none = knowledge_comparison(_units_frame(0.8), 0, n_boot=300, confidence=0.95, seed=0).iloc[0]
    assert np.isnan(none["f1_gap"])  # no catalytic concept scored: nothing to claim


def test_unit_selection_keeps_the_knowledge_units():
    assert (select_units(50, np.array([3]), None, 0) == np.arange(50)).all()
    picked = select_units(1000, np.array([7, 900]), 100, seed=1)
    assert len(picked) == 100 and {7, 900} <= set(picked) and (np.diff(picked) > 0).all()
    assert (picked == select_units(1000, np.array([7, 900]), 100, seed=1)).all()


# -- the job on the planted-motif model: the science --------------------------------------------
@pytest.fixture(scope="module")
def concept_run(trained_synthetic, tmp_path_factory):
    """The concept job on the fine-tuned planted-motif model: neurons and the features of an SAE
    trained on the stream entering layer 1, IG and random scores of both, the default settings."""
    from kneurons.jobs.concepts import run_concepts_job
    from kneurons.jobs.features import run_train_sae, sae_specs
    from kneurons.jobs.score import run_score_job
    from kneurons.settings import job_settings
    from kneurons.tables import write_split

    out = tmp_path_factory.mktemp("concepts")
    split_path = out / "split.tsv"
    write_split(trained_synthetic.split, split_path)
    cfg = copy.deepcopy(BASE)
    cfg["units"]["features"] = [{"layer": 1, "sae": "train", "format": "kneurons", "k": None}]
    cfg["sae"]["epochs"] = 5
    cfg["score"]["ig"]["steps"] = 4
    ckpt = trained_synthetic.checkpoint
    run_train_sae(ckpt, split_path, 1, job_settings("train_sae", cfg), out / "layer1.pt")
    specs = sae_specs(cfg["units"]["features"], [out / "layer1.pt"])
    scoring = out / "scoring_set.tsv"
    subset = trained_synthetic.split[trained_synthetic.split["split"] == "train"].iloc[:32].copy()
    subset["label_index"] = subset["label"].map({lab: i for i, lab in enumerate(trained_synthetic.labels)})
    subset[["accession", "sequence", "label", "label_index"]].to_csv(scoring, sep="\t", index=False)
    scores = {"neurons": {}, "features": {}}
    for method in ("ig", "random"):
        path = out / f"{method}.parquet"
        run_score_job(ckpt, scoring, method, [0, 1], job_settings("score_layers", cfg, method=method), path)
        scores["neurons"][method] = path
        fpath = out / f"features_{method}.parquet"
        run_score_job(
            ckpt, scoring, method, None, job_settings("score_features", cfg, method=method), fpath, saes=specs
        )
        scores["features"][method] = fpath
    files = {n: out / f"{n}.tsv" for n in ("alignment", "summary", "concepts", "units", "knowledge")}
    files["info"] = out / "info.json"
    settings = job_settings("concepts", cfg)
    info = run_concepts_job(ckpt, split_path, settings, files, scores=scores, saes=specs)
    from kneurons.tables import read_concept_table

    tables = {n: read_concept_table(p, n) for n, p in files.items() if n != "info"}
    return {"info": info, "tables": tables, "files": files, "settings": settings, "ts": trained_synthetic}


def _naive_f1(
    acts: list[np.ndarray], maximum: float, threshold: float, sites: list[list[list[int]]]
) -> float:
    """InterPLM's F1 of one unit, by loops: ``sites`` per protein, its instances' 0-based residues."""
    active_total = inside = hit = total = 0
    for a, instances in zip(acts, sites, strict=True):
        active = [i for i, v in enumerate(a) if maximum > 0 and v / maximum > threshold]
        concept = {i for inst in instances for i in inst}
        active_total += len(active)
        inside += sum(1 for i in active if i in concept)
        total += len(instances)
        hit += sum(1 for inst in instances if any(i in active for i in inst))
    p = inside / active_total if active_total else 0.0
    r = hit / total if total else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def _motif_instances(rows: pd.DataFrame, cls: str) -> list[list[list[int]]]:
    """Per protein of ``rows``, its planted runs (0-based) when its EC class is ``cls``, else none."""
    out = []
    for r in rows.itertuples():
        pos = sorted(int(x) - 1 for x in r.motif_sites.split(";")) if r.ec.split(".")[0] == cls else []
        runs: list[list[int]] = []
        for p in pos:
            if runs and p == runs[-1][-1] + 1:
                runs[-1].append(p)
            else:
                runs.append([p])
        out.append(runs)
    return out


def test_planted_motifs_are_recovered_by_the_units_that_fire_on_them(concept_run):
    from kneurons.model.checkpoint import load_classifier

    t = concept_run["tables"]
    summary, concepts, align = t["summary"], t["concepts"], t["alignment"]
    print(summary.to_string())
    print(
        concepts[
            [
                "concept",
                "control",
                "best_neurons",
                "best_neurons_f1",
                "aligned_neurons",
                "best_features",
                "best_features_f1",
                "aligned_features",
            ]
        ].to_string()
    )
    # the summary exists for neurons and for features
    overall = summary[summary["group_by"] == "all"].set_index("units")
    assert set(overall.index) == {"neurons", "features"}
    # every class's planted motif is covered by an aligned neuron
    real = concepts[concepts["control"] == ""].set_index("concept")
    classes = [f"Planted motif: EC {c}" for c in ("1", "2", "3", "4")]
    assert set(classes) <= set(real.index)
    assert (real.loc[classes, "aligned_neurons"] > 0).all() and overall.loc[
        "neurons", "concepts_covered"
    ] >= 4
    # the shuffled controls sit at chance: no unit aligns with one, no control's best unit reaches the floor
    assert (summary["control_units_aligned"] == 0).all() and (summary["control_concepts_covered"] == 0).all()
    ctrl = concepts[concepts["control"] != ""]
    assert (ctrl[["best_neurons_f1", "best_features_f1"]].to_numpy() < 0.5).all()
    assert not align.loc[align["control"] != "", "aligned"].any()
    ok = align[align["aligned"]]
    assert (ok["f1"] > 0.5).all() and (ok["f1"] > ok["null_within_p99"]).all()
    assert (ok["f1"] > ok["null_across_p99"]).all()
    # a class's motif moved to random proteins lands mostly in other classes' proteins: chance is low
    # (the motifs of all classes together are in every protein, so moving them changes little)
    per_class = ok[ok["concept"].str.startswith("Planted motif: EC")]
    assert (per_class["null_across_mean"] < 0.3).all() and (
        per_class["null_within_mean"] < per_class["f1"]
    ).all()

    # The best aligned neuron of each class fires on its motif: its F1, recomputed by loops from its
    # own activations, is the table's, and its strongest residue lies in a planted motif in most of
    # the class's test proteins.
    ts = concept_run["ts"]
    model, _ = load_classifier(ts.checkpoint)
    split = ts.split
    test = split[split["split"] == "test"]
    train = split[split["split"] == "train"]
    units = t["units"]
    for cls in ("1", "2", "3", "4"):
        rows = ok[(ok["concept"] == f"Planted motif: EC {cls}") & (ok["units"] == "neurons")]
        best = rows.sort_values("f1", ascending=False).iloc[0]
        key = pd.DataFrame([best[["layer", "module", "neuron"]].to_dict()])
        acts = [a[:, 0] for a in residue_activations(model, test["sequence"].tolist(), key)]
        maximum = float(np.concatenate(residue_activations(model, train["sequence"].tolist(), key)).max())
        unit = units[
            (units["layer"] == best["layer"])
            & (units["module"] == best["module"])
            & (units["neuron"] == best["neuron"])
        ].iloc[0]
        assert unit["max_train"] == pytest.approx(maximum, rel=1e-6)
        sites = _motif_instances(test, cls)
        assert _naive_f1(acts, maximum, best["threshold"], sites) == pytest.approx(best["f1"], abs=1e-9)
        own = [(a, s) for a, s in zip(acts, sites, strict=True) if s]
        peak_in_motif = np.mean([int(np.argmax(a)) in {i for run in s for i in run} for a, s in own])
        print(
            f"EC {cls}: {best['module']} L{best['layer']}.{best['neuron']} F1 {best['f1']:.3f}, "
            f"peak in motif {peak_in_motif:.2f}"
        )
        assert peak_in_motif >= 0.6


def test_knowledge_table_and_claim_7_from_the_run(concept_run):
    from kneurons.stats.claims import evaluate_claims

    know = concept_run["tables"]["knowledge"].set_index("units")
    print(know.to_string())
    assert set(know.index) == {"neurons", "features"}
    assert (know["catalytic_concepts"] == 5).all()  # the planted motifs: per class and all together
    assert np.isfinite(know[["f1_gap", "ci_lo", "ci_hi", "p_value", "spearman_ig"]].to_numpy()).all()
    assert (know["ci_lo"] <= know["f1_gap"]).all() and (know["f1_gap"] <= know["ci_hi"]).all()
    units = concept_run["tables"]["units"]
    for kind, row in know.iterrows():
        g = units[units["units"] == kind]
        assert row["n_knowledge"] == int(g["knowledge"].sum()) and row["n_units"] == len(g)
        assert row["f1_knowledge"] == pytest.approx(g.loc[g["knowledge"], "catalytic_f1"].fillna(0).mean())
    stats = {**validate_config({})["stats"]}
    gap = pd.DataFrame(columns=["method", "scope", "mode", "auc_gap", "ci_lo", "ci_hi"])
    claims = evaluate_claims(gap, None, None, stats, concepts=concept_run["tables"]["knowledge"])
    assert list(claims["claim"]) == ["7", "7"] and set(claims["source"]) == {"concepts/knowledge.tsv"}
    assert claims["statistic"].str.contains("top IG neurons minus random neurons").any()
    assert set(claims["figure"]) == {"figures/concepts/knowledge.png"}


def test_concept_figures_draw_the_run_and_a_run_without_concepts(concept_run, tmp_path):
    from kneurons.jobs.figures import make_concept_figures

    files = {k: v for k, v in concept_run["files"].items() if k != "alignment"}
    out = {name: [tmp_path / f"{name}.png"] for name in ("units_aligned", "covered", "knowledge")}
    make_concept_figures(files, out, dpi=60)
    for (path,) in out.values():
        assert path.stat().st_size > 5000


def test_claim_7_equals_an_independent_recomputation(concept_run):
    """Claim 7's rows from the run's tables equal tests/claims_check.py's own recomputation from
    concepts/units.tsv (estimate, interval, p-value, verdict), as the SLURM run checks the workflow's."""
    from claims_check import ConceptFiles, _concept_knowledge, _rule

    from kneurons.stats.claims import evaluate_claims

    s = concept_run["settings"]
    stats = validate_config({})["stats"]
    gap = pd.DataFrame(columns=["method", "scope", "mode", "auc_gap", "ci_lo", "ci_hi"])
    got = evaluate_claims(gap, None, None, stats, concepts=concept_run["tables"]["knowledge"])
    files = concept_run["files"]
    want = _concept_knowledge(
        ConceptFiles(files["units"], files["concepts"], s["stats"]["bootstrap"], s["seed"]), 0.95
    )
    assert len(want) == len(got) == 2
    for (_, _, est, lo, hi, p, _), row in zip(want, got.itertuples(), strict=True):
        assert (row.estimate, row.ci_lo, row.ci_hi, row.p_value) == pytest.approx((est, lo, hi, p), rel=1e-9)
        assert row.verdict == _rule(lo, hi, +1, stats["claims"]["concept_margin"])


# -- the job on UniProt columns, and on data without annotations ------------------------------------
def _tiny_run(tmp_path, split: pd.DataFrame) -> tuple:
    """A random-weight 2-layer classifier's checkpoint (``fair_model``), an InterProt SAE file for
    the stream entering layer 1, and ``split`` written as split.tsv."""
    from test_sae import DIM, LAYERS, interprot_state

    from kneurons.model.checkpoint import save_classifier
    from kneurons.model.classifier import BackboneSpec

    checkpoint = tmp_path / "best.pt"
    save_classifier(checkpoint, fair_model(), BackboneSpec("custom", LAYERS, DIM, 4), ["1", "2", "3"])
    sae = tmp_path / "sae.pt"
    torch.save(interprot_state(d=DIM), sae)
    split_path = tmp_path / "split.tsv"
    split.to_csv(split_path, sep="\t", index=False)
    spec = {"layer": 1, "path": str(sae), "format": "interprot", "k": 12}
    files = {n: tmp_path / f"{n}.tsv" for n in ("alignment", "summary", "concepts", "units", "knowledge")}
    return checkpoint, split_path, [spec], files | {"info": tmp_path / "info.json"}


def test_the_job_scores_every_uniprot_column_for_neurons_and_features(tmp_path):
    from kneurons.jobs.concepts import run_concepts_job
    from kneurons.settings import job_settings
    from kneurons.tables import read_concept_table

    parts = [uniprot_rows(6, 0, 60), uniprot_rows(6, 6, 60), uniprot_rows(8, 12, 60)]
    split = pd.concat(parts).assign(split=["train"] * 6 + ["val"] * 6 + ["test"] * 8)
    split["label"] = ["1", "2", "3"] * 6 + ["1", "2"]
    checkpoint, split_path, saes, files = _tiny_run(tmp_path, split)
    settings = job_settings("concepts", BASE)
    info = run_concepts_job(checkpoint, split_path, settings, files, saes=saes)
    concepts = read_concept_table(files["concepts"], "concepts")
    real = concepts[concepts["control"] == ""]
    # cropped at 60 residues, the features past it are gone: SITE 88.., HELIX 64.., ZN_FING 130.., ...
    expected = {
        "Active site",
        "Active site: Proton acceptor",
        "Binding site",
        "Binding site: NAD(+)",
        "Binding site: Zn(2+)",
        "Motif",
        "Motif: 'HIGH' region",
        "Motif: 'KMSKS' region",
        "Region",
        "Region: Disordered",
        "Domain",
        "Domain: EF-hand",
        "Domain: Protein kinase",
        "Disulfide bond",
        "Modified residue",
        "Modified residue: N-acetylserine",
        "Modified residue: Phosphoserine",
        "Signal peptide",
        "Beta strand",
        "Turn",
    }
    assert set(real["concept"]) == expected
    assert info["positions_beyond_sequence"] > 0 and info["annotation_columns"] == [
        c.column for c in FEATURE_COLUMNS
    ]
    units = read_concept_table(files["units"], "units")
    assert set(units["units"]) == {"neurons", "features"} and (units["units"] == "features").sum() == 96
    summary = read_concept_table(files["summary"], "summary")
    assert set(summary.loc[summary["group_by"] == "all", "units"]) == {"neurons", "features"}
    assert (summary["concepts_scored"] == len(expected)).all()
    # no IG scores given: the knowledge part has no row, so claim 7 none
    assert read_concept_table(files["knowledge"], "knowledge").empty
    assert units["ig_score"].isna().all()


def test_data_without_annotations_give_empty_tables_that_say_so(tmp_path):
    from kneurons.jobs.concepts import NO_CONCEPTS, run_concepts_job
    from kneurons.jobs.figures import make_concept_figures
    from kneurons.settings import job_settings
    from kneurons.stats.claims import evaluate_claims
    from kneurons.tables import read_concept_table

    val, test, _ = synthetic_parts()
    split = pd.concat([val, test, val]).drop(columns=["motif_sites"])
    split["split"] = ["val"] * len(val) + ["test"] * len(test) + ["train"] * len(val)
    split["label"] = split["ec"].str[0]
    checkpoint, split_path, saes, files = _tiny_run(tmp_path, split)
    info = run_concepts_job(checkpoint, split_path, job_settings("concepts", BASE), files, saes=saes)
    assert info["status"] == f"{NO_CONCEPTS}: no annotation column in {split_path}"
    for name in ("alignment", "summary", "concepts", "units", "knowledge"):
        assert read_concept_table(files[name], name).empty
    knowledge = read_concept_table(files["knowledge"], "knowledge")
    gap = pd.DataFrame(columns=["method", "scope", "mode", "auc_gap", "ci_lo", "ci_hi"])
    assert evaluate_claims(gap, None, None, validate_config({})["stats"], concepts=knowledge).empty
    out = {n: [tmp_path / f"{n}.png"] for n in ("units_aligned", "covered", "knowledge")}
    make_concept_figures({k: v for k, v in files.items() if k != "alignment"}, out, dpi=50)
    assert all(p.stat().st_size > 1000 for (p,) in out.values())
