"""Score tables (parquet): ``scores/{method}/layers{first}-{last}.parquet`` per job (a chunk of
consecutive layers), ``scores/{method}.parquet`` gathered.

The provenance (method, checkpoint sha256, backbone weights' sha256, scoring subset, settings,
the part's ``layers``) travels in the parquet schema metadata under ``METADATA_KEY`` as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.errors import InputError
from kneurons.io import atomic_path
from kneurons.vocabulary import MODULE_TYPES

#: Column order of every score table; ``label`` is NA for unconditional rows, ``seed`` NA except for random.
SCORE_COLUMNS: list[str] = ["method", "layer", "module", "neuron", "label", "seed", "score"]

#: Parquet schema-metadata key of the score-table provenance.
METADATA_KEY = b"kneurons.scores"

#: Provenance key (in score tables, ``best.pt``'s meta and run_metadata.json) of the backbone
#: weights fine-tuning started from: the weights file's sha256, or ``random-init:<seed>``.
WEIGHTS_KEY = "weights_sha256"
#: The metadata key of an attribution table's completeness records, one per layer and module
#: (``kneurons.scoring.completeness``); the plan reads the steps they record.
COMPLETENESS_KEY = "completeness"

_NUMERIC = ("layer", "neuron", "score")


def write_score_table(df: pd.DataFrame, path: str | Path, meta: dict[str, Any]) -> None:
    """Write a score table as parquet atomically, with ``meta`` as JSON under the key ``kneurons.scores``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df[SCORE_COLUMNS], preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[METADATA_KEY] = json.dumps(meta, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(md)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _decode_metadata(path: Path, metadata: dict[bytes, bytes] | None) -> dict[str, Any]:
    raw = (metadata or {}).get(METADATA_KEY)
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{path}: unreadable score-table metadata ({exc})") from None
    return meta if isinstance(meta, dict) else {}


def score_table_metadata(path: str | Path) -> dict[str, Any]:
    """The provenance stored in a score table's parquet metadata (``{}`` when it has none).

    Reads the footer only, not the data.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for missing, truncated or foreign files
        raise InputError(f"{path}: not a readable parquet score table ({exc})") from exc
    return _decode_metadata(path, schema.metadata)


def read_score_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a score table and its metadata (``{}`` if absent): ``label`` as string, ``seed`` as nullable int.

    Raises InputError naming the file when it is not parquet, lacks a column of
    ``SCORE_COLUMNS`` or holds a non-numeric layer, neuron or score.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for missing, truncated or foreign files
        raise InputError(f"{path}: not a readable parquet score table ({exc})") from exc
    meta = _decode_metadata(path, table.schema.metadata)
    df = table.to_pandas()
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: score table lacks column(s) {missing}")
    wrong = [c for c in _NUMERIC if not pd.api.types.is_numeric_dtype(df[c])]
    if wrong:
        raise InputError(f"{path}: score table column(s) {wrong} must be numeric, not {df[wrong[0]].dtype}")
    df["label"] = df["label"].astype("string")
    df["seed"] = df["seed"].astype("Int64")
    return df, meta


def _part_layers(meta: dict[str, Any]) -> list[int]:
    """The layers a part table holds, from its provenance: ``layers``, or ``layer`` (a part written by
    the one-layer-per-job code before it); none when it records neither."""
    if "layers" in meta:
        return [int(layer) for layer in meta["layers"]]
    return [int(meta["layer"])] if "layer" in meta else []


def gather_score_tables(paths: Sequence[str | Path]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Concatenate the part tables of one method (one layer or a chunk of layers each) in one order;
    their checkpoint, subset and settings must agree, and no layer may be in two parts."""
    frames, metas = [], []
    for p in paths:
        df, meta = read_score_table(p)
        frames.append(df)
        metas.append(meta)
    if not frames:
        raise InputError("no score tables to gather")
    keys = ("method", "checkpoint_sha256", WEIGHTS_KEY, "subset", "settings")
    ref = {k: metas[0].get(k) for k in keys}
    for p, meta in zip(paths, metas, strict=True):
        for k in keys:
            if meta.get(k) != ref[k]:
                raise InputError(
                    f"{p}: {k} differs from {paths[0]} ({meta.get(k)!r} vs {ref[k]!r}); re-run the stale jobs"
                )
    df = pd.concat(frames, ignore_index=True)
    df["_module"] = df["module"].map({t: i for i, t in enumerate(MODULE_TYPES)})
    df = df.sort_values(["label", "seed", "layer", "_module", "neuron"], na_position="first", kind="stable")
    layers = sorted(layer for m in metas for layer in _part_layers(m))
    if len(set(layers)) != len(layers):
        raise InputError(f"layer tables overlap: layers {layers}")
    meta = {**ref, "layers": layers}
    records = [r for m in metas for r in m.get(COMPLETENESS_KEY) or []]
    if records:
        meta[COMPLETENESS_KEY] = sorted(records, key=lambda r: int(r["layer"]))
    return df.reset_index(drop=True)[SCORE_COLUMNS], meta
