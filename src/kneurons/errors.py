"""Errors the workflow reports to users: one class per kind, each message says what and where."""


class KneuronsError(Exception):
    """Base class of every error the workflow raises on purpose."""


class InputError(KneuronsError, ValueError):
    """Bad input data: the message names the file, line or value."""


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
