"""Local sources: UniProt TSV export, FASTA, ExPASy enzyme.dat, BRENDA flat file, synthetic."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_annotations import COLUMN_TEXTS

from kneurons.data import PROTEIN_COLUMNS
from kneurons.data.annotations import FEATURE_COLUMNS, column_instances
from kneurons.data.brenda import brenda_proteins, protein_accessions, read_brenda
from kneurons.data.expasy import expasy_proteins, read_enzyme_dat
from kneurons.data.labels import extract_labels
from kneurons.data.local import parse_fasta_header, read_fasta, read_proteins, read_uniprot_tsv
from kneurons.tables import read_tsv_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

UNIPROT_TSV = (
    "Entry\tEntry Name\tEC number\tSequence\tLength\tProtein names\tOrganism\tActive site\tBinding site\n"
    "P07327\tADH1A_HUMAN\t1.1.1.1\tMSTAGKVIKCKAAVLWE\t17\tAlcohol dehydrogenase 1A\tHomo sapiens (Human)\t"
    'ACT_SITE 5; /note="Proton acceptor"\tBINDING 2..4; /ligand="NAD(+)"\n'
    "P00330\tADH1_YEAST\t1.1.1.1; 1.1.1.2\tMSIPETQKGVIFYESHG\t17\tAlcohol dehydrogenase 1\tSaccharomyces cerevisiae\t\t\n"  # noqa: E501
    "Q9XYZ1\tNOEC_HUMAN\t\tMKVLAAGIVGLLLAQ\t15\tSome non-enzyme\tHomo sapiens (Human)\t\t\n"
)


# -- UniProt TSV --------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
def test_uniprot_tsv_export_maps_headers(tmp_path, compress):
    path = tmp_path / ("export.tsv.gz" if compress else "export.tsv")
    if compress:
        with gzip.open(path, "wt") as fh:
            fh.write(UNIPROT_TSV)
    else:
        path.write_text(UNIPROT_TSV)
    df = read_uniprot_tsv(path)
    assert list(df.columns) == [
        *PROTEIN_COLUMNS,
        "protein_name",
        "organism",
        "length",
        "active_site",
        "binding_site",
    ]
    assert df["accession"].tolist() == ["P07327", "P00330", "Q9XYZ1"]
    assert df["ec"].tolist() == ["1.1.1.1", "1.1.1.1; 1.1.1.2", ""]
    assert df.loc[0, "active_site"] == 'ACT_SITE 5; /note="Proton acceptor"'
    assert df.loc[0, "organism"] == "Homo sapiens (Human)" and df.loc[2, "length"] == "15"
    assert "Entry Name" not in df.columns


def test_uniprot_export_with_every_feature_column_reads_each_as_written(tmp_path):
    """A website export (gzip) with the feature columns in UniProt's headers, in another order than
    the REST default's, beside a column the workflow ignores: each cell arrives unchanged in its
    column, and parses into the instances UniProt's text names (``COLUMN_TEXTS``)."""
    cols = list(reversed(FEATURE_COLUMNS))
    header = ["Entry", "Reviewed", "Sequence", "EC number", *(c.header for c in cols)]
    seq = "M" + "ACDEFGHIKLMNPQRSTVWY" * 10
    lines = ["\t".join(header)]
    lines.append(
        "\t".join(["P12345", "reviewed", seq, "1.1.1.1", *(COLUMN_TEXTS[c.column][0] for c in cols)])
    )
    lines.append("\t".join(["P12346", "reviewed", seq, "2.7.11.1", *([""] * len(cols))]))
    path = tmp_path / "uniprotkb_export.tsv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    df = read_uniprot_tsv(path)
    assert list(df.columns)[:3] == list(PROTEIN_COLUMNS) and "Reviewed" not in df.columns
    for c in FEATURE_COLUMNS:
        text, expected = COLUMN_TEXTS[c.column]
        assert df.loc[0, c.column] == text and df.loc[1, c.column] == ""
        assert column_instances(df.loc[0, c.column], c, length=len(seq)) == expected


def test_contract_named_tsv_roundtrip(tmp_path):
    df = pd.DataFrame({"accession": ["A", "B"], "ec": ["1.1.1.1", ""], "sequence": ["mkv", "MKW"]})
    df.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    back = read_proteins(tmp_path / "p.tsv")
    assert back["sequence"].tolist() == ["MKV", "MKW"] and back["ec"].tolist() == ["1.1.1.1", ""]


def test_real_uniprot_export_reads():
    path = SHARED / "uniprot_reviewed_sample.tsv"
    if not path.exists():
        pytest.skip(f"real data not available at {path}")
    df = read_uniprot_tsv(path)
    assert len(df) == 8450 and (df["ec"] != "").sum() == 7757
    assert df["sequence"].str.len().max() == 2641


# -- FASTA --------------------------------------------------------------------------------------
FASTA = """>sp|P07327|ADH1A_HUMAN Alcohol dehydrogenase 1A OS=Homo sapiens OX=9606 GN=ADH1A PE=1 SV=2 EC=1.1.1.1
MSTAGKVIKC
KAAVLWE
>P12345 EC=1.1.1.1;2.3.4.5
mkvlaa*
>tr|A0A0B4|A0A0B4_ECOLI Uncharacterized protein OS=Escherichia coli OX=562
MKWWWWW

>Q99999 some protein EC=3.4.-.-; 4.2.2.n1 source=lab
MCCCC
"""  # noqa: E501  (real UniProt FASTA header lines)


def test_fasta_header_styles():
    h = parse_fasta_header(
        "sp|P07327|ADH1A_HUMAN Alcohol dehydrogenase 1A OS=Homo sapiens OX=9606 EC=1.1.1.1"
    )
    assert h == {
        "accession": "P07327",
        "protein_name": "Alcohol dehydrogenase 1A",
        "organism": "Homo sapiens",
        "ec": "1.1.1.1",
    }
    assert parse_fasta_header("P12345 EC=1.1.1.1;2.3.4.5") == {
        "accession": "P12345",
        "ec": "1.1.1.1; 2.3.4.5",
    }
    assert parse_fasta_header("P1 EC=1.1.1.1; 2.3.4.5 OS=x")["ec"] == "1.1.1.1; 2.3.4.5"
    assert parse_fasta_header("P1 no enzyme here")["ec"] == ""


@pytest.mark.parametrize("compress", [False, True])
def test_read_fasta(tmp_path, compress):
    path = tmp_path / "x.fa"
    data = FASTA.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    df = read_proteins(path)
    assert df["accession"].tolist() == ["P07327", "P12345", "A0A0B4", "Q99999"]
    assert df["sequence"].tolist() == ["MSTAGKVIKCKAAVLWE", "MKVLAA", "MKWWWWW", "MCCCC"]
    assert df["ec"].tolist() == ["1.1.1.1", "1.1.1.1; 2.3.4.5", "", "3.4.-.-; 4.2.2.n1"]
    assert (
        df.loc[2, "organism"] == "Escherichia coli"
        and df.loc[0, "protein_name"] == "Alcohol dehydrogenase 1A"
    )
    labels, _, report = extract_labels(df, {"min_class_size": 1, "multi_ec": "first", "non_enzymes": "class"})
    assert dict(zip(labels.accession, labels.label, strict=False)) == {
        "P07327": "1",
        "P12345": "1",
        "A0A0B4": "non-enzyme",
        "Q99999": "3",
    }
    assert report["input"]["incomplete_numbers"] == 1 and report["input"]["preliminary_numbers"] == 1


# -- ExPASy enzyme.dat --------------------------------------------------------------------------
ENZYME_DAT = """CC   -----------------------------------------------------------------------
CC
CC   ENZYME nomenclature database
CC   SIB Swiss Institute of Bioinformatics; Geneva, Switzerland
CC
CC   Description: Enzyme nomenclature
CC   Name:        ENZYME
CC   Release:     05-Nov-2025
CC
CC   -----------------------------------------------------------------------
//
ID   1.1.1.1
DE   alcohol dehydrogenase.
AN   aldehyde reductase.
CA   (1) a primary alcohol + NAD(+) = an aldehyde + NADH + H(+).
CF   Zn(2+) or Fe cation.
CC   -!- Acts on primary or secondary alcohols or hemi-acetals with very broad
CC       specificity.
PR   PROSITE; PDOC00058;
DR   P07327, ADH1A_HUMAN;  P28469, ADH1A_MACMU;  P00330, ADH1_YEAST;
//
ID   1.1.1.2
DE   alcohol dehydrogenase (NADP(+)).
CA   a primary alcohol + NADP(+) = an aldehyde + NADPH + H(+).
DR   P00330, ADH1_YEAST;
//
ID   1.1.1.5
DE   Transferred entry: 1.1.1.303 and 1.1.1.304.
//
ID   3.4.21.5
DE   thrombin.
CA   Preferential cleavage: Arg-|-Gly.
DR   P00734, THRB_HUMAN;  P19221, THRB_MOUSE;
//
"""

SEQUENCES_TSV = (
    "Entry\tSequence\tOrganism\n"
    "P07327\tMSTAGKVIKC\tHomo sapiens\n"
    "P00330\tMSIPETQKGV\tSaccharomyces cerevisiae\n"
    "P00734\tMAHVRGLQLP\tHomo sapiens\n"
    "P99999\tMKKKKKKKKK\tnot in enzyme.dat\n"
)


def test_enzyme_dat_pairs(tmp_path):
    (tmp_path / "enzyme.dat").write_text(ENZYME_DAT)
    pairs, stats = read_enzyme_dat(tmp_path / "enzyme.dat")
    assert pairs == {
        "P07327": ["1.1.1.1"],
        "P28469": ["1.1.1.1"],
        "P00330": ["1.1.1.1", "1.1.1.2"],
        "P00734": ["3.4.21.5"],
        "P19221": ["3.4.21.5"],
    }
    assert stats["entries"] == 4 and stats["entries_with_dr"] == 3 and stats["release"] == "05-Nov-2025"


def test_expasy_source_joins_sequences(tmp_path):
    (tmp_path / "enzyme.dat").write_text(ENZYME_DAT)
    (tmp_path / "seqs.tsv").write_text(SEQUENCES_TSV)
    df, meta = expasy_proteins(tmp_path / "enzyme.dat", tmp_path / "seqs.tsv")
    assert df.set_index("accession")["ec"].to_dict() == {
        "P07327": "1.1.1.1",
        "P00330": "1.1.1.1; 1.1.1.2",
        "P00734": "3.4.21.5",
    }
    assert df.set_index("accession").loc["P00734", "sequence"] == "MAHVRGLQLP"
    assert df.set_index("accession").loc["P00330", "organism"] == "Saccharomyces cerevisiae"
    assert meta["with_sequence"] == 3 and meta["without_sequence"] == 2
    assert set(meta["without_sequence_examples"]) == {"P28469", "P19221"}


def test_expasy_with_fasta_sequences(tmp_path):
    (tmp_path / "enzyme.dat").write_text(ENZYME_DAT)
    (tmp_path / "seqs.fasta").write_text(
        ">sp|P00734|THRB_HUMAN Prothrombin OS=Homo sapiens\nMAHVRGLQLP\n>P28469\nMKVL\n"
    )
    df, _ = expasy_proteins(tmp_path / "enzyme.dat", tmp_path / "seqs.fasta")
    assert df.set_index("accession")["ec"].to_dict() == {"P28469": "1.1.1.1", "P00734": "3.4.21.5"}


# -- BRENDA -------------------------------------------------------------------------------------
BRENDA = """BR\tBRENDA The Comprehensive Enzyme Information System
********************************************************************************

ID\t1.1.1.1
********************************************************************************

PROTEIN
PR\t#1# Gallus gallus   <12,34>
PR\t#2# Homo sapiens P07327 and P00325 UniProt <28,32>
PR\t#3# Saccharomyces cerevisiae P00330 UniProt (#3# isoenzyme ADH1
\t<5>) <5,44>
PR\t#4# Sulfolobus solfataricus   (#4# strain DSM 1616, P39462 is not named
\tas UniProt here <77>) <77>

RECOMMENDED_NAME
RN\talcohol dehydrogenase

///
ID\t3.4.21.5
********************************************************************************

PROTEIN
PR\t#1# Homo sapiens P00734 SwissProt <1>
PR\t#2# Mus musculus P19221, Q3UX00 UniProt <2>
PR\t#3# Bos taurus P00735 TrEMBL <3>

///
ID\t2.3.1.B1
********************************************************************************
PR\t#1# Homo sapiens Q11111 UniProt <1>
///
"""


def test_brenda_protein_line_parsing():
    assert protein_accessions("#2# Homo sapiens P07327 and P00325 UniProt <28,32>") == ["P07327", "P00325"]
    assert protein_accessions("#1# Gallus gallus   <12,34>") == []
    assert protein_accessions("#4# Sulfolobus (#4# P39462 UniProt in a comment <7>) <7>") == []
    assert protein_accessions("#2# Mus musculus P19221, Q3UX00 UniProt <2>") == ["P19221", "Q3UX00"]
    assert protein_accessions("#9# Homo sapiens A0A024RBG1 AND Q9Y6K9 UniProt <1>") == [
        "A0A024RBG1",
        "Q9Y6K9",
    ]


def test_brenda_flat_file(tmp_path):
    (tmp_path / "brenda.txt").write_text(BRENDA)
    pairs, stats = read_brenda(tmp_path / "brenda.txt")
    assert pairs == {
        "P07327": ["1.1.1.1"],
        "P00325": ["1.1.1.1"],
        "P00330": ["1.1.1.1"],
        "P00734": ["3.4.21.5"],
        "P19221": ["3.4.21.5"],
        "Q3UX00": ["3.4.21.5"],
        "P00735": ["3.4.21.5"],
    }
    assert (
        stats["entries"] == 3
        and stats["entries_skipped"] == 1
        and stats["skipped_ids_examples"] == ["2.3.1.B1"]
    )
    assert stats["protein_lines"] == 7 and stats["protein_lines_with_accession"] == 5

    (tmp_path / "seqs.tsv").write_text(SEQUENCES_TSV)
    df, meta = brenda_proteins(tmp_path / "brenda.txt", tmp_path / "seqs.tsv")
    assert df.set_index("accession")["ec"].to_dict() == {
        "P07327": "1.1.1.1",
        "P00330": "1.1.1.1",
        "P00734": "3.4.21.5",
    }
    assert meta["without_sequence"] == 4


def test_brenda_gzip(tmp_path):
    (tmp_path / "brenda.txt.gz").write_bytes(gzip.compress(BRENDA.encode()))
    pairs, _ = read_brenda(tmp_path / "brenda.txt.gz")
    assert len(pairs) == 7


# -- FASTA as sequences for a read that reuses the proteins reader ------------------------------
def test_fasta_reader_keeps_order_and_line_numbers(tmp_path):
    (tmp_path / "a.fa").write_text(">A EC=1.1.1.1\nMK\nVL\n>B\nMW\n")
    df = read_fasta(tmp_path / "a.fa")
    assert df.to_dict("list") == {"accession": ["A", "B"], "ec": ["1.1.1.1", ""], "sequence": ["MKVL", "MW"]}


# -- the data rules of the workflow on the synthetic source -------------------------------------
def test_workflow_synthetic_data_stages(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    cfg = {
        "seed": 3,
        "data": {
            "source": "synthetic",
            "synthetic": {"n_classes": 3, "n_per_class": 12, "length_min": 30, "length_max": 40},
        },
        # cropped for the model: the split keeps the crops, its leakage report compares full lengths
        "labels": {"min_class_size": 5, "max_length": 25},
        "split": {"fractions": {"train": 0.5, "val": 0.25, "test": 0.25}, "identity": False},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "results/data/leakage_report.json",
        "--snakefile",
        str(repo / "Snakefile"),  # noqa: E501
        "--directory",
        str(run),
        "--configfile",
        str(tmp_path / "c.yaml"),
        "--cores",
        "1",
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = run / "results" / "data"
    motifs = read_tsv_table(data / "download" / "synthetic_motifs.tsv")
    assert motifs["ec_class"].tolist() == ["1", "2", "3"]
    proteins = read_tsv_table(data / "proteins.tsv")
    assert len(proteins) == 36 and list(proteins.columns[:3]) == ["accession", "ec", "sequence"]
    split = read_tsv_table(data / "split.tsv")
    assert split["label"].tolist() == [ec.split(".")[0] for ec in split["ec"]]  # read back as strings
    assert split.groupby("label")["split"].value_counts().unstack().to_dict("list") == {
        "test": [3, 3, 3],
        "train": [6, 6, 6],
        "val": [3, 3, 3],
    }
    classes = read_tsv_table(data / "classes.tsv")
    assert classes["label"].tolist() == ["1", "2", "3"] and classes["n"].tolist() == ["12", "12", "12"]
    assert split["sequence"].str.len().max() == 25
    leak = json.loads((data / "leakage_report.json").read_text())
    assert leak["method"] == "stratified" and leak["identity"]["computed"] is False
    assert leak["sequences"] == {"compared": "full length (data/proteins.tsv)", "cropped_for_the_model": 36}
    assert leak["class_counts"]["2"] == {"train": 6, "val": 3, "test": 3}
    report = json.loads((data / "label_report.json").read_text())
    assert report["input"]["proteins"] == 36 and report["output"]["proteins"] == 36
    for name in ("download_synthetic", "proteins", "labels", "split", "leakage"):
        assert (run / "results" / "logs" / "data" / f"{name}.log").exists()
