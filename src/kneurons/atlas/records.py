"""What the atlas's data is made of: JSON-ready table rows and figures as data URIs."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def png_uri(path: str | Path) -> str:
    """A png file as a ``data:`` URI (the page opens from disk and loads nothing)."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NaN and NA become null."""
    return [
        {k: (None if pd.isna(v) else v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
        for r in df.astype(object).to_dict("records")
    ]
