"""Logging for the data stages' Snakemake scripts: to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys

from kneurons.jobs.signals import exit_on_sigterm


def script_logging(log_path: str, level: int = logging.INFO) -> logging.Logger:
    """Send log records to ``log_path`` and stderr; log an uncaught exception before exiting,
    so the rule's log file says why the job failed; turn SIGTERM into a clean exit."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    for handler in (logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        root.addHandler(handler)

    def hook(exc_type, exc, tb):
        logging.getLogger("kneurons").error("%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))

    sys.excepthook = hook
    exit_on_sigterm()  # a killed job removes its temporary files
    return logging.getLogger("kneurons")
