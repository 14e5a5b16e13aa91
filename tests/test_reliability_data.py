"""Reliability of the data end: downloads that hang or trickle, bad configuration, Windows files,
gzip mix-ups, duplicated accessions, full disks, unwritable outputs, credentials.

Companion modules: test_reliability_model.py (checkpoints, score provenance, safe loading,
out-of-memory, killed jobs) and test_reliability_workflow.py (Snakemake runs). The UniProt
faults already covered in test_download_uniprot.py (503 bursts, 429 + Retry-After, dropped
connections, corrupt gzip, slow responses, unreachable server) are not repeated here.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_download_uniprot import ENZYME_QUERY, ENZYMES, HEADER, FakeUniProt
from test_download_uniprot import config as uniprot_config

from kneurons.config import load_config, validate_config
from kneurons.data import uniprot as uniprot_mod
from kneurons.data.brenda import read_brenda
from kneurons.data.expasy import read_enzyme_dat
from kneurons.data.local import read_proteins, read_sequences
from kneurons.data.uniprot import download_uniprot
from kneurons.errors import ConfigError, DownloadError, InputError
from kneurons.io import write_json_atomic, write_table_atomic
from kneurons.schema import load_schema

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def uniprot_cfg(base_url: str, **kw) -> dict:
    """The ``data.uniprot`` section through the real schema (so schema keys and defaults are exercised)."""
    raw = {k: v for k, v in uniprot_config(base_url, **kw).items() if v is not None}
    return validate_config({"data": {"source": "uniprot", "uniprot": raw}})["data"]["uniprot"]


# -- downloads: a server that hangs, trickles, or a file that does not verify ----------------------
@pytest.fixture
def silent_server():
    """A TCP port that accepts connections (kernel backlog) but never answers: a hung server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/uniprotkb"
    sock.close()


def test_hung_server_is_retried_then_a_clear_error(tmp_path, silent_server):
    sleeps: list[float] = []
    cfg = uniprot_cfg(silent_server, retries=2, timeout=0.2, backoff=0.0)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"giving up after 3 attempts; last error: .*timed out"):
        download_uniprot(cfg, tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=sleeps.append)
    assert time.monotonic() - t0 < 5
    assert len(sleeps) == 2  # retried twice, with backoff, before giving up
    assert list(tmp_path.iterdir()) == []


def test_total_download_time_is_bounded(tmp_path, silent_server):
    # Hundreds of retries allowed, but the whole download may take at most 1 s.
    cfg = uniprot_cfg(silent_server, retries=500, timeout=0.2, backoff=0.0, max_total_seconds=1.0)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"exceeded data\.uniprot\.max_total_seconds=1 s; last error"):
        download_uniprot(cfg, tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=lambda s: None)
    assert 0.9 < time.monotonic() - t0 < 3
    assert list(tmp_path.iterdir()) == []


def test_backoff_that_would_pass_the_limit_is_not_slept(tmp_path, silent_server):
    sleeps: list[float] = []
    cfg = uniprot_cfg(silent_server, retries=5, timeout=0.1, backoff=30.0, max_total_seconds=5.0)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="max_total_seconds=5 s"):
        download_uniprot(cfg, tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=sleeps.append)
    assert sleeps == [] and time.monotonic() - t0 < 2


def test_default_limit_is_finite():
    cfg = validate_config({})["data"]["uniprot"]
    assert 0 < cfg["max_total_seconds"] < 24 * 3600


class TricklingServer:
    """Sends a 200 header promising 100 kB, then one byte every 20 ms: never idle long enough
    for a socket timeout, never done."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/uniprotkb"

    def serve(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nX-Total-Results: 1\r\n\r\n")
                    while not self.stop.is_set():
                        conn.sendall(b"x")
                        time.sleep(0.02)
                except OSError:
                    pass  # the client gave up

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_trickling_body_is_bounded_by_the_total_limit(tmp_path):
    with TricklingServer() as server:
        cfg = uniprot_cfg(server.url, retries=3, timeout=0.5, max_total_seconds=1.0)
        t0 = time.monotonic()
        with pytest.raises(DownloadError, match=r"max_total_seconds=1 s; last error: body still arriving"):
            download_uniprot(cfg, tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=lambda s: None)
        assert time.monotonic() - t0 < 3
    assert list(tmp_path.iterdir()) == []


class LossyGzipWriter:
    """Stands in for the gzip writer of the download: loses the file's tail after closing
    (``truncate``) or silently drops one row (``drop_row``), as a failing disk or NFS might."""

    def __init__(self, real_open, path, mode, kw, fault):
        self.fh, self.path, self.fault, self.n = real_open(path, mode, **kw), path, fault, 0

    def write(self, text):
        self.n += 1
        if self.fault == "drop_row" and self.n == 5:
            return len(text)
        return self.fh.write(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()
        if self.fault == "truncate":
            os.truncate(self.path, os.path.getsize(self.path) - 12)


@pytest.mark.parametrize(
    "fault,message",
    [("truncate", r"written gzip file does not re-read"), ("drop_row", r"wrote 22 rows, expected 23")],
)
def test_download_is_verified_before_the_rename(tmp_path, monkeypatch, fault, message):
    real_open = gzip.open

    def lossy_open(path, mode="rb", **kw):
        if "w" in mode:
            return LossyGzipWriter(real_open, path, mode, kw, fault)
        return real_open(path, mode, **kw)

    monkeypatch.setattr(uniprot_mod.gzip, "open", lossy_open)
    with FakeUniProt() as server, pytest.raises(DownloadError, match=message):
        download_uniprot(
            uniprot_cfg(server.base_url), tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=lambda s: None
        )
    assert list(tmp_path.iterdir()) == []  # no data file a later run would take as complete


def test_verified_download_is_complete(tmp_path):
    """The positive control of the test above: the same download without a fault verifies."""
    with FakeUniProt() as server:
        download_uniprot(
            uniprot_cfg(server.base_url), tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=lambda s: None
        )
    with gzip.open(tmp_path / "u.tsv.gz", "rt") as fh:
        assert fh.read().splitlines() == [HEADER, *ENZYMES]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.json", "u.tsv.gz"]
    assert ENZYME_QUERY in (tmp_path / "u.json").read_text()


# -- configuration: rejected at parse time, naming the key ------------------------------------------
@pytest.mark.parametrize(
    "patch,message",
    [
        ({"seed": "zero"}, r"seed: 'zero' is not of type 'integer'"),
        ({"train": {"epochs": 2.5}}, r"train\.epochs: 2\.5 is not of type 'integer'"),
        ({"device": "tpu"}, r"device: 'tpu' is not one of \['auto', 'cpu', 'cuda'\]"),
        ({"sed": 1}, r"<top level>: Additional properties are not allowed \('sed' was unexpected\)"),
        ({"train": {"epoch": 3}}, r"train: Additional properties are not allowed \('epoch' was unexpected\)"),
        (
            {"ablate": {"fractions": [0, 0.5, 1.5]}},
            r"ablate\.fractions\.2: 1\.5 is greater than the maximum of 1",
        ),  # noqa: E501
        ({"stats": {"keep_accuracy": -0.1}}, r"stats\.keep_accuracy: -0\.1 is less than the minimum of 0"),
        (
            {"split": {"fractions": {"train": 1.2, "val": 0.1, "test": 0.1}}},
            r"split\.fractions\.train: 1\.2 is greater than the maximum of 1",
        ),
        ({"labels": {"level": 5}}, r"labels\.level: 5 is greater than the maximum of 4"),
        (
            {"split": {"fractions": {"train": 0.7, "val": 0.1, "test": 0.1}}},
            r"split\.fractions: train \+ val \+ test must be 1, got 0\.9",
        ),
        (
            {"model": {"name": "esm3_large"}},
            r"model\.name: unknown model 'esm3_large'; known: custom, esm2_t6_8M_UR50D",
        ),  # noqa: E501
        ({"ablate": {"fill": "pretrained"}}, r"ablate\.fills: 'pretrained' needs pretrained weights"),
        (
            {"model": {"name": "esm2_t6_8M_UR50D", "pretrained": False}, "ablate": {"fill": "pretrained"}},
            r"ablate\.fills: 'pretrained' needs pretrained weights",
        ),
        (
            {"data": {"uniprot": {"max_total_seconds": 0}}},
            r"data\.uniprot\.max_total_seconds: 0 is less than or equal to the minimum of 0",
        ),
    ],
)
def test_bad_config_is_rejected_naming_the_key(patch, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(patch)


def test_config_file_errors_name_the_file(tmp_path):
    bad_value = tmp_path / "level.yaml"
    bad_value.write_text("labels:\n  level: 5\n")
    with pytest.raises(
        ConfigError, match=rf"{re.escape(str(bad_value))}: invalid configuration:\n  labels\.level"
    ):
        load_config(bad_value)
    bad_yaml = tmp_path / "syntax.yaml"
    bad_yaml.write_text("labels:\n  level: [1\nseed: 0\n")
    with pytest.raises(
        ConfigError, match=rf"(?s){re.escape(str(bad_yaml))}: not valid YAML.*line 2, column 10"
    ):
        load_config(bad_yaml)
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- seed\n- 0\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: configuration must be a mapping, got list"):
        load_config(not_a_mapping)


# -- data files: Windows line endings and BOM accepted, gzip by content, duplicates refused ----------
TSV = "Entry\tEC number\tSequence\tOrganism\nP1\t1.1.1.1\tMKVL\tHomo sapiens\nP2\t2.7.1.1; 2.7.1.2\tMKWA\t\nP3\t\tMAAA\tMus musculus\n"  # noqa: E501
FASTA = ">sp|P1|A_HUMAN Alpha OS=Homo sapiens EC=1.1.1.1\nMKV\nL\n>P2 EC=2.7.1.1\nMKWA\n>P3\nMAAA\n"
ENZYME_DAT = "ID   1.1.1.1\nDE   Alcohol dehydrogenase.\nDR   P07327, ADH1A_HUMAN;  P28469, ADH1A_MACMU;\n//\nID   2.7.1.1\nDR   P19367, HXK1_HUMAN;\n//\n"  # noqa: E501
BRENDA = "ID\t1.1.1.1\nPR\t#1# Homo sapiens P07327 UniProt <1>\n///\nID\t2.7.1.1\nPR\t#1# Homo sapiens P19367 SwissProt <2>\n///\n"  # noqa: E501


def windows(text: str, crlf: bool, bom: bool) -> bytes:
    data = text.replace("\n", "\r\n") if crlf else text
    return (b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8")


VARIANTS = [
    ("crlf", True, False, False),
    ("bom", False, True, False),
    ("crlf+bom", True, True, False),
    ("crlf+bom, gzip", True, True, True),
]


@pytest.mark.parametrize("name,crlf,bom,gz", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_windows_files_parse_like_unix_files(tmp_path, name, crlf, bom, gz):
    """CRLF line endings and a UTF-8 byte-order mark (Excel, Notepad) are read transparently."""
    for fmt, text, reader in (
        ("tsv", TSV, lambda p: read_proteins(p, "auto")),
        ("fasta", FASTA, lambda p: read_proteins(p, "auto")),
        ("seqs", TSV, read_sequences),
        ("dat", ENZYME_DAT, lambda p: read_enzyme_dat(p)[0]),
        ("brenda", BRENDA, lambda p: read_brenda(p)[0]),
    ):
        unix = tmp_path / f"unix.{fmt}"
        unix.write_text(text)
        win = tmp_path / f"win.{fmt}"
        data = windows(text, crlf, bom)
        win.write_bytes(gzip.compress(data) if gz else data)
        expected, got = reader(unix), reader(win)
        if isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(got, expected)
            assert not got.map(lambda v: "\r" in v or "\ufeff" in v).any().any()
        else:
            assert got == expected and expected


@pytest.mark.skipif(not (REAL_DATA / "uniprot_reviewed_sample.tsv").exists(), reason="../shared/data absent")
def test_real_uniprot_export_with_windows_line_endings(tmp_path):
    head = (REAL_DATA / "uniprot_reviewed_sample.tsv").read_text().splitlines(keepends=True)[:300]
    unix = tmp_path / "sample.tsv"
    unix.write_text("".join(head))
    win = tmp_path / "sample_windows.tsv.gz"
    win.write_bytes(gzip.compress(windows("".join(head), crlf=True, bom=True)))
    pd.testing.assert_frame_equal(read_proteins(win), read_proteins(unix))


def test_utf16_file_is_named_as_such(tmp_path):
    path = tmp_path / "excel.tsv"
    path.write_bytes(TSV.encode("utf-16"))  # with a BOM, as Excel's "Unicode text" writes it
    with pytest.raises(
        InputError, match=r"excel\.tsv: UTF-16 text \(byte-order mark FF FE\); save the file as UTF-8"
    ):
        read_proteins(path)
    dat = tmp_path / "enzyme.dat"
    dat.write_bytes(ENZYME_DAT.encode("utf-16"))
    with pytest.raises(InputError, match=r"enzyme\.dat: UTF-16 text"):
        read_enzyme_dat(dat)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    expected = read_proteins(_write(tmp_path / "plain.tsv", TSV.encode()))
    gz_named_tsv = _write(tmp_path / "actually_gzip.tsv", gzip.compress(TSV.encode()))
    plain_named_gz = _write(tmp_path / "actually_plain.tsv.gz", TSV.encode())
    pd.testing.assert_frame_equal(read_proteins(gz_named_tsv), expected)
    pd.testing.assert_frame_equal(read_proteins(plain_named_gz), expected)
    fasta_gz_named_fa = _write(tmp_path / "seqs.fa", gzip.compress(FASTA.encode()))
    assert read_proteins(fasta_gz_named_fa)["accession"].tolist() == ["P1", "P2", "P3"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "name,data,message",
    [
        (
            "dup.tsv",
            TSV + "P2\t2.7.1.1\tMKWAYYY\t\n",
            r"dup\.tsv, line 5: duplicate accession 'P2' \(first at line 3\)",
        ),
        (
            "dup.fa",
            FASTA + ">P1 EC=1.1.1.1\nMKVLQQ\n",
            r"dup\.fa, line 8: duplicate accession 'P1' \(first at line 1\)",
        ),
        (
            "dup_windows.tsv.gz",
            None,
            r"dup_windows\.tsv\.gz, line 5: duplicate accession 'P2' \(first at line 3\)",
        ),
    ],
)
def test_duplicated_accession_with_another_sequence_is_an_error(tmp_path, name, data, message):
    """The same accession twice (here with different sequences) is refused, naming both lines.

    (Identical *sequences* under different accessions are a label policy instead:
    ``labels.duplicates``.)"""
    raw = (
        gzip.compress(windows(TSV + "P2\t2.7.1.1\tMKWAYYY\t\n", True, True))
        if data is None
        else data.encode()
    )
    with pytest.raises(InputError, match=message):
        read_proteins(_write(tmp_path / name, raw))


# -- full disk, unwritable output directory: an error, and no corrupt output ------------------------
def test_failed_rename_keeps_the_previous_output_and_leaves_no_temporary(tmp_path, monkeypatch):
    from kneurons import io as kio

    df = pd.DataFrame({"accession": ["P1", "P2"], "label": ["1", "2"]})
    targets = {
        "t.tsv": lambda p: write_table_atomic(df, p),
        "t.parquet": lambda p: write_table_atomic(df, p),
        "t.json": lambda p: write_json_atomic(p, {"n": 2}),
    }
    for name, write in targets.items():
        write(tmp_path / name)
    before = {name: (tmp_path / name).read_bytes() for name in targets}

    def no_space(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(kio.os, "replace", no_space)
    df2 = pd.DataFrame({"accession": ["P9"], "label": ["9"]})
    for name, write in {
        "t.tsv": lambda p: write_table_atomic(df2, p),
        "t.parquet": lambda p: write_table_atomic(df2, p),  # noqa: E501
        "t.json": lambda p: write_json_atomic(p, {"n": 9}),
    }.items():
        with pytest.raises(OSError, match="No space left on device"):
            write(tmp_path / name)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(targets)  # no temporary files
    assert {name: (tmp_path / name).read_bytes() for name in targets} == before


def test_sigterm_just_after_the_temporary_is_created_leaves_nothing(tmp_path, monkeypatch):
    """A SIGTERM (as SystemExit, ``exit_on_sigterm``) the instant the temporary exists still removes it."""
    from kneurons import io as kio
    from kneurons.jobs.signals import exit_on_sigterm

    real = kio._created

    def created_then_signalled(path):
        made = real(path)
        signal.raise_signal(signal.SIGTERM)  # the handler raises here, before the caller's next step
        return made

    monkeypatch.setattr(kio, "_created", created_then_signalled)
    previous = signal.getsignal(signal.SIGTERM)
    exit_on_sigterm()
    try:
        with pytest.raises(SystemExit):
            write_json_atomic(tmp_path / "t.json", {"n": 1})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert list(tmp_path.iterdir()) == []


FSIZE_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, pandas as pd
    from kneurons.io import write_table_atomic, write_json_atomic
    out = sys.argv[1]
    rng = np.random.default_rng(0)  # random residues: parquet cannot compress them below the limit
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 500)) for _ in range(1000)]
    big = pd.DataFrame({"sequence": seqs, "x": np.arange(1000)})
    result = {}
    for name in ("big.tsv", "big.parquet"):
        try:
            write_table_atomic(big, os.path.join(out, name))
            result[name] = "written"
        except OSError as exc:
            result[name] = exc.errno
    write_json_atomic(os.path.join(out, "small.json"), {"ok": True})  # small files still fit
    print(json.dumps(result))
    """
)


def test_real_write_failure_leaves_no_partial_file(tmp_path):
    """A file-size limit (RLIMIT_FSIZE, which root obeys too) makes the kernel refuse writes
    past 64 KiB, like a full disk: the write fails with an OSError and nothing partial remains."""
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    proc = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(tmp_path)],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"big.tsv": errno.EFBIG, "big.parquet": errno.EFBIG}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.json"]


def test_unwritable_output_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results directory should be")
    target = blocker / "data" / "proteins.tsv"
    with pytest.raises(OSError) as info:
        write_table_atomic(pd.DataFrame({"a": [1]}), target)
    assert info.value.errno in (errno.ENOTDIR, errno.EEXIST) and str(blocker) in str(info.value)
    assert blocker.read_text().startswith("a file")


# -- credentials ---------------------------------------------------------------------------------------
CREDENTIAL_KEY = re.compile(
    r"passw(or)?d|passphrase|secret|credential|api_?key|auth|login|(^|_)user(name)?$|e?mail|(^|_)token$"
)


def _schema_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, sub in (node.get("properties") or {}).items():
        keys.append(f"{prefix}{name}")
        keys.extend(_schema_keys(sub, f"{prefix}{name}."))
    return keys


def test_configuration_takes_no_credentials():
    """No key of the schema (hence of params, logs or the report) can hold a credential: no
    source needs one (UniProt and ExPASy are public; BRENDA is a file the user downloads)."""
    keys = _schema_keys(load_schema())
    assert len(keys) > 100 and "data.brenda.path" in keys and "train.token_budget" in keys
    offending = [k for k in keys if CREDENTIAL_KEY.search(k.rsplit(".", 1)[-1])]
    assert offending == []
    brenda = load_schema()["properties"]["data"]["properties"]["brenda"]
    assert set(brenda["properties"]) == {"path"}


def test_example_configs_validate_and_hold_no_credentials():
    config_dir = Path(__file__).resolve().parents[1] / "config"
    for path in sorted(config_dir.glob("*.yaml")):
        load_config(path)
        text = path.read_text().lower()
        assert not re.search(r"password|secret|api_key|apikey", text), path
    assert yaml.safe_load((config_dir / "config.yaml").read_text())
