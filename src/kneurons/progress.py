"""Progress of long jobs (fine-tuning, scoring, ablation, SAE training, class suppression), for the
job's log and for the console.

A long step logs its progress at INFO with ``extra=progress_extra()``: what is done of how much,
the rate and the time left (``Progress`` for a count of sequences, batches or masks; the training
loop writes its own step lines the same way). The log file gets every line. The console (the job's
stderr, which Snakemake shows beside the rule's message) gets, besides warnings and errors, the
progress lines at most one per ``CONSOLE_EVERY`` seconds (``ConsoleProgress``), those marked
``always`` (an epoch's result, a finished layer) every time, each prefixed with the job it comes
from; the first one also names the job's log file. Torch-free.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

#: Seconds between two progress lines of one job on the console (the log file gets every line).
CONSOLE_EVERY = 10.0
#: The ``LogRecord`` attribute that marks a progress line: ``"throttled"`` or ``"always"``.
PROGRESS_KEY = "progress"
CONSOLE_FORMAT = "%(asctime)s [%(job)s] %(message)s"
CONSOLE_DATE = "%H:%M:%S"

log = logging.getLogger(__name__)


def progress_extra(always: bool = False) -> dict[str, str]:
    """``extra`` for a progress line: shown on the console at most every ``CONSOLE_EVERY`` seconds,
    or every time (``always``: a result worth seeing, such as an epoch's validation accuracy)."""
    return {PROGRESS_KEY: "always" if always else "throttled"}


def eta_text(seconds: float) -> str:
    """A duration as ``h:mm:ss`` (``0:01:05``); ``?`` when not finite (no rate measured yet)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress of ``total`` units of work (``unit``: sequences, batches, ...): ``step(n)`` counts
    ``n`` more done and logs, at most every ``every`` seconds and once at the end, what is done,
    the rate and the time left (``activation layer 3: 96/256 sequences, 12.1 sequences/s, 8 s,
    ETA 0:00:13``)."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str = "sequences",
        every: float = 10.0,
        logger: logging.Logger | None = None,
    ):
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.log = logger or log
        self.done = 0
        self.start = self.last = time.monotonic()

    def step(self, n: int = 1) -> None:
        """Count ``n`` more units done; log when ``every`` seconds have passed or all are done."""
        self.done += n
        now = time.monotonic()
        finished = self.done >= self.total
        if now - self.last >= self.every or finished:
            elapsed = now - self.start
            rate = self.done / max(elapsed, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            self.log.info(
                "%s: %d/%d %s, %.3g %s/s, %.0f s, ETA %s",
                self.what,
                self.done,
                self.total,
                self.unit,
                rate,
                self.unit,
                elapsed,
                eta_text(left),
                extra=progress_extra(always=finished),
            )
            self.last = now


def progress_callback(
    what: str, unit: str = "batches", logger: logging.Logger | None = None
) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback (the ablation engine's, ``evaluate_masks``) that logs as
    ``Progress`` does, its clock started now."""
    state = Progress(what, 0, unit, logger=logger)

    def callback(done: int, total: int) -> None:
        state.total = total
        state.step(done - state.done)

    return callback


class ConsoleProgress(logging.Filter):
    """What of a job's logging reaches the console: warnings and errors, and its progress lines, the
    ``throttled`` ones at most one per ``every`` seconds. Each record passed gets ``job`` (the job's
    name, for ``CONSOLE_FORMAT``); the first progress line also names the job's log file."""

    def __init__(self, job: str, log_path: str, every: float = CONSOLE_EVERY):
        super().__init__()
        self.job, self.log_path, self.every = job, log_path, every
        self.last = -math.inf
        self.named_log = False

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 (logging's name)
        kind: Any = getattr(record, PROGRESS_KEY, None)
        if record.levelno < logging.WARNING:
            if kind is None:
                return False
            now = time.monotonic()
            if kind != "always" and now - self.last < self.every:
                return False
            self.last = now
            if not self.named_log:
                self.named_log = True
                record.job = f"{self.job}; every line in {self.log_path}"
                return True
        record.job = self.job
        return True


class ConsoleFormatter(logging.Formatter):
    """Progress lines as ``HH:MM:SS [job] message``, warnings and errors with their level too."""

    def __init__(self) -> None:
        super().__init__(CONSOLE_FORMAT, CONSOLE_DATE)

    def format(self, record: logging.LogRecord) -> str:  # noqa: A003 (logging's name)
        if not hasattr(record, "job"):  # a record that did not pass ConsoleProgress
            record.job = "kneurons"
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, rest = text.partition(" ")
            return f"{stamp} {record.levelname} {rest}"
        return text
