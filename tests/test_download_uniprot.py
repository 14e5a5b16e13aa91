"""UniProt REST download against a local HTTP server (real sockets) with injected faults.

The server imitates the paginated search endpoint: gzip TSV pages (``compressed=true``),
``Link: <...>; rel="next"`` with a cursor, ``X-Total-Results``, ``X-UniProt-Release``. Faults
are scripted per (page, attempt): 503, 429 with Retry-After, a connection dropped in the
middle of the body, a corrupt gzip body, a response slower than the client timeout, 400.
Backoff sleeps are recorded instead of slept, so the tests are fast and can check them.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from test_annotations import COLUMN_TEXTS

from kneurons.config import validate_config
from kneurons.data.annotations import FEATURE_COLUMNS, column_instances
from kneurons.data.local import read_uniprot_tsv
from kneurons.data.uniprot import download_uniprot, next_link, retry_after_seconds
from kneurons.errors import DownloadError
from kneurons.tables import read_tsv_table

HEADER = "Entry\tEC number\tSequence\tLength\tProtein names\tOrganism\tActive site\tBinding site"
ENZYMES = [
    f"P{i:05d}\t{1 + i % 7}.1.1.{i}\tMKV{'ACDEFGHIKL'[i % 10]}LA\t7\tEnzyme {i}\tHomo sapiens\t\t"
    for i in range(23)
]
NON_ENZYMES = [f"Q{i:05d}\t\tMWW{'ACDEFGHIKL'[i % 10]}\t5\tProtein {i}\tMus musculus\t\t" for i in range(4)]
ENZYME_QUERY = "(reviewed:true) AND (ec:*)"
NON_ENZYME_QUERY = "(reviewed:true) NOT (ec:*)"


class FakeUniProt:
    """A scripted UniProt search endpoint on 127.0.0.1 (a random free port)."""

    def __init__(
        self,
        faults=None,
        total_override=None,
        release="2025_04",
        release_by_page=None,
        header=HEADER,
        rows=None,
    ):
        self.header = header
        self.datasets = {ENZYME_QUERY: rows if rows is not None else ENZYMES, NON_ENZYME_QUERY: NON_ENZYMES}
        self.faults = faults or {}  # (query, offset, attempt) -> fault name
        self.total_override = total_override
        self.release = release
        self.release_by_page = release_by_page or {}
        self.attempts: dict[tuple[str, int], int] = defaultdict(int)
        self.requests: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                # the client may give up (timeout test)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/uniprotkb"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(h.path)
        q = dict(urllib.parse.parse_qsl(parts.query))
        self.requests.append(q)
        assert parts.path == "/uniprotkb/search"
        assert q["format"] == "tsv" and q["compressed"] == "true"
        query, size, offset = q["query"], int(q["size"]), int(q.get("cursor", 0))
        attempt = self.attempts[(query, offset)]
        self.attempts[(query, offset)] += 1
        fault = self.faults.get((query, offset, attempt))
        rows = self.datasets[query]

        if fault == "400":
            body = json.dumps({"messages": ["'ec' is not a valid search field"]}).encode()
            h.send_response(400)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        if fault in ("503", "429"):
            h.send_response(int(fault))
            if fault == "429":
                h.send_header("Retry-After", "7")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if fault == "slow":
            time.sleep(1.0)

        page = rows[offset : offset + size]
        body = gzip.compress(("\n".join([self.header, *page]) + "\n").encode())
        if fault == "badgzip":
            body = body[: len(body) // 2]  # a complete HTTP response holding a truncated gzip stream
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("X-Total-Results", str(self.total_override or len(rows)))
        h.send_header("X-UniProt-Release", self.release_by_page.get(offset, self.release))
        h.send_header("X-UniProt-Release-Date", "15-October-2025")
        nxt = offset + size
        if nxt < len(rows):
            link = dict(q, cursor=str(nxt))
            url = f"{self.base_url}/search?{urllib.parse.urlencode(link)}"
            h.send_header("Link", f'<{url}>; rel="next"')
        h.end_headers()
        if fault == "drop":
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        h.wfile.write(body)


def config(server: FakeUniProt | str, **kw) -> dict:
    cfg = {
        "base_url": server if isinstance(server, str) else server.base_url,
        "query": ENZYME_QUERY,
        "include_non_enzymes": False,
        "non_enzyme_query": NON_ENZYME_QUERY,
        "fields": [
            "accession",
            "ec",
            "sequence",
            "length",
            "protein_name",
            "organism_name",
            "ft_act_site",
            "ft_binding",
        ],
        "max_entries": None,
        "page_size": 10,
        "retries": 3,
        "backoff": 0.01,
        "timeout": 0.3,
    }
    cfg.update(kw)
    return cfg


def data_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return fh.read().splitlines()


def test_link_and_retry_after_parsing():
    link = '<https://rest.uniprot.org/uniprotkb/search?cursor=abc&size=500>; rel="next"'
    assert next_link(link) == "https://rest.uniprot.org/uniprotkb/search?cursor=abc&size=500"
    assert next_link(None) is None and next_link('<https://x>; rel="prev"') is None
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past


def test_download_survives_faults(tmp_path):
    faults = {
        (ENZYME_QUERY, 0, 0): "503",
        (ENZYME_QUERY, 10, 0): "drop",
        (ENZYME_QUERY, 10, 1): "429",
        (ENZYME_QUERY, 20, 0): "badgzip",
        (ENZYME_QUERY, 20, 1): "slow",
    }
    sleeps: list[float] = []
    with FakeUniProt(faults) as server:
        meta = download_uniprot(
            config(server), tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=sleeps.append
        )
    assert data_lines(tmp_path / "u.tsv.gz") == [HEADER, *ENZYMES]
    # Exponential backoff (0.01, 0.02 within one page) and the server's Retry-After for 429.
    assert sleeps == pytest.approx([0.01, 0.01, 7.0, 0.01, 0.02])
    on_disk = json.loads((tmp_path / "u.json").read_text())
    assert on_disk == meta
    assert meta["release"] == "2025_04" and meta["release_date"] == "15-October-2025"
    assert meta["entries"] == 23 and meta["queries"][0]["total_results"] == 23
    assert meta["queries"][0]["pages"] == 3 and meta["queries"][0]["retries"] == 5
    assert meta["queries"][0]["query"] == ENZYME_QUERY
    df = read_uniprot_tsv(tmp_path / "u.tsv.gz")
    assert df["accession"].tolist() == [f"P{i:05d}" for i in range(23)]
    assert {"protein_name", "organism", "length", "active_site", "binding_site"} <= set(df.columns)


def test_retries_exhausted_leave_nothing(tmp_path):
    faults = {(ENZYME_QUERY, 10, a): "503" for a in range(4)}
    sleeps: list[float] = []
    with (
        FakeUniProt(faults) as server,
        pytest.raises(DownloadError, match=r"giving up after 4 attempts; last error: HTTP 503"),
    ):
        download_uniprot(config(server), tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=sleeps.append)
    assert sleeps == pytest.approx([0.01, 0.02, 0.04])
    assert list(tmp_path.iterdir()) == []  # no data, no metadata, no temporary file


def test_total_results_mismatch_is_incomplete(tmp_path):
    with (
        FakeUniProt(total_override=30) as server,
        pytest.raises(DownloadError, match="got 23 entries, X-Total-Results says 30"),
    ):
        download_uniprot(config(server), tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=lambda s: None)
    assert list(tmp_path.iterdir()) == []


def test_max_entries_cap(tmp_path):
    with FakeUniProt() as server:
        meta = download_uniprot(
            config(server, max_entries=15), tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=lambda s: None
        )
        sizes = [int(r["size"]) for r in server.requests]
    assert data_lines(tmp_path / "u.tsv.gz") == [HEADER, *ENZYMES[:15]]
    assert sizes == [10, 5] and meta["entries"] == 15 and meta["max_entries"] == 15


def test_bad_query_fails_at_once(tmp_path):
    sleeps: list[float] = []
    with (
        FakeUniProt({(ENZYME_QUERY, 0, 0): "400"}) as server,
        pytest.raises(DownloadError, match="HTTP 400.*not a valid search field"),
    ):
        download_uniprot(config(server), tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=sleeps.append)
    assert sleeps == [] and list(tmp_path.iterdir()) == []


def test_non_enzymes_appended(tmp_path):
    with FakeUniProt() as server:
        meta = download_uniprot(
            config(server, include_non_enzymes=True),
            tmp_path / "u.tsv.gz",
            tmp_path / "u.json",
            sleep=lambda s: None,
        )
    assert data_lines(tmp_path / "u.tsv.gz") == [HEADER, *ENZYMES, *NON_ENZYMES]
    assert [q["query"] for q in meta["queries"]] == [ENZYME_QUERY, NON_ENZYME_QUERY]
    assert meta["entries"] == 27


def test_release_change_mid_download_is_an_error(tmp_path):
    with (
        FakeUniProt(release_by_page={20: "2025_05"}) as server,
        pytest.raises(DownloadError, match="release changed"),
    ):
        download_uniprot(config(server), tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=lambda s: None)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    cfg = config(f"http://127.0.0.1:{port}/uniprotkb", retries=1)
    with pytest.raises(DownloadError, match="giving up after 2 attempts"):
        download_uniprot(cfg, tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=lambda s: None)
    assert list(tmp_path.iterdir()) == []


def test_workflow_uniprot_source(tmp_path):
    """The download_uniprot and proteins rules, end to end against the local server."""
    repo = Path(__file__).resolve().parents[1]
    with FakeUniProt({(ENZYME_QUERY, 10, 0): "503"}) as server:
        uniprot = {k: v for k, v in config(server).items() if k != "timeout"}
        cfg = {"data": {"source": "uniprot", "uniprot": {**uniprot, "backoff": 0.0}}}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "results/data/proteins.tsv",
            "--snakefile",
            str(repo / "Snakefile"),  # noqa: E501
            "--directory",
            str(tmp_path / "run"),
            "--configfile",
            str(tmp_path / "c.yaml"),
            "--cores",
            "1",
        ]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = tmp_path / "run" / "results" / "data"
    proteins = read_tsv_table(data / "proteins.tsv")
    assert proteins["accession"].tolist() == [f"P{i:05d}" for i in range(23)]
    assert proteins["ec"].tolist()[:2] == ["1.1.1.0", "2.1.1.1"]
    meta = json.loads((data / "download" / "uniprot.json").read_text())
    assert meta["release"] == "2025_04" and meta["entries"] == 23 and meta["queries"][0]["retries"] == 1
    log = (tmp_path / "run" / "results" / "logs" / "data" / "download_uniprot.log").read_text()
    assert "HTTP 503" in log and "UniProt release 2025_04: 23 entries" in log


# -- the per-residue feature columns (concepts) -------------------------------------------------
def feature_response() -> tuple[str, list[str]]:
    """A recorded-shape response to the default fields: UniProt's TSV headers for every field
    (``Domain [FT]`` for ft_domain), and rows whose feature cells are UniProt's text
    (``COLUMN_TEXTS``), each column empty in one row as UniProt leaves it."""
    header = HEADER.split("\t") + [
        c.header for c in FEATURE_COLUMNS if c.column not in ("active_site", "binding_site")
    ]
    columns = [c.column for c in FEATURE_COLUMNS]
    rows = []
    for i in range(3):
        seq = "".join("ACDEFGHIKLMNPQRSTVWY"[(i + j) % 20] for j in range(200))
        cells = {c: ("" if k % 3 == i else COLUMN_TEXTS[c][0]) for k, c in enumerate(columns)}
        rows.append(
            "\t".join(
                [f"P9{i:04d}", "1.1.1.1", seq, "200", f"Enzyme {i}", "Homo sapiens (Human)"]
                + [cells[h] for h in ("active_site", "binding_site")]
                + [cells[c] for c in columns if c not in ("active_site", "binding_site")]
            )
        )
    return "\t".join(header), rows


def test_default_fields_bring_every_feature_column_as_uniprot_names_it(tmp_path):
    fields = validate_config({})["data"]["uniprot"]["fields"]
    assert [f for f in fields if f.startswith("ft_")] == [c.field for c in FEATURE_COLUMNS]
    header, rows = feature_response()
    with FakeUniProt(header=header, rows=rows) as server:
        download_uniprot(
            config(server, fields=fields), tmp_path / "u.tsv.gz", tmp_path / "u.json", sleep=lambda s: None
        )
        requested = server.requests[0]["fields"].split(",")
    assert requested == fields
    df = read_uniprot_tsv(tmp_path / "u.tsv.gz")
    for k, col in enumerate(FEATURE_COLUMNS):
        text, expected = COLUMN_TEXTS[col.column]
        for i in range(3):
            cell = df.loc[i, col.column]
            assert cell == ("" if k % 3 == i else text), (col.column, i)
            got = column_instances(cell, col, length=len(df.loc[i, "sequence"]))
            assert got == ([] if k % 3 == i else expected), (col.column, i)
