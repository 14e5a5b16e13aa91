"""UniProt REST download: the paginated ``search`` endpoint, gzip TSV, retries, atomic output.

Pages are requested with ``format=tsv&compressed=true&size=page_size``; the next page's URL
(with its cursor) comes from the ``Link: <...>; rel="next"`` response header. Each request
is retried with exponential backoff on HTTP 429 (``Retry-After`` honoured), 5xx, connection
errors, timeouts, truncated bodies and corrupt gzip; ``timeout`` bounds each socket wait and
``max_total_seconds`` the whole download (requests, retries, backoff and slowly trickling
bodies together), after which it stops with a DownloadError. The rows are written to a temporary
gzip file beside the target that is renamed only once the download is complete and checked:
row count equals ``X-Total-Results`` (or the ``max_entries`` cap) and the file re-reads as
valid gzip. ``X-UniProt-Release`` (and its date), queries, URLs and counts go in a JSON file
beside the data.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import gzip
import http.client
import logging
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kneurons.errors import DownloadError
from kneurons.io import atomic_path, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

USER_AGENT = "kneurons/0.1 (knowledge-neurons workflow; python urllib)"
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')

Sleep = Callable[[float], None]
Clock = Callable[[], float]
_CHUNK = 1 << 16


class Deadline:
    """The overall time limit of one download (``data.uniprot.max_total_seconds``; None = none).

    Every socket wait is capped by the time left, bodies are read in chunks with a check in
    between (a server that trickles bytes never trips a per-read timeout), and a backoff that
    would end past the limit is not slept.
    """

    def __init__(self, seconds: float | None, clock: Clock = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self.end = None if seconds is None else clock() + seconds

    def left(self) -> float:
        """Seconds left (inf without a limit)."""
        return float("inf") if self.end is None else self.end - self.clock()

    def expired_error(self, url: str, attempts: int, reason: str) -> DownloadError:
        return DownloadError(
            f"{url}: gave up after {attempts} attempt(s): the download exceeded "
            f"data.uniprot.max_total_seconds={self.seconds:g} s; last error: {reason}"
        )


class _DeadlineExceeded(Exception):
    """Raised inside a request when the overall deadline passes while reading a body."""


def next_link(link_header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, or None on the last page."""
    if not link_header:
        return None
    m = _LINK_NEXT_RE.search(link_header)
    return m.group(1) if m else None


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return max(0.0, (when - _dt.datetime.now(_dt.UTC)).total_seconds())


def search_url(base_url: str, query: str, fields: list[str], size: int) -> str:
    """First-page URL of the paginated search endpoint."""
    params = {
        "query": query,
        "format": "tsv",
        "compressed": "true",
        "fields": ",".join(fields),
        "size": str(size),
    }
    return f"{base_url.rstrip('/')}/search?{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}"


def _with_size(url: str, size: int) -> str:
    """``url`` with its ``size`` parameter replaced (for the last, capped page)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "size"]
    query.append(("size", str(size)))
    return urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode(query, quote_via=urllib.parse.quote))
    )


def _decode(body: bytes) -> str:
    """gunzip (when gzip) and decode a page body; corrupt or truncated gzip raises."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode("utf-8")


_RETRYABLE = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    UnicodeDecodeError,
)


def _read_body(resp: http.client.HTTPResponse, deadline: Deadline) -> bytes:
    """The whole body, stopping when the overall deadline passes.

    ``read1`` returns whatever one socket read brings, so the check runs even while a server
    trickles bytes slower than a chunk but faster than the socket timeout.
    """
    chunks: list[bytes] = []
    while block := resp.read1(_CHUNK):
        chunks.append(block)
        if deadline.left() <= 0:
            raise _DeadlineExceeded(f"body still arriving after {sum(map(len, chunks))} bytes")
    body = b"".join(chunks)
    if resp.length:  # the connection closed before Content-Length bytes arrived
        raise http.client.IncompleteRead(body, resp.length)
    return body


def fetch_page(
    url: str,
    retries: int,
    backoff: float,
    timeout: float,
    sleep: Sleep = time.sleep,
    deadline: Deadline | None = None,
) -> tuple[str, http.client.HTTPMessage, int]:
    """GET one page with retries; return ``(text, headers, retries_used)``.

    Waits ``backoff * 2**attempt`` seconds between attempts, or the server's ``Retry-After``
    on 429/503 when it sends one. Client errors other than 429 fail at once (retrying a bad
    query cannot help); the message carries UniProt's error text. With a ``deadline`` no
    socket wait, body or backoff runs past it.
    """
    deadline = deadline or Deadline(None)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    for attempt in range(retries + 1):
        wait = backoff * (2**attempt)
        try:
            left = deadline.left()
            if left <= 0:
                raise _DeadlineExceeded("no time left before the request")
            with urllib.request.urlopen(request, timeout=min(timeout, left)) as resp:
                body = _read_body(resp, deadline)
                headers = resp.headers
            return _decode(body), headers, attempt
        except _DeadlineExceeded as exc:
            raise deadline.expired_error(url, attempt + 1, str(exc)) from None
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read()[:500].decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):  # the error body is a nicety only
                detail = ""
            if exc.code != 429 and not 500 <= exc.code < 600:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason} {detail}".strip()) from None
            ra = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
            wait = ra if ra is not None else wait
            reason = f"HTTP {exc.code} {exc.reason}"
        except _RETRYABLE as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except OSError as exc:  # other socket-level failures (reset, refused, ...)
            reason = f"{type(exc).__name__}: {exc}"
        if attempt == retries:
            raise DownloadError(f"{url}: giving up after {retries + 1} attempts; last error: {reason}")
        if wait >= deadline.left():
            raise deadline.expired_error(url, attempt + 1, reason)
        log.warning("UniProt request failed (%s); retry %d/%d in %.3g s", reason, attempt + 1, retries, wait)
        sleep(wait)
    raise AssertionError("unreachable")


def download_query(
    query: str,
    cfg: dict[str, Any],
    emit: Callable[[str], None],
    header: list[str] | None,
    sleep: Sleep = time.sleep,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Download every page of one query, calling ``emit`` per TSV line.

    ``header`` is the header expected from an earlier query; with None (the first query)
    the header line is emitted first. The returned dict carries the header, counts, URLs
    and release headers.
    """
    cap = cfg.get("max_entries")
    size = min(cfg["page_size"], cap) if cap else cfg["page_size"]
    url: str | None = search_url(cfg["base_url"], query, cfg["fields"], size)
    info: dict[str, Any] = {"query": query, "url": url, "pages": 0, "entries": 0, "retries": 0}
    releases: set[str] = set()
    while url:
        text, headers, used = fetch_page(url, cfg["retries"], cfg["backoff"], cfg["timeout"], sleep, deadline)
        info["pages"] += 1
        info["retries"] += used
        rel = headers.get("X-UniProt-Release")
        if rel:
            releases.add(rel)
            info.setdefault("release", rel)
            info.setdefault("release_date", headers.get("X-UniProt-Release-Date"))
        if len(releases) > 1:
            raise DownloadError(
                f"UniProt release changed during the download ({sorted(releases)}); run it again"
            )
        if "total_results" not in info and headers.get("X-Total-Results") is not None:
            info["total_results"] = int(headers["X-Total-Results"])
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise DownloadError(f"{url}: empty page (no TSV header)")
        page_header = lines[0].split("\t")
        if header is None:
            header = page_header
            emit(lines[0])
        elif page_header != header:
            raise DownloadError(f"{url}: TSV header changed between pages: {page_header} vs {header}")
        for row in lines[1:]:
            if len(row.split("\t")) != len(header):
                raise DownloadError(
                    f"{url}: row with {len(row.split(chr(9)))} fields, header has {len(header)}"
                )
            if cap and info["entries"] >= cap:
                break
            emit(row)
            info["entries"] += 1
        log.info("UniProt %r: page %d, %d entries so far", query, info["pages"], info["entries"])
        if cap and info["entries"] >= cap:
            break
        url = next_link(headers.get("Link"))
        if url and cap:
            url = _with_size(url, min(cfg["page_size"], cap - info["entries"]))
    info["header"] = header
    expected = info.get("total_results")
    if expected is not None:
        expected = min(expected, cap) if cap else expected
        if info["entries"] != expected:
            raise DownloadError(
                f"UniProt {query!r}: got {info['entries']} entries, X-Total-Results says {expected}; "
                "the download is incomplete"
            )
    return info


def download_uniprot(
    cfg: dict[str, Any],
    out_path: str | Path,
    meta_path: str | Path,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> dict[str, Any]:
    """Download the configured UniProt queries into one gzip TSV (UniProt headers) + metadata JSON.

    ``cfg`` is the ``data.uniprot`` config section. The enzyme query always runs; the
    non-enzyme query when ``include_non_enzymes``. Nothing is left at ``out_path`` unless
    every query completed and the gzip file verified. The whole download stops with a
    DownloadError once ``max_total_seconds`` (by ``clock``) have passed.
    """
    deadline = Deadline(cfg.get("max_total_seconds"), clock)
    queries = [cfg["query"]] + ([cfg["non_enzyme_query"]] if cfg.get("include_non_enzymes") else [])
    infos: list[dict[str, Any]] = []
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        with gzip.open(tmp, "wt", encoding="utf-8", newline="") as gz:
            header: list[str] | None = None
            for q in queries:
                info = download_query(q, cfg, lambda line: gz.write(line + "\n"), header, sleep, deadline)
                header = info.pop("header")
                infos.append(info)
        releases = {i.get("release") for i in infos} - {None}
        if len(releases) > 1:
            raise DownloadError(f"UniProt release differs between queries: {sorted(releases)}")
        expected_rows = sum(i["entries"] for i in infos)
        try:
            with gzip.open(tmp, "rt", encoding="utf-8") as check:
                n_lines = sum(1 for _ in check)
        except (OSError, EOFError, zlib.error) as exc:
            raise DownloadError(f"{out_path}: written gzip file does not re-read ({exc})") from None
        if n_lines != expected_rows + 1:
            raise DownloadError(f"{out_path}: wrote {n_lines - 1} rows, expected {expected_rows}")
    meta = {
        "source": "uniprot",
        "release": next(iter(releases), None),
        "release_date": next((i.get("release_date") for i in infos if i.get("release_date")), None),
        "downloaded_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "fields": list(cfg["fields"]),
        "max_entries": cfg.get("max_entries"),
        "queries": infos,
        "entries": expected_rows,
        "file": out_path.name,
        "sha256": sha256_file(out_path),
    }
    try:
        write_json_atomic(meta_path, meta)
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    return meta
