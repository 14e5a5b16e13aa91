"""Signals in workflow jobs (torch-free, so every script can use it, data steps included)."""

from __future__ import annotations

import logging
import signal
import threading


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit(143)`` in a workflow script, so that clean-up code runs.

    Snakemake stopping a job, a SLURM time limit or preemption, and ``kill`` send SIGTERM,
    whose default action ends Python at once: ``finally`` blocks and ``atomic_path`` would not
    remove their temporary files. Only the main thread can install a handler; elsewhere this
    does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame) -> None:
        logging.getLogger("kneurons").error(
            "terminated by signal %d; cleaning up (nothing partial is kept)", signum
        )
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
