"""Errors the workflow reports to users: one class per kind, each message says what and where."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


class KneuronsError(Exception):
    """Base class of every error the workflow raises on purpose."""


class InputError(KneuronsError, ValueError):
    """Bad input data: the message names the file, line or value."""


class LabelPolicyError(InputError):
    """No protein, or fewer classes than needed, left after the label policies; ``dropped`` holds
    the removed proteins and why (the ``data/dropped.tsv`` rows), for the user to read."""

    def __init__(self, message: str, dropped: pd.DataFrame) -> None:
        super().__init__(message)
        self.dropped = dropped


class ConfigError(KneuronsError, ValueError):
    """Invalid configuration: the message names the key."""


class ModelError(KneuronsError, RuntimeError):
    """A model or checkpoint cannot be built or loaded."""


class DownloadError(KneuronsError, RuntimeError):
    """A download failed after its retries."""


#: Errors that end a job with their one-line message and no traceback: they come from what the
#: user gave (input files, configuration) or from the network, and say what and where. A
#: ModelError keeps its traceback: some are raised by internal misuse (an unknown module, a
#: resume point the model lacks), where the traceback is what finds the bug.
EXPECTED_ERRORS: tuple[type[KneuronsError], ...] = (InputError, ConfigError, DownloadError)
