"""Input and output hygiene: outputs honour the umask; spreadsheet TSVs are read, and header
mismatches explained; what normalising rewrote is counted; dropped proteins are listed with
their reasons; expected errors end a job with one line; a homology split without MMseqs2 stops
before any job.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kneurons.data.labels import LabelPolicyError, label_proteins
from kneurons.data.local import read_proteins, source_report
from kneurons.data.mmseqs import check_mmseqs_for_config
from kneurons.errors import ConfigError, InputError
from kneurons.io import current_umask, write_json_atomic, write_table_atomic, write_text_atomic

REPO = Path(__file__).resolve().parents[1]
PLAIN = "Entry\tEC number\tSequence\nP1\t1.1.1.1\tMKV\nP2\t2.1.1.1\tMKW\nP3\t\tMKA\n"
# The same table as a spreadsheet program saves it: BOM, CRLF, quoted fields, empty trailing columns.
SHEET = (
    '\ufeff"Entry"\t"EC number"\t"Sequence"\t\t\r\n'
    'P1\t"1.1.1.1"\t"MKV"\t\t\r\n'
    'P2\t2.1.1.1\tMKW\t""\t\r\n'
    "P3\t\tMKA\t\t\r\n"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- outputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_outputs_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        write_text_atomic(tmp_path / "a.txt", "x")
        write_json_atomic(tmp_path / "b.json", {"a": 1})
        df = pd.DataFrame({"a": [1, 2]})
        write_table_atomic(df, tmp_path / "c.tsv")
        write_table_atomic(df, tmp_path / "d.parquet")
        (tmp_path / "plain.txt").write_text("x")  # what a plain open gives, for comparison
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert mode(tmp_path / "plain.txt") == expected
    for name in ("a.txt", "b.json", "c.tsv", "d.parquet"):
        assert mode(tmp_path / name) == expected, name


# -- inputs: spreadsheet TSVs, header hints, residues, EC prefixes, .gz names ----------------------
def test_spreadsheet_tsv_reads_like_the_plain_one(tmp_path):
    plain, sheet = tmp_path / "plain.tsv", tmp_path / "sheet.tsv"
    plain.write_text(PLAIN)
    sheet.write_bytes(SHEET.encode("utf-8"))
    pd.testing.assert_frame_equal(read_proteins(sheet), read_proteins(plain))


def test_quote_inside_a_quoted_field_and_unbalanced_quotes(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text('Entry\tEC number\tSequence\tProtein names\nP1\t1.1.1.1\tMKV\t"a ""b"" c"\n')
    assert read_proteins(path)["protein_name"].tolist() == ['a "b" c']
    path.write_text('Entry\tEC number\tSequence\nP1\t"1.1.1.1\tMKV\n')
    with pytest.raises(InputError, match=r"q\.tsv, line 2: unbalanced quotes"):
        read_proteins(path)


@pytest.mark.parametrize(
    "header,hint",
    [
        ("'Entry'\tEC number\tSequence", r"\"'Entry'\" is 'Entry' with quotes or spaces around it"),
        ("entry\tEC number\tSequence", r"'entry' differs from 'Entry' in case"),
        ("Entry\tEC Number\tSequence", r"'EC Number' differs from 'EC number' in case"),
        ("Entyr\tEC number\tSequence", r"'Entyr' is close to 'Entry' \(a typing error\?\)"),
    ],
)
def test_header_mismatch_says_why(tmp_path, header, hint):
    path = tmp_path / "h.tsv"
    path.write_text(header + "\nP1\t1.1.1.1\tMKV\n")
    with pytest.raises(InputError, match=r"h\.tsv, line 1: missing required column\(s\).*" + hint):
        read_proteins(path)


def test_lower_case_residues_are_one_policy_for_tsv_and_fasta_and_counted(tmp_path):
    tsv, fasta = tmp_path / "p.tsv", tmp_path / "p.fa"
    tsv.write_text(
        "Entry\tEC number\tSequence\nP1\t1.1.1.1\tmkv*\nP2\tEC:2.1.1.1\tMKW\nP3\tEC 3.1.1.1\tMkA\n"
    )
    fasta.write_text(">P1 EC=1.1.1.1\nmkv*\n>P2 EC=2.1.1.1\nMKW\n>P3 EC=3.1.1.1\nMkA\n")
    from_tsv, from_fasta = read_proteins(tsv), read_proteins(fasta)
    assert from_tsv["sequence"].tolist() == from_fasta["sequence"].tolist() == ["MKV", "MKW", "MKA"]
    assert from_tsv["ec"].tolist() == ["1.1.1.1", "2.1.1.1", "3.1.1.1"]
    counts = source_report(tsv, "tsv", from_tsv)["normalised"]
    assert counts == {"lower_case_sequences": 2, "final_stop_removed": 1, "ec_prefix_removed": 2}
    fasta_counts = source_report(fasta, "fasta", from_fasta)["normalised"]
    assert fasta_counts["lower_case_sequences"] == 2 and fasta_counts["final_stop_removed"] == 1


def test_plain_text_named_gz_is_read_and_logged_once(tmp_path, caplog):
    path = tmp_path / "p.tsv.gz"
    path.write_text(PLAIN)
    with caplog.at_level(logging.INFO, logger="kneurons.data.local"):
        df = read_proteins(path)
    assert len(df) == 3
    lines = [r.getMessage() for r in caplog.records if "not gzip-compressed" in r.getMessage()]
    assert lines == [f"{path}: named .gz but not gzip-compressed; read as plain text"]


# -- dropped proteins and the errors after the label policies ----------------------------------
def test_dropped_proteins_are_listed_with_their_reasons():
    df = pd.DataFrame(
        {
            "accession": ["A", "B", "C", "D", "E", "F", "G"],
            "ec": ["1.1.1.1", "", "1.1.1.1; 2.1.1.1", "4.2.2.n1", "1.1.1.2", "2.1.1.1", "2.1.1.1"],
            "sequence": ["MKV", "MKW", "MKA", "MKC", "MKV", "MKE", "MKXX"],
        }
    )
    result = label_proteins(df, {"min_class_size": 1, "nonstandard": "drop"})
    rows = {r.accession: (r.step, r.detail) for r in result.dropped.itertuples()}
    assert rows == {
        "B": ("non_enzymes", "no EC number"),
        # multi_ec: agree (the default): its numbers state two level-1 classes
        "C": ("multi_ec", "EC numbers give different level-1 labels ['1', '2']: 1.1.1.1; 2.1.1.1"),
        "D": ("preliminary", "no EC number defines the level-1 label under the policies: 4.2.2.n1"),
        "G": ("nonstandard", "non-standard residue(s) X"),
        "E": ("duplicates", "same sequence as A (label 1)"),  # the copies agree: A stays
    }
    # every step's count in the report is the number of its rows in the dropped table
    per_step = result.dropped["step"].value_counts().to_dict()
    assert {s["step"]: s["dropped"] for s in result.report["steps"] if s["dropped"]} == per_step
    assert set(result.labels["accession"]).isdisjoint(result.dropped["accession"])


def test_policy_errors_name_the_input_file_and_the_policies():
    df = pd.DataFrame(
        {"accession": ["A", "B", "C"], "ec": ["", "1.1.1.1", "1.2.1.1"], "sequence": ["MKV", "MKW", "MKA"]}
    )
    with pytest.raises(LabelPolicyError) as err:
        label_proteins(df, {"min_class_size": 1}, source="results/data/proteins.tsv", origin="my_export.tsv")
    msg = str(err.value)
    assert msg.startswith("my_export.tsv: only 1 class left after the label policies")
    assert "non_enzymes: -1" in msg and "proteins.tsv" not in msg
    assert err.value.dropped["accession"].tolist() == ["A"]


# -- the workflow: umask, dropped.tsv, one-line errors --------------------------------------------
def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "1",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, umask=0o022)


def test_workflow_reads_a_spreadsheet_export_with_shared_permissions(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "export.tsv.gz").write_bytes(SHEET.encode("utf-8"))  # plain text despite the name
    cfg = {"data": {"source": "tsv", "tsv": "export.tsv.gz"}, "labels": {"min_class_size": 1}}
    proc = snakemake(run, cfg, "results/data/labels.tsv")
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = run / "results"
    files = [p for p in results.rglob("*") if p.is_file()]
    assert files and {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o644) for p in files}
    assert all(mode(p) == 0o755 for p in results.rglob("*") if p.is_dir())
    dropped = pd.read_csv(results / "data" / "dropped.tsv", sep="\t", dtype=str)
    assert dropped.to_dict("records") == [
        {"accession": "P3", "step": "non_enzymes", "policy": "drop", "detail": "no EC number"}
    ]
    report = json.loads((results / "data" / "label_report.json").read_text())
    assert report["source"]["file"] == "export.tsv.gz" and report["source"]["gzip"] is False
    assert report["source"]["normalised"]["lower_case_sequences"] == 0
    proteins_log = (results / "logs/data/proteins.log").read_text()
    assert "export.tsv.gz: named .gz but not gzip-compressed" in proteins_log


def last_line(text: str) -> str:
    return text.rstrip("\n").rsplit("\n", 1)[-1]


def test_refused_input_ends_the_job_with_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "mine.tsv").write_text(PLAIN)
    proc = snakemake(run, {"data": {"source": "tsv", "tsv": "mine.tsv"}}, "results/data/labels.tsv")
    assert proc.returncode != 0
    log = (run / "results/logs/data/labels.log").read_text()
    expected = (
        "InputError: mine.tsv: no protein left after the label policies "
        "(non_enzymes: -1; min_class_size: -2); check the labels section of the config; "
        "dropped proteins and why: results/logs/data/labels_dropped.tsv"
    )
    assert last_line(log).endswith(expected), log
    assert "Traceback" not in log and "Traceback" not in proc.stderr
    # what the job printed ends with that line; Snakemake's own error block follows it
    job_output = proc.stderr.split("Reason: Missing output files: results/data/labels.tsv")[-1]
    assert last_line(job_output.split("RuleException:")[0]).endswith(expected)
    dropped = pd.read_csv(run / "results/logs/data/labels_dropped.tsv", sep="\t", dtype=str)
    assert dropped["step"].tolist() == ["non_enzymes", "min_class_size", "min_class_size"]
    assert not (run / "results/data/dropped.tsv").exists()


def test_unexpected_errors_keep_their_traceback(tmp_path):
    script = (
        "import sys\nfrom kneurons.jobs import setup_logging\nfrom kneurons.errors import ConfigError\n"
        "setup_logging(sys.argv[1])\n"
        "raise ConfigError('x.y: bad') if sys.argv[2] == 'expected' else RuntimeError('a bug')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for kind, last in (("expected", "ConfigError: x.y: bad"), ("bug", "RuntimeError: a bug")):
        log = tmp_path / f"{kind}.log"
        proc = subprocess.run(
            [sys.executable, "-c", script, str(log), kind],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert proc.returncode == 1
        if kind == "expected":
            assert last_line(proc.stderr).endswith(last) and last_line(log.read_text()).endswith(last)
            assert "Traceback" not in proc.stderr + log.read_text()
        else:
            assert "Traceback" in log.read_text() and last_line(log.read_text()) == last


# -- MMseqs2 before any job ---------------------------------------------------------------------
def test_homology_split_without_mmseqs_is_refused_before_any_job(tmp_path):
    homology = {"split": {"method": "homology", "mmseqs": {"executable": "no-such-mmseqs"}}}
    from kneurons.config import validate_config

    cfg = validate_config(homology)
    with pytest.raises(ConfigError, match=r"split\.method: homology needs MMseqs2.*--sdm conda.*apt-get"):
        check_mmseqs_for_config(cfg, conda=False)
    assert check_mmseqs_for_config(cfg, conda=True) is None  # Snakemake installs it
    assert check_mmseqs_for_config(validate_config({}), conda=False) is None  # stratified
    proc = snakemake(tmp_path / "run", homology, "-n")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr  # a dry run logs to stdout
    assert "homology needs MMseqs2" in out and "--sdm conda" in out
    assert not (tmp_path / "run" / "results").exists()


# -- the manual's commands run from the repository root ------------------------------------------------
def _bash_blocks(markdown: str) -> list[str]:
    parts = markdown.split("```bash\n")[1:]
    return [p.split("```", 1)[0] for p in parts]


@pytest.mark.parametrize("page", ["docs/real-data.md", "docs/cost-plan.md", "docs/data.md"])
def test_the_manuals_commands_run_from_the_repository_root(page):
    """No scratch folder of the machine a run was measured on (``/tmp/...``, ``/work/...``, another
    working directory): a reader runs each command from the repository root, and every
    ``--configfile`` is a shipped configuration or a file an earlier command of the page writes."""
    text = (REPO / page).read_text()
    for folder in ("/tmp/", "/work/"):
        assert folder not in text, f"{page} names {folder}"
    blocks = _bash_blocks(text)
    written: set[str] = set()
    for block in blocks:
        for marker in ("/tmp/", "/work/", "$PWD", "--directory", "--snakefile", "ln -s"):
            assert marker not in block, f"{page}: {marker!r} in\n{block}"
        words = block.replace("\\\n", " ").split()
        written |= {words[i + 1] for i, w in enumerate(words[:-1]) if w == ">" and words[i - 1] == "cat"}
        for i, word in enumerate(words):
            if word != "--configfile":
                continue
            for arg in words[i + 1 :]:
                if arg.startswith("-") or not arg.endswith((".yaml", ".yml")):
                    break
                assert (REPO / arg).is_file() or arg in written, (
                    f"{page}: --configfile {arg} is neither shipped nor written"
                )
