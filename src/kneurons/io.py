"""Atomic file output: nothing partial is ever left where a later step would take it as complete."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Temporary names: the prefix, _TEMP_LENGTH characters from this alphabet (as tempfile's), the suffix.
_TEMP_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"
_TEMP_LENGTH = 8
_TEMP_NAME = f"[{_TEMP_ALPHABET}]{{{_TEMP_LENGTH}}}"
_UMASK_RE = re.compile(r"^Umask:\s*([0-7]+)$", re.MULTILINE)


def current_umask() -> int:
    """The process's file-mode creation mask, read without changing it where the OS allows.

    Linux states it in ``/proc/self/status``; elsewhere the only way is ``os.umask``, which
    must set a mask to return the old one: a file another thread creates in that instant
    would get the temporary mask (0o022, a common default), so it is restored at once.
    """
    try:
        m = _UMASK_RE.search(Path("/proc/self/status").read_text())
    except OSError:
        m = None
    if m:
        return int(m.group(1), 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


def remove_stale_temporaries(target: str | os.PathLike, suffix: str = "") -> list[Path]:
    """Delete the leftover temporary files of ``atomic_path(target)`` (exactly its own names)."""
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.{_TEMP_NAME}{re.escape(suffix)}\.tmp")
    removed = []
    try:
        candidates = list(target.parent.iterdir())
    except OSError:
        return removed
    for p in candidates:
        if pattern.fullmatch(p.name):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic.
    On any exception the temporary file is removed and ``path`` is left untouched.
    Temporary files of ``path`` left by a killed earlier writer (SIGKILL runs no cleanup)
    are removed first; only one job writes a given output at a time.
    The file gets the mode a plain ``open`` would give it (``0o666`` less the umask), not the
    private 0o600 it is created with, so that a group sharing the results directory can read them.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target, suffix)
    # The name is known before the file exists, and the file is made inside the ``try``: a SIGTERM
    # turned into SystemExit (``exit_on_sigterm``) just after creation still removes it, which
    # ``tempfile.mkstemp`` (it returns the name only once the file exists) could not guarantee.
    tmp_path = _temporary_name(target, suffix)
    try:
        while not _created(tmp_path):
            tmp_path = _temporary_name(target, suffix)
        yield tmp_path
        # The writer may have replaced the file: set the mode on whatever is there now.
        os.chmod(tmp_path, new_file_mode())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _temporary_name(target: Path, suffix: str) -> Path:
    """A temporary name beside ``target`` that ``remove_stale_temporaries`` recognises."""
    random = "".join(secrets.choice(_TEMP_ALPHABET) for _ in range(_TEMP_LENGTH))
    return target.parent / f".{target.name}.{random}{suffix}.tmp"


def _created(path: Path) -> bool:
    """Create ``path`` empty with mode 0o600 (as ``mkstemp``); False if it already exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_table_atomic(df, path: str | os.PathLike) -> None:
    """Write a pandas DataFrame as TSV (``.tsv``) or parquet (``.parquet``) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, sep="\t", index=False)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_output_dir(path: str | os.PathLike, key: str = "results") -> Path:
    """Raise ConfigError unless directory ``path`` exists or can be created, and is writable.

    Run before a workflow starts, so that a results path under a regular file or on a
    read-only file system is one clear message naming the config key, not a traceback
    from deep inside the first job.
    """
    from kneurons.errors import ConfigError

    path = Path(path).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}: {path} cannot be created: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}: {path} cannot be created or written: {existing} is not writable")
    return path
