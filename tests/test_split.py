"""Splits: stratified random and homology-aware (MMseqs2), and the leakage report."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from kneurons.data.mmseqs import mmseqs_clusters
from kneurons.data.split import (
    SPLITS,
    allocate,
    homology_split,
    leakage_report,
    split_labels,
    stratified_split,
)
from kneurons.errors import InputError

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def labelled(sizes: dict[str, int]) -> pd.DataFrame:
    rows = []
    for lab, n in sizes.items():
        rows += [
            {"accession": f"{lab}_{i}", "sequence": "MKV", "ec": f"{lab}.1.1.1", "label": lab}
            for i in range(n)
        ]
    return pd.DataFrame(rows)


# -- stratified ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 4, 7, 10, 33, 101])
def test_allocate_sums_and_minimum(n):
    counts = allocate(n, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert sum(counts.values()) == n and min(counts.values()) >= 1
    assert abs(counts["train"] - 0.8 * n) <= 2


def test_stratified_split_per_class_proportions():
    df = labelled({"1": 50, "2": 20, "3": 5})
    out = stratified_split(df, FRACTIONS, seed=0)
    assert out.drop(columns="split").equals(df)  # same rows, same order, columns kept
    counts = out.groupby(["label", "split"]).size().unstack()
    assert counts.loc["1"].to_dict() == {"test": 10, "train": 30, "val": 10}
    assert counts.loc["2"].to_dict() == {"test": 4, "train": 12, "val": 4}
    assert (counts.loc["3"] >= 1).all() and counts.loc["3"].sum() == 5


def test_stratified_split_seeded():
    df = labelled({"1": 40, "2": 40})
    a = stratified_split(df, FRACTIONS, seed=1)["split"].tolist()
    assert a == stratified_split(df, FRACTIONS, seed=1)["split"].tolist()
    assert a != stratified_split(df, FRACTIONS, seed=2)["split"].tolist()


def test_stratified_split_class_too_small():
    with pytest.raises(InputError, match=r"class '2' has 2 proteins.*at least 3.*min_class_size"):
        stratified_split(labelled({"1": 10, "2": 2}), FRACTIONS, seed=0)


def test_leakage_report_counts_without_identity():
    out = stratified_split(labelled({"1": 10, "2": 5}), FRACTIONS, seed=0)
    rep = leakage_report(out, "stratified", compute_identity=False)
    assert rep["class_counts"]["1"] == {"train": 6, "val": 2, "test": 2}
    assert sum(rep["proteins"].values()) == 15
    assert rep["identity"]["computed"] is False and "clusters" not in rep


def test_leakage_report_without_mmseqs_says_so():
    out = stratified_split(labelled({"1": 10, "2": 5}), FRACTIONS, seed=0)
    rep = leakage_report(out, "stratified", {"executable": "no-such-mmseqs-binary"})
    assert rep["identity"]["computed"] is False
    assert "not computed" in rep["identity"]["reason"] and "mmseqs2" in rep["identity"]["reason"]


def test_homology_split_needs_mmseqs():
    with pytest.raises(InputError, match=r"not found.*apt-get install mmseqs2.*bioconda"):
        split_labels(
            labelled({"1": 5, "2": 5}),
            {"method": "homology", "fractions": FRACTIONS, "mmseqs": {"executable": "no-such-mmseqs-binary"}},
            seed=0,
        )


def test_homology_split_assignment_without_mmseqs():
    """The cluster assignment itself, on given clusters: whole clusters, every class everywhere."""
    df = labelled({"1": 30, "2": 12})
    # Class 1: ten clusters of three; class 2: six clusters of two.
    clusters = {
        a: a.rsplit("_", 1)[0] + "_c" + str(int(a.rsplit("_", 1)[1]) // (3 if a[0] == "1" else 2))
        for a in df.accession
    }
    out = homology_split(df, FRACTIONS, seed=0, clusters=clusters)
    assert out.groupby("cluster")["split"].nunique().max() == 1
    counts = out.groupby(["label", "split"]).size().unstack()
    assert (counts > 0).all().all()
    assert counts.loc["1"].to_dict() == {"test": 6, "train": 18, "val": 6}
    rep = leakage_report(out, "homology", compute_identity=False)
    assert rep["shared_clusters"] == {"test_train": 0, "val_train": 0, "test_val": 0}


def test_homology_split_too_few_clusters():
    df = labelled({"1": 9, "2": 6})
    clusters = {a: ("big1" if a.startswith("1") else a) for a in df.accession}  # class 1: one cluster
    with pytest.raises(InputError, match=r"'1' not in val.*'1': 1 clusters"):
        homology_split(df, FRACTIONS, seed=0, clusters=clusters)


# -- with MMseqs2 -------------------------------------------------------------------------------
def families(n_classes=3, fam_per_class=5, members=3, length=80, seed=0) -> pd.DataFrame:
    """Families of near-identical sequences (3% mutated) around unrelated random founders."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(1, n_classes + 1):
        for f in range(fam_per_class):
            founder = rng.choice(AA, size=length)
            for m in range(members):
                s = founder.copy()
                pos = rng.choice(length, size=int(0.03 * length), replace=False)
                s[pos] = rng.choice(AA, size=len(pos))
                rows.append(
                    {
                        "accession": f"C{c}F{f}M{m}",
                        "sequence": "M" + "".join(s),
                        "ec": f"{c}.1.1.1",
                        "label": str(c),
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def mmseqs_families(tmp_path_factory):
    if shutil.which("mmseqs") is None:
        pytest.skip("MMseqs2 not installed (apt-get install mmseqs2); CI installs it")
    df = families()
    clusters = mmseqs_clusters(df, min_seq_id=0.5, coverage=0.8, workdir=tmp_path_factory.mktemp("mm"))
    return df, clusters


def test_mmseqs_clusters_recover_families(mmseqs_families):
    df, clusters = mmseqs_families
    family = {a: a.rsplit("M", 1)[0] for a in df.accession}
    # Each planted family is exactly one cluster.
    by_cluster = pd.Series(family).groupby(pd.Series(clusters)).nunique()
    assert len(set(clusters.values())) == 15 and (by_cluster == 1).all()


def test_homology_split_has_no_leakage_but_stratified_does(mmseqs_families, tmp_path):
    df, clusters = mmseqs_families
    hom = homology_split(df, FRACTIONS, seed=0, clusters=clusters)
    assert hom.groupby("cluster")["split"].nunique().max() == 1
    for lab in "123":
        assert set(hom.loc[hom.label == lab, "split"]) == set(SPLITS)
    rep = leakage_report(hom, "homology", {"min_seq_id": 0.5, "coverage": 0.8}, workdir=tmp_path)
    assert rep["shared_clusters"]["test_train"] == 0
    ident = rep["identity"]["test_vs_train"]
    assert rep["identity"]["computed"] and ident["queries"] == 3 * 3
    assert ident["max_identity"] is None or ident["max_identity"] < 0.5

    strat = stratified_split(df, FRACTIONS, seed=0)
    rep_s = leakage_report(strat, "stratified", {"coverage": 0.8}, workdir=tmp_path)
    # Family members straddle train and test: the report must show near-identical pairs.
    assert rep_s["identity"]["test_vs_train"]["max_identity"] > 0.9
    assert rep_s["identity"]["test_vs_train"]["queries_at_least"]["0.9"] >= 1


def shared_heads(
    n_groups: int = 6, members: int = 4, head: int = 40, tail: int = 200, seed: int = 1
) -> pd.DataFrame:
    """Proteins of two classes whose first ``head`` residues are near-identical within a group (3 of
    40 mutated) and whose other ``tail`` residues are unrelated: one homologous domain at the start,
    the rest of each protein its own. Full length, no two are homologous (an alignment covers 40 of
    240 residues, below the 80% coverage); cropped to their heads, each group is one family."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        founder = rng.choice(AA, size=head)
        for m in range(members):
            start = founder.copy()
            pos = rng.choice(head, size=3, replace=False)
            start[pos] = rng.choice(AA, size=3)
            seq = "M" + "".join(start) + "".join(rng.choice(AA, size=tail))
            rows.append(
                {
                    "accession": f"G{g}M{m}",
                    "sequence": seq,
                    "ec": f"{g % 2 + 1}.1.1.1",
                    "label": str(g % 2 + 1),
                }
            )
    return pd.DataFrame(rows)


def test_homology_split_and_leakage_compare_full_length_sequences(tmp_path):
    """The split and its leakage report cluster and search the full-length sequences of the proteins
    table (``proteins``); the split keeps the crops the model reads. Clustering the 41-residue crops
    instead joins each group into one cluster and reports near-identical test-vs-train pairs."""
    if shutil.which("mmseqs") is None:
        pytest.skip("MMseqs2 not installed (apt-get install mmseqs2); CI installs it")
    proteins = shared_heads()
    labels = proteins.assign(sequence=proteins["sequence"].str[:41])  # labels.max_length: 41
    cfg = {"method": "homology", "fractions": FRACTIONS, "mmseqs": {"min_seq_id": 0.5, "coverage": 0.8}}
    full = split_labels(labels, cfg, seed=0, workdir=tmp_path, proteins=proteins)
    crops = split_labels(labels, cfg, seed=0, workdir=tmp_path)
    assert full["cluster"].nunique() == len(proteins) and crops["cluster"].nunique() == 6
    assert full["sequence"].tolist() == labels["sequence"].tolist()  # the model's input, kept
    mm = {"min_seq_id": 0.5, "coverage": 0.8}
    # the same (crop-clustered) split, its test proteins searched against training
    whole = leakage_report(full, "homology", mm, workdir=tmp_path, proteins=proteins)
    cropped = leakage_report(full, "homology", mm, workdir=tmp_path)
    assert whole["sequences"] == {"compared": "full length (data/proteins.tsv)", "cropped_for_the_model": 24}
    assert cropped["sequences"] == {"compared": "as in the split (the model's input)"}
    assert whole["identity"]["test_vs_train"]["queries_with_hit"] == 0
    assert cropped["identity"]["test_vs_train"]["max_identity"] > 0.8
    with pytest.raises(InputError, match=r"labelled proteins missing from the proteins table: \['X1'\]"):
        split_labels(pd.concat([labels, labels.iloc[:1].assign(accession="X1")]), cfg, 0, proteins=proteins)
