"""External test sets: reading (TSV, CSV, FASTA), labels against the model's classes, overlap with
training, config validation before any model work, and the claims rows per set."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kneurons.config import validate_config
from kneurons.data.external import external_set_problems, label_external, overlap_with_train, read_external
from kneurons.data.local import DELIMITER_RULE
from kneurons.data.synthetic import generate_synthetic
from kneurons.errors import ConfigError, InputError

LABELS_CFG = validate_config({})["labels"]
MODEL_LABELS = ["1", "2", "3", "4"]


def _tsv(path, rows):
    path.write_text("Entry\tEC number\tSequence\n" + "".join(f"{a}\t{e}\t{s}\n" for a, e, s in rows))
    return path


REPO = Path(__file__).resolve().parents[1]
ROWS = [
    ("P1", "1.1.1.1", "MKTAYIAKQRQISFVKSHFSRQ"),
    ("P2", "2.7.1.1", "MSTNPKPQRKTKRNTNRRPQDV"),
    ("P3", "7.1.1.1", "MKVLAAGIVGLLLAAPAQAAEE"),
]


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
    kept, report, dropped = label_external("a", proteins, LABELS_CFG, MODEL_LABELS, "a.tsv")
    assert list(kept["label"]) == ["1", "2"]
    assert report["unknown_class"] == {"7": 1} and report["kept"] == 2
    why = "class 7 is not one of the model's (1, 2, 3, 4)"
    assert dropped.to_dict("records") == [
        {"accession": "P3", "step": "model_classes", "policy": "drop", "detail": why}
    ]
    # One class is a valid external set (a classifier's two-class minimum does not apply).
    one, _, _ = label_external("b", proteins.iloc[:1], LABELS_CFG, MODEL_LABELS, "b.tsv")
    assert list(one["label"]) == ["1"]
    with pytest.raises(InputError, match="none of its 1 labelled proteins"):
        label_external("c", proteins.iloc[2:], LABELS_CFG, MODEL_LABELS, "c.tsv")


def _labelled(proteins: pd.DataFrame) -> pd.DataFrame:
    """Proteins with their level-1 label (the EC number's class)."""
    return proteins.assign(label=proteins["ec"].str.split(".").str[0])


def test_a_set_built_from_training_proteins_is_flagged(tmp_path):
    train, _ = generate_synthetic(n_classes=2, n_per_class=10, length_min=40, length_max=50, seed=0)
    train = _labelled(train)
    new, _ = generate_synthetic(
        n_classes=2,
        n_per_class=5,
        length_min=40,
        length_max=50,
        seed=0,
        sequence_seed=3,
        accession_prefix="EXT",
    )
    ext = pd.concat([train.iloc[:4], _labelled(new)], ignore_index=True)
    out, report, _ = overlap_with_train(ext, train)
    assert report["identical_to_train"] == 4 and report["label_conflict"] == 0
    assert out["identical_to_train"].tolist() == [True] * 4 + [False] * len(new)
    assert out.loc[:3, "nearest_train"].tolist() == train["accession"].iloc[:4].tolist()
    if shutil.which("mmseqs"):
        assert report["mmseqs"] and (out.loc[:3, "identity_to_train"] == 1.0).all()
        kept, rep2, gone = overlap_with_train(ext, train, max_identity=0.95)
        assert rep2["dropped_above_max_identity"] == len(gone) >= 4 and not kept["identical_to_train"].any()
        assert set(gone["step"]) == {"max_identity"} and set(train["accession"][:4]) <= set(gone["accession"])


def test_max_identity_without_mmseqs_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    train, _ = generate_synthetic(n_classes=2, n_per_class=5, length_min=40, length_max=50, seed=0)
    train = _labelled(train)
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
        validate_config(
            {
                "data": {"source": "tsv", "tsv": str(_tsv(tmp_path / "d.tsv", ROWS))},
                "evaluate": {"external": {"s": "synthetic"}},
            }
        )
    good = _tsv(tmp_path / "good.tsv", ROWS)
    assert external_set_problems({"good": str(good)}, "synthetic") == []
    assert validate_config({"evaluate": {"external": {"good": str(good)}}})["evaluate"]["external"]


def test_a_missing_external_file_is_named_once_with_the_path_it_was_looked_for_at(tmp_path, monkeypatch):
    """The key once, the path as written, and where a relative path was looked for (the working
    directory): ``evaluate.external.x: nope.csv does not exist (... looked for /abs/nope.csv)``."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        validate_config({"evaluate": {"external": {"x": "nope.csv"}}})
    line = next(li.strip() for li in str(err.value).splitlines() if "nope.csv" in li)
    assert line == (
        "evaluate.external.x: nope.csv does not exist (a relative path is relative to the working "
        f"directory; looked for {tmp_path.resolve() / 'nope.csv'})"
    )
    absolute = tmp_path / "gone.csv"
    problems = external_set_problems({"y": str(absolute)}, "tsv")
    assert problems == [f"evaluate.external.y: {absolute} does not exist"]
    assert external_set_problems({"z": str(tmp_path)}, "tsv") == [
        f"evaluate.external.z: {tmp_path} is a directory, not a file"
    ]


def test_claims_get_rows_per_external_set(tmp_path):
    from kneurons.jobs.claims import run_claims
    from kneurons.tables import read_claims, write_json_result, write_stats_tables

    def gap(rows):
        return pd.DataFrame(
            [
                {
                    "method": m,
                    "scope": "global",
                    "scope_name": "all",
                    "mode": mode,
                    "auc_gap": g,
                    "ci_lo": lo,
                    "ci_hi": hi,
                    "p_value": 0.01,
                }
                for m, mode, g, lo, hi in rows
            ]
        )

    train_gap = gap([("ig", "preserve", 0.2, 0.1, 0.3)])
    ext_gap = gap([("ig", "preserve", 0.0, -0.1, 0.1), ("ig", "suppress", -0.2, -0.3, -0.1)])
    dens = pd.DataFrame(
        [
            {
                "method": "ig",
                "seed": pd.NA,
                "level": "module_type",
                "layer": pd.NA,
                "module": "k_proj",
                "n_neurons": 10,
                "n_total": 60,
                "n_top": 6,
                "count": 1,
                "enrichment": 1.0,
                "p_enriched": 0.6,
                "q_enriched": 0.6,
            }
        ]
    )
    paths = {"random_gap": tmp_path / "g.tsv", "density": tmp_path / "d.tsv"}
    write_stats_tables({"random_gap": train_gap, "density": dens}, paths)
    ext = tmp_path / "ext_gap.tsv"
    write_stats_tables({"random_gap": ext_gap}, {"random_gap": ext})
    settings = {
        "stats": {
            "confidence": 0.95,
            "top_fraction": 0.1,
            "claims": {"auc_margin": 0.01, "log2_enrichment_margin": 0.1, "specificity_margin": 0.02},
        },
        "replicates": 2,
        "external": ["new"],
    }
    # the intact model beats the majority-class baseline on both sets (the baseline rule passes):
    # on the test split's evaluated proteins (each replicate's ablation predictions), and on the set's
    from kneurons.tables import AblationResult, save_predictions

    good = {"n": 100, "accuracy": 0.9, "majority_baseline": 0.25, "macro_f1": 0.9}
    y = np.arange(100) % 4
    table = pd.DataFrame(
        {"method": ["ig"], "scope": ["global"], "scope_name": ["global"], "mode": ["preserve"], "f": [1.0]}
    ).assign(seed=pd.array([pd.NA], dtype="Int64"))
    intact = [tmp_path / "p0.npz", tmp_path / "p1.npz"]
    for path in intact:
        result = AblationResult(table, y[None, :], y, y, np.array([f"P{i}" for i in range(100)]), 0.0)
        save_predictions(path, result)
    write_json_result(tmp_path / "ext_metrics.json", good)
    inputs = {k: str(v) for k, v in paths.items()} | {"intact": [str(p) for p in intact]}
    inputs |= {"external": [str(ext)], "external_metrics": [str(tmp_path / "ext_metrics.json")]}
    run_claims(inputs, settings, tmp_path / "c.tsv")
    claims = read_claims(tmp_path / "c.tsv")
    rows = claims[claims["set"] == "new"]
    assert sorted(rows["claim"]) == ["2", "4"]
    assert dict(zip(rows["claim"], rows["verdict"], strict=True)) == {"2": "inconclusive", "4": "supported"}
    assert set(claims["n_replicates"]) == {"2"}
    # each row cites the table it came from: an external set's own gap to random
    assert set(rows["source"]) == {"external/new/random_gap.tsv"}
    assert set(claims.loc[claims["set"] == "test", "source"]) == {"stats/random_gap.tsv", "stats/density.tsv"}


def test_a_tab_separated_file_named_csv_reads_and_a_bad_header_shows_its_separators(tmp_path):
    """CLEAN's New-392 and Price-149 ship tab-separated files named .csv: the delimiter comes from the
    header line, not the name. A header that fails still says which delimiter was used and shows
    the line with its separators visible."""
    tab_csv = _tsv(tmp_path / "new392.csv", ROWS)
    assert read_external("new392", tab_csv)["accession"].tolist() == ["P1", "P2", "P3"]
    comma_tsv = tmp_path / "comma.tsv"
    comma_tsv.write_text("Entry,EC number,Sequence\n" + "".join(f"{a},{e},{s}\n" for a, e, s in ROWS))
    assert read_external("comma", comma_tsv)["accession"].tolist() == ["P1", "P2", "P3"]
    semicolon = tmp_path / "semi.csv"
    semicolon.write_text("Entry;EC number;Sequence\nP1;1.1.1.1;MKV\n")
    with pytest.raises(InputError) as err:
        read_external("semi", semicolon)
    # the rule that chose the delimiter (the one docs/data.md states), and why ';' was not used
    message = str(err.value)
    assert message.startswith("evaluate.external.semi: ") and message.count("evaluate.external") == 1
    assert f"read as tab-separated (sniffed from the header line: {DELIMITER_RULE})" in message
    assert "holds a semicolon (';'), not read as a delimiter" in message
    assert message.endswith("'Entry;EC number;Sequence'")
    docs = " ".join((REPO / "docs" / "data.md").read_text().split())
    assert DELIMITER_RULE in docs
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("Entry\tEC_number\tSequence\nP1\t1.1.1.1\tMKV\n")
    with pytest.raises(InputError, match=r"read as tab-separated .*'Entry\\tEC_number\\tSequence'"):
        read_external("mixed", mixed)


# -- the external set's job: full-length overlap, label conflicts, what was dropped and why ----------
def _sequence(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), n))


def _external_run(tmp_path: Path, max_length: int = 30) -> tuple[dict, dict]:
    """A run's data tables (three training proteins; the split crops them to ``max_length``, as the
    labels stage does) and an external set, a tab-separated file named .csv as CLEAN ships them:

    E1 shares T1's first ``max_length`` residues, then differs, and is of another class (the model
    reads T1's input with another label: issue 38's P0DXF1 and P20703); E2 is T2 exactly but of
    another class; E3 and E4 share their first ``max_length`` residues only; E5 is of a class the
    model lacks; E6 has two EC numbers of two classes (``multi_ec``); E7 is T3 exactly (shorter than
    the crop).
    """
    from kneurons.data.labels import label_proteins
    from kneurons.tables import write_classes, write_proteins, write_split

    rng = np.random.default_rng(4)
    t1, t2, t3 = _sequence(rng, 50), _sequence(rng, 40), _sequence(rng, 25)
    train = pd.DataFrame(
        {"accession": ["T1", "T2", "T3"], "ec": ["1.1.1.1", "2.7.1.1", "1.2.3.4"], "sequence": [t1, t2, t3]}
    )
    labels_cfg = {**LABELS_CFG, "max_length": max_length, "min_class_size": 1}
    result = label_proteins(train, labels_cfg)
    paths = {k: tmp_path / f"{k}.tsv" for k in ("proteins", "split", "classes")}
    write_proteins(train, paths["proteins"])
    write_split(result.labels.assign(split="train"), paths["split"])
    write_classes(result.classes, paths["classes"])
    shared = _sequence(rng, max_length)
    rows = [
        ("E1", "2.7.1.9", t1[:max_length] + _sequence(rng, 18)),
        ("E2", "1.3.1.1", t2),
        ("E3", "2.7.1.2", shared + _sequence(rng, 12)),
        ("E4", "2.7.1.3", shared + _sequence(rng, 14)),
        ("E5", "7.1.1.1", _sequence(rng, 33)),
        ("E6", "1.1.1.1; 2.7.1.1", _sequence(rng, 31)),
        ("E7", "1.1.1.9", t3),
    ]
    paths["external"] = _tsv(tmp_path / "new392.csv", rows)
    settings = {
        "labels": {k: v for k, v in labels_cfg.items() if k != "min_class_size"},
        "max_identity": None,
        "mmseqs": {"executable": "mmseqs", "coverage": 0.8, "cov_mode": 0},
    }
    return paths, settings


def _run_external_set(paths: dict, settings: dict, tmp_path: Path) -> dict:
    from kneurons.jobs.external import run_external_set

    out = {
        k: tmp_path / "out" / f"{k}.{e}"
        for k, e in (("proteins", "tsv"), ("dropped", "tsv"), ("report", "json"))
    }
    run_external_set(
        "new392", paths["external"], paths["split"], paths["classes"], paths["proteins"], settings, out
    )
    return out


def test_overlap_with_training_is_measured_on_full_length_sequences(tmp_path, caplog):
    """Duplicates, identity and identical_to_train compare full-length sequences (cropped ones made
    E1 a copy of T1 and E3/E4 one protein); a protein identical to a training protein of another
    class is flagged (label_conflict) and counted; every dropped protein is listed with its reason
    in dropped.tsv (data/dropped.tsv's columns) and the log line says why proteins were dropped."""
    from kneurons.tables import read_dropped, read_external_proteins, read_json

    paths, settings = _external_run(tmp_path)
    with caplog.at_level("INFO", logger="kneurons.jobs.external"):
        out = _run_external_set(paths, settings, tmp_path)
    ext = read_external_proteins(out["proteins"]).set_index("accession")
    assert ext.index.tolist() == ["E1", "E2", "E3", "E4", "E7"]
    assert (ext["sequence"].str.len() <= 30).all()  # cropped for the model
    assert ext.index[ext["identical_to_train"] == "True"].tolist() == ["E2", "E7"]
    assert ext.index[ext["label_conflict"] == "True"].tolist() == ["E2"]
    assert ext.loc[["E2", "E7"], "nearest_train"].tolist() == ["T2", "T3"]
    # what the model reads: E1's first 30 residues are T1's, whose label is another
    assert ext.index[ext["identical_input_to_train"] == "True"].tolist() == ["E1", "E2", "E7"]
    assert ext.index[ext["input_label_conflict"] == "True"].tolist() == ["E1", "E2"]
    report = read_json(out["report"], "external report")
    assert report["overlap_with_train"]["identical_to_train"] == 2
    assert report["overlap_with_train"]["label_conflict"] == 1
    assert report["overlap_with_train"]["identical_input_to_train"] == 3
    assert report["overlap_with_train"]["input_label_conflict"] == 2
    assert report["dropped"] == {"model_classes": 1, "multi_ec": 1} and report["evaluated"] == 5
    duplicates = next(s for s in report["policy_steps"] if s["step"] == "duplicates")
    assert duplicates["groups"] == 0
    dropped = read_dropped(out["dropped"])
    assert dropped[["accession", "step"]].values.tolist() == [["E6", "multi_ec"], ["E5", "model_classes"]]
    assert "class 7 is not one of the model's (1, 2)" in dropped["detail"].iloc[1]
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("external set new392"))
    assert "2 dropped (1 by the label policies (multi_ec 1); 1 of classes the model lacks)" in line, line
    assert (
        "2 identical to training (1 of another label), 3 of identical model input (2 of another label)"
        in line
    )
    assert ext.loc["E1", "identical_to_train"] == "False" and ext.loc["E1", "nearest_train"] == "T1"
    if shutil.which("mmseqs"):  # identities of full-length sequences: E1 is not T1
        assert ext.loc[["E2", "E7"], "identity_to_train"].astype(float).tolist() == [1.0, 1.0]
        assert ext.loc["E1", "identity_to_train"] == "" or float(ext.loc["E1", "identity_to_train"]) < 1.0


def test_the_identity_search_uses_the_split_mmseqs_settings(tmp_path):
    """split.mmseqs's executable, coverage and cov_mode (they were hard-coded): an executable that
    records its arguments and answers with one hit stands in for MMseqs2."""
    paths, settings = _external_run(tmp_path)
    args = tmp_path / "args.txt"
    exe = tmp_path / "my-mmseqs"
    exe.write_text(
        f"#!{sys.executable}\nimport sys, pathlib\n"
        f"pathlib.Path({str(args)!r}).write_text(' '.join(sys.argv[1:]))\n"
        "pathlib.Path(sys.argv[4]).write_text('E1\\tT1\\t0.6\\t48\\t1.0\\t0.96\\n')\n"
    )
    exe.chmod(0o755)
    settings["mmseqs"] = {"executable": str(exe), "coverage": 0.5, "cov_mode": 1}
    out = _run_external_set(paths, settings, tmp_path)
    called = args.read_text()
    assert called.startswith("easy-search ") and " -c 0.5 --cov-mode 1 " in called, called
    from kneurons.tables import read_external_proteins, read_json

    ext = read_external_proteins(out["proteins"]).set_index("accession")
    assert ext.loc["E1", "identity_to_train"] == "0.6" and ext.loc["E1", "nearest_train"] == "T1"
    report = read_json(out["report"], "external report")["overlap_with_train"]
    assert (report["mmseqs"], report["coverage"], report["cov_mode"]) == (True, 0.5, 1)
    # evaluate.max_identity drops identical proteins and those of identical model input, whatever
    # the identity of their full sequences (E1: 0.6, below it)
    from kneurons.tables import read_dropped

    out = _run_external_set(paths, {**settings, "max_identity": 0.9}, tmp_path)
    dropped = read_dropped(out["dropped"]).set_index("accession")
    gone = dropped[dropped["step"] == "max_identity"]
    assert gone["detail"].to_dict() == {
        "E1": "model input identical to training protein T1's",
        "E2": "identical to training protein T2",
        "E7": "identical to training protein T3",
    }
    assert read_external_proteins(out["proteins"])["accession"].tolist() == ["E3", "E4"]
