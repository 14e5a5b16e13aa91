"""Shared checks of the table readers: every failure is an InputError naming the file (and line)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.errors import InputError


def read_tsv_table(path: str | Path) -> pd.DataFrame:
    """Read a contract table (proteins/labels/split .tsv) with every column as text.

    Labels such as ``1`` or ``3.4`` must stay strings, and empty EC cells must stay empty
    (not NaN), so later stages should read these tables through this function.
    """
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def read_tsv(
    path: str | Path,
    what: str,
    required: Sequence[str],
    *,
    text: bool = False,
    dtype: Mapping[str, Any] | None = None,
    keep_default_na: bool = True,
    numeric: Iterable[str] = (),
) -> pd.DataFrame:
    """Read a TSV the way its writer meant it and check it: ``required`` columns, ``numeric`` columns.

    ``text`` reads every column as a string with empty cells kept empty (contract tables);
    otherwise ``dtype`` and ``keep_default_na`` go to ``pandas.read_csv`` unchanged, so a
    reader returns exactly the frame its stage read before the checks existed.
    """
    path = Path(path)
    try:
        if text:
            df = read_tsv_table(path)
        else:
            df = pd.read_csv(path, sep="\t", dtype=dtype, keep_default_na=keep_default_na)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found ({what})") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file, expected {what} with columns {list(required)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable {what} ({exc})") from None
    require_columns(df, path, what, required)
    for col in numeric:
        require_numeric(df, path, col)
    return df


def require_columns(df: pd.DataFrame, path: str | Path, what: str, required: Sequence[str]) -> None:
    """Raise InputError naming ``path`` unless ``df`` has every column of ``required``."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: {what} lacks column(s) {missing}")


def require_numeric(df: pd.DataFrame, path: str | Path, col: str) -> None:
    """Raise InputError naming the file and line of the first value of ``col`` that is not a number."""
    if col not in df.columns or pd.api.types.is_numeric_dtype(df[col]):
        return
    values = df[col]
    present = values.notna() & (values.astype(str).str.strip() != "")
    bad = present & pd.to_numeric(values.where(present), errors="coerce").isna()
    if bad.any():
        row = int(df.index[bad.to_numpy()][0])
        raise InputError(
            f"{path}: line {row + 2}: column {col!r}: {df[col].iloc[row]!r} is not a number"
        )  # the header is line 1


def read_json(path: str | Path, what: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON object written by ``write_json_atomic``, with its ``required`` keys."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found ({what})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({what}: {exc})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: {what} must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise InputError(f"{path}: {what} lacks key(s) {missing}")
    return obj
