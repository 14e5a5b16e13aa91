"""Bad input gets one clear error naming file, line or value, and leaves nothing behind.

Data part: TSV/FASTA/enzyme.dat/BRENDA readers, labels, splits, and the workflow's data rules.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kneurons.data.brenda import read_brenda
from kneurons.data.expasy import read_enzyme_dat
from kneurons.data.labels import extract_labels
from kneurons.data.local import read_proteins, read_sequences
from kneurons.data.split import stratified_split
from kneurons.errors import InputError

REPO = Path(__file__).resolve().parents[1]
GOOD_TSV = "Entry\tEC number\tSequence\nP1\t1.1.1.1\tMKV\nP2\t2.1.1.1\tMKW\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- TSV ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,pattern",
    [
        ("", r"bad\.tsv: empty file"),
        ("\n\n", r"bad\.tsv: empty file"),
        ("Entry\tEC number\tSequence\n", r"bad\.tsv: no proteins"),
        (GOOD_TSV + "P3\t1.1.1.1\n", r"bad\.tsv, line 4: expected 3 tab-separated fields .* found 2"),
        (GOOD_TSV + "P3\t1.1.1.1\tMKV\textra\n", r"bad\.tsv, line 4: expected 3 .* found 4"),
        (
            "Entry\tSequence\nP1\tMKV\n",
            r"bad\.tsv, line 1: missing required column\(s\) 'EC number' \(or 'ec'\)",
        ),
        (
            "id\tenzyme\tseq\nP1\t1.1.1.1\tMKV\n",
            r"missing required column\(s\) 'Entry'.*the header has: id, enzyme, seq",
        ),
        (
            "Entry\tEntry\tEC number\tSequence\nP1\tP1\t1.1.1.1\tMKV\n",
            r"line 1: column\(s\) given twice: accession",
        ),
        (
            GOOD_TSV + "P3\t1.1.x.1\tMKV\n",
            r"bad\.tsv, line 4 \(accession P3\): invalid EC number '1\.1\.x\.1'",
        ),
        (
            GOOD_TSV + "P3\t1.1.1.1; 9.9.9.9\tMKV\n",
            r"line 4 \(accession P3\): invalid EC number '9\.9\.9\.9'",
        ),
        (GOOD_TSV + "P3\t1.1.1.1\tMKV1A\n", r"line 4 \(accession P3\): invalid character '1' at residue 4"),
        (GOOD_TSV + "P3\t1.1.1.1\tMK VA\n", r"line 4 \(accession P3\): invalid character ' ' at residue 3"),
        (GOOD_TSV + "P3\t1.1.1.1\t\n", r"line 4 \(accession P3\): empty sequence"),
        (GOOD_TSV + "\t1.1.1.1\tMKV\n", r"line 4: empty accession"),
        (GOOD_TSV + "P1\t1.1.1.1\tMKV\n", r"line 4: duplicate accession 'P1' \(first at line 2\)"),
    ],
)
def test_bad_tsv(tmp_path, text, pattern):
    path = write(tmp_path, "bad.tsv", text)
    with pytest.raises(InputError, match=pattern):
        read_proteins(path, "tsv")


def test_corrupt_gzip(tmp_path):
    data = gzip.compress((GOOD_TSV * 50).encode())
    path = tmp_path / "bad.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"bad\.tsv\.gz, after line \d+: corrupt or truncated gzip"):
        read_proteins(path, "tsv")


def test_not_utf8(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(GOOD_TSV.encode() + b"P3\t1.1.1.1\tMK\xff\n")
    with pytest.raises(InputError, match=r"bad\.tsv, line 4: not UTF-8"):
        read_proteins(path, "tsv")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.tsv: file not found"):
        read_proteins(tmp_path / "nope.tsv", "tsv")


# -- FASTA --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,pattern",
    [
        ("", r"bad\.fa: empty file"),
        ("MKVLA\n>P1 EC=1.1.1.1\nMKV\n", r"bad\.fa, line 1: sequence data before the first '>' header"),
        (">P1 EC=1.1.1.1\n>P2 EC=2.1.1.1\nMKV\n", r"bad\.fa, line 1: header without sequence"),
        (">P1 EC=1.1.1.1\nMKV\n>P2\n", r"bad\.fa, line 3: header without sequence"),
        (">P1 EC=1.1.1.1\nMKV\n>P2\nMK\nM-KV\n", r"bad\.fa, line 5 \(accession P2\): invalid character '-'"),
        (">P1 EC=1.1.1.1\nMKV\n> EC=1.1.1.1\nMKV\n", r"bad\.fa, line 3: header without an identifier"),
        (">P1 EC=1.1.1\nMKV\n", r"bad\.fa, line 1 \(accession P1\): invalid EC number '1\.1\.1'"),
        (">P1\nMKV\n>P1\nMKW\n", r"bad\.fa, line 3: duplicate accession 'P1' \(first at line 1\)"),
    ],
)
def test_bad_fasta(tmp_path, text, pattern):
    path = write(tmp_path, "bad.fa", text)
    with pytest.raises(InputError, match=pattern):
        read_proteins(path, "fasta")


# -- ExPASy / BRENDA ----------------------------------------------------------------------------
def test_bad_enzyme_dat(tmp_path):
    with pytest.raises(InputError, match=r"enzyme\.dat: no ENZYME entries"):
        read_enzyme_dat(write(tmp_path, "enzyme.dat", ""))
    bad_dr = "ID   1.1.1.1\nDE   alcohol dehydrogenase.\nDR   P07327 ADH1A_HUMAN;\n//\n"
    with pytest.raises(InputError, match=r"enzyme\.dat, line 3: malformed ENZYME record"):
        read_enzyme_dat(write(tmp_path, "enzyme.dat", bad_dr))
    bad_id = "ID   1.1.x.1\nDR   P07327, ADH1A_HUMAN;\n//\n"
    with pytest.raises(InputError, match=r"line \d: entry ID: invalid EC number '1\.1\.x\.1'"):
        read_enzyme_dat(write(tmp_path, "enzyme.dat", bad_id))
    truncated = "ID   1.1.1.1\nDR   P07327, ADH1A_HUMAN;\n"
    with pytest.raises(InputError, match=r"enzyme\.dat, line 2: malformed ENZYME record .*end of stream"):
        read_enzyme_dat(write(tmp_path, "enzyme.dat", truncated))


def test_bad_brenda(tmp_path):
    with pytest.raises(InputError, match=r"brenda\.txt: empty file"):
        read_brenda(write(tmp_path, "brenda.txt", ""))
    with pytest.raises(InputError, match=r"brenda\.txt, line 1: PR line before the first ID line"):
        read_brenda(write(tmp_path, "brenda.txt", "PR\t#1# Homo sapiens P07327 UniProt <1>\n"))
    with pytest.raises(InputError, match=r"no 'ID<TAB>EC' lines"):
        read_brenda(write(tmp_path, "brenda.txt", "BR\tBRENDA\nRN\tsomething\n"))
    with pytest.raises(InputError, match=r"1 protein \(PR\) lines but none names a UniProt accession"):
        read_brenda(write(tmp_path, "brenda.txt", "ID\t1.1.1.1\nPR\t#1# Gallus gallus <1>\n///\n"))


def test_sequences_file_without_matches(tmp_path):
    from kneurons.data.expasy import expasy_proteins

    dat = write(tmp_path, "enzyme.dat", "ID   1.1.1.1\nDR   P07327, ADH1A_HUMAN;\n//\n")
    seqs = write(tmp_path, "seqs.tsv", "Entry\tSequence\nQ00001\tMKV\n")
    assert len(read_sequences(seqs)) == 1
    with pytest.raises(
        InputError, match=r"seqs\.tsv: none of the 1 accessions from .*enzyme\.dat has a sequence"
    ):
        expasy_proteins(dat, seqs)


# -- labels and split ---------------------------------------------------------------------------
def test_labels_invalid_ec_names_row():
    df = pd.DataFrame({"accession": ["A", "B"], "ec": ["1.1.1.1", "1.1"], "sequence": ["MKV", "MKW"]})
    with pytest.raises(InputError, match=r"proteins\.tsv, line 3 \(accession B\): invalid EC number '1\.1'"):
        extract_labels(df, {}, source="proteins.tsv")


def test_labels_invalid_sequence_names_row():
    df = pd.DataFrame({"accession": ["A", "B"], "ec": ["1.1.1.1", "2.1.1.1"], "sequence": ["MKV", "MK#"]})
    with pytest.raises(InputError, match=r"line 3 \(accession B\): invalid character '#'"):
        extract_labels(df, {})


def test_labels_missing_column():
    with pytest.raises(InputError, match=r"missing required column\(s\) ec"):
        extract_labels(pd.DataFrame({"accession": ["A"], "sequence": ["MKV"]}), {})


def test_all_filtered_out():
    df = pd.DataFrame({"accession": ["A", "B"], "ec": ["", "4.2.2.n1"], "sequence": ["MKV", "MKW"]})
    with pytest.raises(
        InputError, match=r"no protein left after the label policies.*non_enzymes: -1.*preliminary: -1"
    ):
        extract_labels(df, {"min_class_size": 1})


def test_class_too_small_for_split():
    df = pd.DataFrame(
        {"accession": list("ABCDE"), "sequence": ["MKV"] * 5, "label": ["1", "1", "1", "2", "2"]}
    )
    with pytest.raises(InputError, match=r"class '2' has 2 proteins"):
        stratified_split(df, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)


# -- the workflow: one clear error, no partial output -------------------------------------------
def run_workflow(
    tmp_path: Path, data: dict, target: str, labels: dict | None = None
) -> subprocess.CompletedProcess:
    cfg = {"data": data, "labels": labels or {}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path / "run"),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "1",
        target,
    ]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)


def test_workflow_bad_tsv_fails_cleanly(tmp_path):
    bad = write(tmp_path, "bad.tsv", GOOD_TSV + "P3\t1.1.1.1\tMKV*X\n")
    proc = run_workflow(tmp_path, {"source": "tsv", "tsv": str(bad)}, "results/data/labels.tsv")
    assert proc.returncode != 0
    log = (tmp_path / "run" / "results" / "logs" / "data" / "proteins.log").read_text()
    assert "bad.tsv, line 4 (accession P3): invalid character '*' at residue 4" in log
    assert not (tmp_path / "run" / "results" / "data" / "proteins.tsv").exists()
    leftovers = [p.name for p in (tmp_path / "run" / "results" / "data").glob("*")]
    assert leftovers == []


def test_workflow_all_filtered_out_writes_no_labels(tmp_path):
    good = write(tmp_path, "p.tsv", GOOD_TSV)
    proc = run_workflow(
        tmp_path, {"source": "tsv", "tsv": str(good)}, "results/data/labels.tsv", {"min_class_size": 5}
    )
    assert proc.returncode != 0
    log = (tmp_path / "run" / "results" / "logs" / "data" / "labels.log").read_text()
    assert "no protein left after the label policies" in log and "min_class_size: -2" in log
    data_dir = tmp_path / "run" / "results" / "data"
    assert (data_dir / "proteins.tsv").exists()
    assert sorted(p.name for p in data_dir.iterdir()) == ["proteins.tsv"]


def test_config_uniprot_fields_must_carry_the_contract():
    from kneurons.config import validate_config
    from kneurons.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.uniprot\.fields: must include ec, sequence"):
        validate_config({"data": {"source": "uniprot", "uniprot": {"fields": ["accession", "length"]}}})
    with pytest.raises(ConfigError, match=r"data\.tsv: required when data\.source is 'tsv'"):
        validate_config({"data": {"source": "tsv"}})
