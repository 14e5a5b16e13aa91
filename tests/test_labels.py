"""EC label extraction: every policy, the class table, the report, and the real-data facts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kneurons.data.ec import parse_ec, parse_ec_list, read_enzclass
from kneurons.data.labels import extract_labels, label_proteins
from kneurons.data.local import read_uniprot_tsv
from kneurons.data.policies import NON_ENZYME
from kneurons.data.synthetic import generate_synthetic
from kneurons.errors import InputError
from kneurons.schema import with_defaults

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SEQ = "MKTAYIAKQR"  # a valid 10-residue sequence


def table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["accession", "ec", "sequence"])


def seq(i: int) -> str:
    """Distinct valid sequences (``i`` written in base 20), so duplicates stay out of the way."""
    alphabet = "ACDEFGHIKLMNPQRSTVWY"
    digits = "".join(alphabet[(i // 20**k) % 20] for k in range(3))
    return "MKT" + digits + "LLV"


def cfg(**kw) -> dict:
    return {"min_class_size": 1, **kw}


def labels_of(df: pd.DataFrame) -> dict[str, str]:
    return dict(zip(df["accession"], df["label"], strict=False))


def step(report: dict, name: str) -> dict:
    return next(s for s in report["steps"] if s["step"] == name)


# -- EC parsing ---------------------------------------------------------------------------------
def test_parse_ec_kinds_and_prefix():
    e = parse_ec("3.4.21.5")
    assert (e.incomplete, e.preliminary, e.prefix(2), e.prefix(4)) == (False, False, "3.4", "3.4.21.5")
    inc = parse_ec("3.4.-.-")
    assert inc.incomplete and inc.prefix(2) == "3.4" and inc.prefix(3) is None
    pre = parse_ec("4.2.2.n1")
    assert pre.preliminary and pre.prefix(3) == "4.2.2" and pre.prefix(4) is None
    assert [str(x) for x in parse_ec_list("1.1.1.1; 2.7.11.1")] == ["1.1.1.1", "2.7.11.1"]
    assert parse_ec_list("") == [] and parse_ec_list(None) == []


@pytest.mark.parametrize("bad", ["1.1.1", "8.1.1.1", "1.1.x.1", "3.-.1.1", "1.1.1.1.1", "EC", "abc"])
def test_parse_ec_rejects(bad):
    with pytest.raises(ValueError, match="invalid EC number"):
        parse_ec(bad)


# -- levels and names ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "level,expected",
    [(1, ["1", "2"]), (2, ["1.1", "2.7"]), (3, ["1.1.1", "2.7.11"]), (4, ["1.1.1.1", "2.7.11.1"])],
)
def test_label_levels(level, expected):
    df = table([("A1", "1.1.1.1", seq(1)), ("A2", "2.7.11.1", seq(2))])
    out, classes, _ = extract_labels(df, cfg(level=level))
    assert out["label"].tolist() == expected
    assert classes["label"].tolist() == expected
    assert classes["label_index"].tolist() == [0, 1]


def test_classes_sorted_with_names_from_enzclass(tmp_path):
    enzclass = tmp_path / "enzclass.txt"
    enzclass.write_text(
        "Description: ENZYME class hierarchy\n\n"
        "1. -. -.-  Oxidoreductases.\n"
        "1. 1. -.-   Acting on the CH-OH group of donors.\n"
        "1. 1. 1.-    With NAD(+) or NADP(+) as acceptor.\n"
        "3. -. -.-  Hydrolases.\n"
        "3. 4. -.-   Acting on peptide bonds (peptidases).\n"
        "3. 4.21.-    Serine endopeptidases.\n"
    )
    names = read_enzclass(str(enzclass))
    assert names["3.4.21"] == "Serine endopeptidases" and names["1"] == "Oxidoreductases"
    df = table([("B", "3.4.21.5", seq(1)), ("A", "1.1.1.1", seq(2)), ("C", "3.4.21.4", seq(3))])
    _, classes, _ = extract_labels(df, cfg(level=3), enzclass=str(enzclass))
    assert classes.to_dict("list") == {
        "label_index": [0, 1],
        "label": ["1.1.1", "3.4.21"],
        "name": ["With NAD(+) or NADP(+) as acceptor", "Serine endopeptidases"],
        "n": [1, 2],
    }
    # Level-1 names are known without enzclass.txt; deeper ones are then empty.
    _, c1, _ = extract_labels(df, cfg(level=1))
    assert c1["name"].tolist() == ["Oxidoreductases", "Hydrolases"]
    _, c2, _ = extract_labels(df, cfg(level=2))
    assert c2["name"].tolist() == ["", ""]


def test_label_order_is_sorted_string_order():
    df = table([("A", "1.10.3.2", seq(1)), ("B", "1.2.1.3", seq(2)), ("C", "1.1.1.1", seq(3))])
    out, classes, _ = extract_labels(df, cfg(level=2))
    assert classes["label"].tolist() == sorted(["1.10", "1.2", "1.1"])
    assert classes.set_index("label")["label_index"][out["label"]].tolist() == [1, 2, 0]


# -- policies -----------------------------------------------------------------------------------
MULTI = table(
    [
        ("S1", "1.1.1.1", seq(1)),
        ("S2", "2.7.1.1", seq(2)),
        ("AG", "1.1.1.1; 1.2.1.3", seq(3)),  # agree at level 1, not at level 2
        ("DIS", "2.7.1.1; 3.1.1.1", seq(4)),  # disagree at level 1
    ]
)


def test_multi_ec_drop():
    out, _, rep = extract_labels(MULTI, cfg(multi_ec="drop"))
    assert labels_of(out) == {"S1": "1", "S2": "2"}
    assert step(rep, "multi_ec")["dropped"] == 2 and rep["input"]["multi_ec_proteins"] == 2


def test_multi_ec_first():
    out, _, rep = extract_labels(MULTI, cfg(multi_ec="first"))
    assert labels_of(out) == {"S1": "1", "S2": "2", "AG": "1", "DIS": "2"}
    assert step(rep, "multi_ec")["kept"] == 2 and step(rep, "multi_ec")["dropped"] == 0
    assert out.set_index("accession").loc["DIS", "ec"] == "2.7.1.1; 3.1.1.1"  # annotation kept


def test_multi_ec_agree_depends_on_level():
    out, _, rep = extract_labels(MULTI, cfg(multi_ec="agree", level=1))
    assert labels_of(out) == {"S1": "1", "S2": "2", "AG": "1"}
    assert step(rep, "multi_ec")["dropped"] == 1
    out2, _, _ = extract_labels(MULTI, cfg(multi_ec="agree", level=2))
    assert "AG" not in set(out2["accession"])


def test_multi_ec_agree_counts_every_number_that_states_the_level_and_is_the_default():
    """A preliminary number the policies keep from labelling is still an activity of its class
    (``2.5.1.27; 3.2.2.n1`` is a transferase and a hydrolase); one that leaves the level undefined
    (``3.-.-.-`` at level 2) states nothing there."""
    df = table(
        [
            ("S1", "1.1.1.1", seq(1)),
            ("S2", "2.7.1.1", seq(2)),
            ("PRE", "2.5.1.27; 3.2.2.n1", seq(3)),
            ("PRE_SAME", "2.5.1.27; 2.4.2.n1", seq(4)),
            ("INC", "3.4.21.5; 3.-.-.-", seq(5)),
        ]
    )
    out, _, rep = extract_labels(df, cfg(multi_ec="agree", preliminary="drop"))
    assert labels_of(out) == {"S1": "1", "S2": "2", "PRE_SAME": "2", "INC": "3"}
    assert step(rep, "multi_ec")["dropped"] == 1 and step(rep, "multi_ec")["kept"] == 2
    out2, _, _ = extract_labels(df, cfg(multi_ec="agree", level=2, incomplete="keep"))
    assert labels_of(out2)["INC"] == "3.4"  # 3.-.-.- does not state a level-2 class
    assert with_defaults("labels", {})["multi_ec"] == "agree"


INCOMPLETE = table([("C1", "3.4.21.5", seq(1)), ("C2", "1.1.1.1", seq(2)), ("I", "3.4.-.-", seq(3))])


def test_incomplete_keep_where_defined():
    out, _, rep = extract_labels(INCOMPLETE, cfg(incomplete="keep", level=2))
    assert labels_of(out)["I"] == "3.4"
    out3, _, rep3 = extract_labels(INCOMPLETE, cfg(incomplete="keep", level=3))
    assert "I" not in set(out3["accession"])
    assert step(rep3, "incomplete")["dropped"] == 1 and step(rep3, "incomplete")["numbers_discarded"] == 1
    assert rep["input"]["incomplete_numbers"] == 1


def test_incomplete_drop():
    out, _, rep = extract_labels(INCOMPLETE, cfg(incomplete="drop", level=1))
    assert set(out["accession"]) == {"C1", "C2"}
    assert step(rep, "incomplete")["dropped"] == 1


PRELIM = table([("C1", "4.2.2.2", seq(1)), ("C2", "1.1.1.1", seq(2)), ("P", "4.2.2.n1", seq(3))])


@pytest.mark.parametrize(
    "policy,level,kept", [("drop", 1, False), ("keep", 3, True), ("keep", 4, False), ("keep", 1, True)]
)
def test_preliminary(policy, level, kept):
    out, _, rep = extract_labels(PRELIM, cfg(preliminary=policy, level=level))
    assert ("P" in set(out["accession"])) == kept
    assert step(rep, "preliminary")["dropped"] == (0 if kept else 1)
    assert rep["input"]["preliminary_numbers"] == 1
    if kept:
        assert labels_of(out)["P"] == {1: "4", 3: "4.2.2"}[level]


def test_preliminary_number_discarded_but_protein_kept_with_first():
    df = table([("M", "4.2.2.n1; 1.1.1.1", seq(1)), ("C", "2.1.1.1", seq(2))])
    out, _, rep = extract_labels(df, cfg(preliminary="drop", multi_ec="first"))
    assert labels_of(out) == {"M": "1", "C": "2"}
    assert step(rep, "preliminary")["numbers_discarded"] == 1 and step(rep, "preliminary")["dropped"] == 0


NON = table([("E1", "1.1.1.1", seq(1)), ("E2", "2.1.1.1", seq(2)), ("N1", "", seq(3)), ("N2", "", seq(4))])


def test_non_enzymes_drop_and_class():
    out, _, rep = extract_labels(NON, cfg(non_enzymes="drop"))
    assert set(out["accession"]) == {"E1", "E2"} and step(rep, "non_enzymes")["dropped"] == 2
    out, classes, rep = extract_labels(NON, cfg(non_enzymes="class"))
    assert labels_of(out)["N1"] == NON_ENZYME and classes["label"].tolist() == ["1", "2", NON_ENZYME]
    assert classes.set_index("label").loc[NON_ENZYME, "name"] == "Non-enzyme"
    assert step(rep, "non_enzymes") == {
        "step": "non_enzymes",
        "policy": "class",
        "dropped": 0,
        "remaining": 4,
        "affected": 2,
    }


def test_min_class_size():
    df = table(
        [(f"A{i}", "1.1.1.1", seq(i)) for i in range(5)]
        + [(f"B{i}", "2.1.1.1", seq(10 + i)) for i in range(5)]
    )
    df = pd.concat([df, table([("C0", "3.1.1.1", seq(30)), ("C1", "3.1.1.2", seq(31))])])
    out, classes, rep = extract_labels(df, {"min_class_size": 3})
    assert classes["label"].tolist() == ["1", "2"] and len(out) == 10
    assert step(rep, "min_class_size")["classes_dropped"] == {"3": 2}


def test_long_sequences_crop_and_drop():
    df = table([("L", "1.1.1.1", "M" + "A" * 29), ("S", "2.1.1.1", "MKV"), ("S2", "1.1.1.2", "MKW")])
    out, _, rep = extract_labels(df, cfg(max_length=10, long_sequences="crop"))
    assert out.set_index("accession").loc["L", "sequence"] == "M" + "A" * 9
    assert step(rep, "long_sequences")["cropped"] == 1 and len(out) == 3
    out, _, rep = extract_labels(df, cfg(max_length=10, long_sequences="drop"))
    assert "L" not in set(out["accession"]) and step(rep, "long_sequences")["dropped"] == 1


def test_nonstandard_policies():
    df = table([("U", "1.1.1.1", "MKUAZX"), ("X", "1.1.1.2", "MKXXA"), ("S", "2.1.1.1", "MKVLA")])
    # drop removes both sequences with U/O/B/Z/X (here leaving one class) ...
    with pytest.raises(InputError, match="only 1 class"):
        extract_labels(df, cfg(nonstandard="drop"))
    df2 = pd.concat([df, table([("T", "1.2.1.1", "MKLLA")])])
    out, _, rep = extract_labels(df2, cfg(nonstandard="drop"))
    assert set(out["accession"]) == {"S", "T"} and step(rep, "nonstandard")["dropped"] == 2
    # ... to_x maps U/O/B/Z to X and keeps them ...
    out, _, rep = extract_labels(df, cfg(nonstandard="to_x"))
    assert out.set_index("accession").loc["U", "sequence"] == "MKXAXX"
    assert step(rep, "nonstandard")["affected"] == 2 and step(rep, "nonstandard")["dropped"] == 0
    # ... keep leaves them as they are.
    out, _, _ = extract_labels(df, cfg(nonstandard="keep"))
    assert out.set_index("accession").loc["U", "sequence"] == "MKUAZX"


DUP = table(
    [
        ("A1", "1.1.1.1", "MKVLAAA"),
        ("A2", "1.2.1.1", "MKVLAAA"),  # same sequence, same level-1 label
        ("B1", "2.1.1.1", "MKWWWWW"),
        ("B2", "3.1.1.1", "MKWWWWW"),  # same sequence, different label
        ("C", "2.1.1.1", "MCCCCCC"),
        ("D", "3.1.1.1", "MDDDDDD"),
    ]
)


def test_duplicates_drop():
    out, _, rep = extract_labels(DUP, cfg(duplicates="drop"))
    assert set(out["accession"]) == {"A1", "C", "D"}
    assert step(rep, "duplicates") == {
        "step": "duplicates",
        "policy": "drop",
        "dropped": 3,
        "remaining": 3,
        "groups": 2,
        "proteins_in_groups": 4,
        "conflicting_groups": 1,
    }


def test_duplicates_keep_first_and_keep():
    out, _, _ = extract_labels(DUP, cfg(duplicates="keep_first"))
    assert set(out["accession"]) == {"A1", "B1", "C", "D"}
    out, _, rep = extract_labels(DUP, cfg(duplicates="keep"))
    assert len(out) == 6 and step(rep, "duplicates")["groups"] == 2


def test_report_steps_add_up_and_output_matches():
    df = pd.concat([MULTI, NON.iloc[2:], PRELIM.iloc[2:]])
    out, classes, rep = extract_labels(df, cfg())
    n = rep["input"]["proteins"]
    for s in rep["steps"]:
        assert s["remaining"] == n - s["dropped"]
        n = s["remaining"]
    assert n == len(out) == rep["output"]["proteins"] == classes["n"].sum()
    assert rep["output"]["class_counts"] == dict(zip(classes["label"], classes["n"], strict=False))


def test_carried_columns_and_no_mutation():
    proteins, _ = generate_synthetic(n_classes=3, n_per_class=12, length_min=40, length_max=50, seed=1)
    before = proteins.copy()
    out, classes, rep = extract_labels(proteins, {"level": 1})
    pd.testing.assert_frame_equal(proteins, before)
    assert list(out.columns[:4]) == ["accession", "sequence", "ec", "label"]
    assert {"protein_name", "organism", "motif_sites"} <= set(out.columns)
    assert classes["n"].tolist() == [12, 12, 12] and rep["output"]["classes"] == 3
    assert out["label"].tolist() == [ec.split(".")[0] for ec in out["ec"]]


def test_all_filtered_out_is_an_error():
    df = table([("A", "1.1.1.1; 2.1.1.1", seq(1)), ("B", "", seq(2))])
    with pytest.raises(InputError, match="no protein left") as exc:
        extract_labels(df, cfg(multi_ec="drop"))
    assert "multi_ec: -1" in str(exc.value) and "non_enzymes: -1" in str(exc.value)


# -- real data: the facts in ../shared/data/README.md -------------------------------------------
@pytest.fixture(scope="module")
def real_proteins():
    path = SHARED / "uniprot_reviewed_sample.tsv"
    if not path.exists():
        pytest.skip(f"real data not available at {path} (shared/data is not part of a user's clone)")
    return read_uniprot_tsv(path)


def test_real_sample_report_matches_data_readme(real_proteins):
    enzclass = SHARED / "enzclass.txt"
    out, classes, rep = extract_labels(
        real_proteins, {"level": 1}, str(enzclass) if enzclass.exists() else None
    )
    inp = rep["input"]
    assert inp["proteins"] == 8450 and inp["enzymes"] == 7757 and inp["non_enzymes"] == 693
    assert inp["ec_level1_numbers"] == {
        "1": 1151,
        "2": 3290,
        "3": 2516,
        "4": 603,
        "5": 353,
        "6": 259,
        "7": 187,
    }
    assert inp["multi_ec_proteins"] == 510
    assert inp["preliminary_numbers"] == 68
    assert inp["length"]["min"] == 4 and inp["length"]["max"] == 2641
    assert classes["label"].tolist() == list("1234567")
    assert classes["name"].tolist()[:3] == ["Oxidoreductases", "Transferases", "Hydrolases"]
    # Default policies drop non-enzymes first, and the multi-EC proteins whose numbers disagree at
    # level 1 (multi_ec: agree).
    assert step(rep, "non_enzymes")["dropped"] == 693
    assert step(rep, "multi_ec")["dropped"] == 172 and step(rep, "multi_ec")["kept"] == 337
    assert len(out) == rep["output"]["proteins"] == step(rep, "min_class_size")["remaining"]


def test_multi_ec_agree_on_the_real_sample_matches_a_count_by_hand(real_proteins):
    """510 enzymes of the sample have several EC numbers. Counted from the raw export (pandas, the
    first field of each number): 338 state one level-1 class, 172 two or more. ``agree`` keeps the 338
    but one (Q5ZSQ3, 2.7.7.n1; 2.7.7.n6: no number complete, so preliminary: drop leaves it no
    label); a preliminary number counts as an activity (K3VH30, 2.5.1.27; 3.2.2.n1, leaves)."""
    raw = pd.read_csv(SHARED / "uniprot_reviewed_sample.tsv", sep="\t", dtype=str, keep_default_na=False)
    multi = raw[raw["EC number"].str.contains(";")]
    classes = [{n.strip().split(".")[0] for n in ec.split(";")} for ec in multi["EC number"]]
    agreeing = multi[[len(c) == 1 for c in classes]]
    assert (len(multi), len(agreeing)) == (510, 338)
    result = label_proteins(real_proteins, {"level": 1, "multi_ec": "agree"})
    by_step = result.dropped.groupby("step")["accession"].apply(set)
    assert by_step["multi_ec"] == set(multi["Entry"]) - set(agreeing["Entry"])
    assert {"K3VH30", "P9WJW2"} <= by_step["multi_ec"]  # 2.1.1.n11; 3.2.2.21 disagree too
    assert "Q5ZSQ3" in by_step["preliminary"]
    assert step(result.report, "multi_ec")["kept"] == len(agreeing) - 1
    drop, _, rep_drop = extract_labels(real_proteins, {"level": 1, "multi_ec": "drop"})
    assert step(rep_drop, "multi_ec")["dropped"] == 510 and not set(drop["accession"]) & set(multi["Entry"])
