"""External test sets: reading (TSV, CSV, FASTA), labels against the model's classes, overlap with
training, config validation before any model work, and the claims rows per set."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from kneurons.config import validate_config
from kneurons.data.external import external_set_problems, label_external, overlap_with_train, read_external
from kneurons.data.synthetic import generate_synthetic
from kneurons.errors import ConfigError, InputError

LABELS_CFG = validate_config({})["labels"]
MODEL_LABELS = ["1", "2", "3", "4"]


def _tsv(path, rows):
    path.write_text("Entry\tEC number\tSequence\n" + "".join(f"{a}\t{e}\t{s}\n" for a, e, s in rows))
    return path


ROWS = [("P1", "1.1.1.1", "MKTAYIAKQRQISFVKSHFSRQ"), ("P2", "2.7.1.1", "MSTNPKPQRKTKRNTNRRPQDV"),
        ("P3", "7.1.1.1", "MKVLAAGIVGLLLAAPAQAAEE")]  # fmt: skip


def test_tsv_csv_and_fasta_read_the_same_proteins(tmp_path):
    tsv = read_external("a", _tsv(tmp_path / "a.tsv", ROWS))
    csv = tmp_path / "a.csv"
    csv.write_text("Entry,EC number,Sequence\n" + "".join(f"{a},{e},{s}\n" for a, e, s in ROWS))
    fasta = tmp_path / "a.fasta"
    fasta.write_text("".join(f">{a} EC={e}\n{s}\n" for a, e, s in ROWS))
    for other in (read_external("a", csv), read_external("a", fasta)):
        pd.testing.assert_frame_equal(
            other[["accession", "ec", "sequence"]], tsv[["accession", "ec", "sequence"]]
        )


def test_labels_keep_the_model_classes_and_count_the_rest(tmp_path):
    proteins = read_external("a", _tsv(tmp_path / "a.tsv", ROWS))
    kept, report = label_external("a", proteins, LABELS_CFG, MODEL_LABELS, "a.tsv")
    assert list(kept["label"]) == ["1", "2"]
    assert report["unknown_class"] == {"7": 1} and report["kept"] == 2
    # One class is a valid external set (a classifier's two-class minimum does not apply).
    one, _ = label_external("b", proteins.iloc[:1], LABELS_CFG, MODEL_LABELS, "b.tsv")
    assert list(one["label"]) == ["1"]
    with pytest.raises(InputError, match="none of its 1 labelled proteins"):
        label_external("c", proteins.iloc[2:], LABELS_CFG, MODEL_LABELS, "c.tsv")


def test_a_set_built_from_training_proteins_is_flagged(tmp_path):
    train, _ = generate_synthetic(n_classes=2, n_per_class=10, length_min=40, length_max=50, seed=0)
    new, _ = generate_synthetic(
        n_classes=2,
        n_per_class=5,
        length_min=40,
        length_max=50,
        seed=0,
        sequence_seed=3,
        accession_prefix="EXT",
    )
    ext = pd.concat([train.iloc[:4], new], ignore_index=True)
    out, report = overlap_with_train(ext, train)
    assert report["identical_to_train"] == 4
    assert out["identical_to_train"].tolist() == [True] * 4 + [False] * len(new)
    assert out.loc[:3, "nearest_train"].tolist() == train["accession"].iloc[:4].tolist()
    if shutil.which("mmseqs"):
        assert report["mmseqs"] and (out.loc[:3, "identity_to_train"] == 1.0).all()
        dropped, rep2 = overlap_with_train(ext, train, max_identity=0.95)
        assert rep2["dropped_above_max_identity"] >= 4 and not dropped["identical_to_train"].any()


def test_max_identity_without_mmseqs_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    train, _ = generate_synthetic(n_classes=2, n_per_class=5, length_min=40, length_max=50, seed=0)
    with pytest.raises(ConfigError, match="MMseqs2"):
        overlap_with_train(train.iloc[:2], train, max_identity=0.9)


def test_sequence_seed_keeps_the_motifs_and_draws_new_proteins():
    a, motifs_a = generate_synthetic(n_classes=3, n_per_class=5, length_min=40, length_max=50, seed=0)
    b, motifs_b = generate_synthetic(
        n_classes=3, n_per_class=5, length_min=40, length_max=50, seed=0, sequence_seed=1
    )
    pd.testing.assert_frame_equal(motifs_a, motifs_b)
    assert not set(a["sequence"]) & set(b["sequence"])
    # Without sequence_seed the stream is the one it always was.
    again, _ = generate_synthetic(n_classes=3, n_per_class=5, length_min=40, length_max=50, seed=0)
    pd.testing.assert_frame_equal(a, again)


def test_a_malformed_external_file_stops_config_validation_naming_it(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Entry\tSequence\nP1\tMKTAYIAKQR\n")  # no EC column
    with pytest.raises(ConfigError, match=r"evaluate\.external\.mine: .*bad\.tsv.*EC number"):
        validate_config({"evaluate": {"external": {"mine": str(bad)}}})
    with pytest.raises(ConfigError, match="does not exist"):
        validate_config({"evaluate": {"external": {"gone": str(tmp_path / "gone.tsv")}}})
    with pytest.raises(ConfigError, match="needs data.source synthetic"):
        validate_config({"data": {"source": "tsv", "tsv": str(_tsv(tmp_path / "d.tsv", ROWS))},
                         "evaluate": {"external": {"s": "synthetic"}}})  # fmt: skip
    good = _tsv(tmp_path / "good.tsv", ROWS)
    assert external_set_problems({"good": str(good)}, "synthetic") == []
    assert validate_config({"evaluate": {"external": {"good": str(good)}}})["evaluate"]["external"]


def test_claims_get_rows_per_external_set(tmp_path):
    from kneurons.jobs.claims import run_claims
    from kneurons.tables import read_claims, write_stats_tables

    def gap(rows):
        return pd.DataFrame(
            [{"method": m, "scope": "global", "scope_name": "all", "mode": mode, "auc_gap": g, "ci_lo": lo,
              "ci_hi": hi, "p_value": 0.01} for m, mode, g, lo, hi in rows]
        )  # fmt: skip

    train_gap = gap([("ig", "preserve", 0.2, 0.1, 0.3)])
    ext_gap = gap([("ig", "preserve", 0.0, -0.1, 0.1), ("ig", "suppress", -0.2, -0.3, -0.1)])
    dens = pd.DataFrame(
        [{"method": "ig", "seed": pd.NA, "level": "module_type", "layer": pd.NA, "module": "k_proj",
          "n_neurons": 10, "n_total": 60, "n_top": 6, "count": 1, "enrichment": 1.0, "p_enriched": 0.6,
          "q_enriched": 0.6}]
    )  # fmt: skip
    paths = {"random_gap": tmp_path / "g.tsv", "density": tmp_path / "d.tsv"}
    write_stats_tables({"random_gap": train_gap, "density": dens}, paths)
    ext = tmp_path / "ext_gap.tsv"
    write_stats_tables({"random_gap": ext_gap}, {"random_gap": ext})
    settings = {
        "stats": {"confidence": 0.95, "top_fraction": 0.1,
                  "claims": {"auc_margin": 0.01, "log2_enrichment_margin": 0.1, "specificity_margin": 0.02}},
        "replicates": 2, "external": ["new"],
    }  # fmt: skip
    run_claims(
        {**{k: str(v) for k, v in paths.items()}, "external": [str(ext)]}, settings, tmp_path / "c.tsv"
    )
    claims = read_claims(tmp_path / "c.tsv")
    rows = claims[claims["set"] == "new"]
    assert sorted(rows["claim"]) == ["2", "4"]
    assert dict(zip(rows["claim"], rows["verdict"], strict=True)) == {"2": "inconclusive", "4": "supported"}
    assert set(claims["n_replicates"]) == {"2"}
