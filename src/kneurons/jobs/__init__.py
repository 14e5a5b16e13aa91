"""The job seam: ``start(snakemake)``, what every workflow script calls first, and the run_*_job adapters.

``start`` gives a job its log file, writes an uncaught error into that log and on stderr (an
expected one, bad input or configuration, as one last line; anything else with its
traceback), turns SIGTERM into a clean exit, and, for model jobs, sets torch's thread count
and seeds every generator. Torch-free at import: data jobs must not load torch, so it is imported only
when a model job asks for it.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from kneurons.errors import EXPECTED_ERRORS
from kneurons.jobs.signals import exit_on_sigterm
from kneurons.progress import ConsoleFormatter, ConsoleProgress

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


@dataclass
class Job:
    """A started workflow job: its settings (the rule's params), logger, threads and device name."""

    params: dict[str, Any]
    log: logging.Logger
    threads: int = 1
    _device: Any = field(default=None, repr=False)

    @property
    def device(self):
        """The torch device of ``params['device']`` (``auto`` resolved on the machine the job runs on)."""
        if self._device is None:
            from kneurons.model.runtime import resolve_device

            self._device = resolve_device(self.params["device"])
        return self._device


def report_error(log: logging.Logger, exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """Log an uncaught error as the job's last words.

    An expected error (``errors.EXPECTED_ERRORS``: bad input, configuration, a failed download,
    each message naming what and where) is one line, ``<ErrorClass>: <message>``, with no traceback:
    that line is the last thing the job prints and the last line of its log (the class is the
    public one of ``EXPECTED_ERRORS``, ``InputError`` for its subclasses). Anything else is
    a bug or an unforeseen failure and keeps its traceback.
    """
    if issubclass(exc_type, EXPECTED_ERRORS):
        # the public class a user can look up (InputError), not an internal subclass
        kind = next(c for c in EXPECTED_ERRORS if issubclass(exc_type, c))
        log.error("%s: %s", kind.__name__, exc)
    else:
        log.error("%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))


def setup_logging(
    log_path: str, name: str = "kneurons", level: int = logging.INFO, job: str | None = None
) -> logging.Logger:
    """Log everything to ``log_path`` (the rule's log, rewritten); to stderr, which Snakemake shows on
    the console, warnings and errors, and the progress of long steps at most every few seconds
    (``kneurons.progress``), each line prefixed with ``job`` (default: ``name``). An uncaught exception
    is logged by ``report_error`` before the job exits non-zero, so the rule's log (and the console)
    end with why it failed."""
    root = logging.getLogger()
    root.setLevel(level)
    file_handler = logging.FileHandler(log_path, mode="w")
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(ConsoleProgress(job or name, str(log_path)))
    console.setFormatter(ConsoleFormatter())
    for handler in (file_handler, console):
        root.addHandler(handler)
    log = logging.getLogger(name)

    def hook(exc_type, exc, tb):
        report_error(log, exc_type, exc, tb)

    sys.excepthook = hook
    return log


def job_label(snakemake: Any) -> str:
    """The job's name on the console: its rule and wildcards (``finetune rep=replicates/1/``; an
    empty wildcard, the main run's ``rep``, left out)."""
    rule = getattr(snakemake, "rule", None) or "kneurons"
    wildcards = getattr(snakemake, "wildcards", None)
    items = list(wildcards.items()) if hasattr(wildcards, "items") else []
    return " ".join([rule, *(f"{k}={v}" for k, v in items if str(v))])


def start(snakemake: Any, model: bool = False) -> Job:
    """Start the job of a workflow script: logging, error hook, SIGTERM, and for a ``model``
    job torch's thread count (``snakemake.threads``) and seeding from ``params['seed']``.

    Returns the ``Job`` whose ``params`` are the rule's settings (built by ``kneurons.settings``).
    """
    name = f"kneurons.{snakemake.rule}" if getattr(snakemake, "rule", None) else "kneurons"
    log = setup_logging(snakemake.log[0], name, job=job_label(snakemake))
    exit_on_sigterm()  # SIGTERM (Snakemake, SLURM) -> clean exit: no temporary files left
    params = dict(snakemake.params.items())
    threads = max(1, int(snakemake.threads))
    if model:
        import torch

        from kneurons.model.runtime import seed_everything

        torch.set_num_threads(threads)
        if "seed" in params:
            seed_everything(params["seed"])
    return Job(params=params, log=log, threads=threads)
