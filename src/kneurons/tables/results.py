"""Result files read by the figures: statistics tables, characterisation tables, training outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.errors import InputError
from kneurons.io import write_json_atomic, write_table_atomic
from kneurons.tables.base import read_json, read_tsv

#: ``stats/{name}.tsv``: the columns its figures and readers rely on.
STATS_REQUIRED: dict[str, tuple[str, ...]] = {
    "curves": ("method", "scope", "scope_name", "mode", "f", "accuracy"),
    "summary": ("method", "scope", "scope_name", "mode", "f_threshold", "full_accuracy", "keep_accuracy"),
    "random_gap": ("method", "scope", "scope_name", "mode", "auc_gap", "ci_lo", "ci_hi"),
    "paired_tests": ("method", "scope", "scope_name", "mode", "f", "gap", "p_value", "p_adj"),
    "faithfulness": (
        "method",
        "scope",
        "scope_name",
        "mode",
        "fill",
        "metric",
        "cpr_method",
        "cpr_random",
        "cpr_gap",
        "ci_lo",
        "ci_hi",
        "cmd_gap",
    ),
    "density": ("method", "level", "layer", "module", "count", "enrichment", "p_enriched", "q_enriched"),
    "stability": ("method", "level", "module", "k_fraction", "replicate_a", "replicate_b", "jaccard"),
    "compactness": (
        "layer",
        "method",
        "comparison",
        "fill",
        "estimate",
        "ci_lo",
        "ci_hi",
        "p_value",
        "p_floor",
        "gap_fraction",
        "gap_directions",
    ),
    # features/stats/sae_quality.tsv (kneurons.stats.sae_quality.QUALITY_COLUMNS)
    "sae_quality": ("replicate", "layer", "format", "fvu_own", "loss_recovered", "fits", "reason"),
}
_STATS_NUMERIC: dict[str, tuple[str, ...]] = {
    "curves": ("f", "accuracy"),
    "summary": ("f_threshold", "full_accuracy"),
    "random_gap": ("auc_gap", "ci_lo", "ci_hi"),
    "paired_tests": ("f", "gap", "p_value", "p_adj"),
    "faithfulness": ("cpr_method", "cpr_random", "cpr_gap", "ci_lo", "ci_hi", "cmd_gap"),
    "density": ("count", "enrichment", "p_enriched", "q_enriched"),
    "stability": ("k_fraction", "jaccard", "random_lo", "random_hi", "spearman"),
    "compactness": ("estimate", "ci_lo", "ci_hi", "p_value", "p_floor", "gap_fraction", "gap_directions"),
    "sae_quality": ("replicate", "layer", "fvu_own"),
}
_STATS_DTYPES = {
    "fill": str,
    "metric": str,
    "format": str,
    "source": str,
    "input_point": str,
    "activation_scale": str,
    "reason": str,
    "scope_name": str,
    "module": str,
    "method": str,
    "label": str,
    "replicate_a": str,
    "replicate_b": str,
    "comparison": str,
    "basis": str,
    "directions": str,
    "note": str,
}

#: ``characterise/{name}``: its reader's dtypes and required columns.
CHARACTERISE_TABLES: dict[str, tuple[dict[str, Any] | None, tuple[str, ...]]] = {
    "class_neurons": ({"label": str}, ("label", "layer", "module", "neuron")),
    "class_overlap": ({"class_a": str, "class_b": str}, ("class_a", "class_b", "jaccard")),
    "class_suppression": (
        {"suppressed": str, "evaluated": str},
        ("suppressed", "evaluated", "recall_change"),
    ),
    "neurons": ({"top_class": str, "module": str}, ("rank", "layer", "module", "neuron")),
    "pfm": (None, ("layer", "module", "neuron")),
    "windows": (
        {"module": str, "accession": str, "label": str, "window": str},
        ("layer", "module", "neuron", "accession", "label", "center", "value", "window"),
    ),
    "window_activations": (
        {"module": str, "accession": str, "residue": str},
        ("layer", "module", "neuron", "accession", "center", "position", "response"),
    ),
    "class_specificity": ({"class": str}, ("class", "n_neurons", "drop_own", "drop_other")),
}

#: ``model/training_curve.tsv`` columns the figure reads.
CURVE_REQUIRED = ("epoch", "train_loss")


def write_result_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a statistics or characterisation table (TSV) atomically."""
    write_table_atomic(df, path)


def write_stats_tables(frames: dict[str, pd.DataFrame], out: dict[str, str | Path]) -> None:
    """Write every ``frames[name]`` to ``out[name]`` (``stats/{name}.tsv``)."""
    for name, df in frames.items():
        write_table_atomic(df, out[name])


def read_stats_table(path: str | Path, name: str) -> pd.DataFrame:
    """Read ``stats/{name}.tsv`` (curves, summary, random_gap, paired_tests, faithfulness, density,
    stability, compactness; the SAE features' curve tables alike, and their ``sae_quality``).

    Names stay strings and ``layer`` / ``seed`` nullable ints, as the statistics wrote them;
    compactness's basis sizes are nullable ints (an older table's ``reached_*`` flags booleans).
    The same-site bases' tables (``stats/bases_{curves,summary,random_gap,faithfulness}.tsv``) read
    as their kind: ``read_stats_table(path, "curves")`` and so on.
    """
    df = read_tsv(
        path,
        f"statistics table '{name}'",
        STATS_REQUIRED[name],
        dtype=_STATS_DTYPES,
        numeric=_STATS_NUMERIC[name],
    )
    for col in ("layer", "seed", "n_neurons", "n_features", "n_other", "best_other_layer", "n_tokens"):
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    for col in ("reached_neurons", "reached_features", "fits"):
        if col in df.columns:
            df[col] = _flags(df[col], path, col)
    if "reason" in df.columns:  # a fitting SAE has no reason: empty, not NaN
        df["reason"] = df["reason"].fillna("")
    return df


def _flags(values: pd.Series, path: str | Path, col: str) -> pd.Series:
    """A column of True / False as booleans; InputError naming the file for anything else."""
    if pd.api.types.is_bool_dtype(values):
        return values
    text = values.astype(str).str.strip().str.lower()
    bad = ~text.isin(["true", "false"])
    if bad.any():
        row = int(values.index[bad.to_numpy()][0])
        raise InputError(f"{path}: line {row + 2}: column {col!r}: {values.iloc[row]!r} is not True or False")
    return text == "true"


def read_characterise_table(path: str | Path, name: str) -> pd.DataFrame:
    """Read ``characterise/{name}.tsv`` (a name of ``CHARACTERISE_TABLES``: class_neurons,
    class_overlap, class_suppression, class_specificity, neurons, pfm, windows, window_activations)."""
    dtype, required = CHARACTERISE_TABLES[name]
    return read_tsv(path, f"characterisation table '{name}'", required, dtype=dtype)


def write_json_result(path: str | Path, obj: dict[str, Any]) -> None:
    """Write a JSON result (class_summary, sites, metrics) atomically."""
    write_json_atomic(path, obj)


def read_sites_info(path: str | Path) -> dict[str, Any]:
    """Read ``characterise/sites.json`` (the annotation used and what was missing)."""
    return read_json(path, "site characterisation info")


def write_training_curve(curve: pd.DataFrame, path: str | Path) -> None:
    """Write ``model/training_curve.tsv`` atomically."""
    write_table_atomic(curve, path)


def read_training_curve(path: str | Path) -> pd.DataFrame:
    """Read ``model/training_curve.tsv`` (one row per evaluation)."""
    return read_tsv(path, "training curve", CURVE_REQUIRED, numeric=CURVE_REQUIRED)


def read_sae_report(path: str | Path) -> dict[str, Any]:
    """Read ``features/saes.json`` (per SAE: layer, format, n_features, k, FVU at its layer and its
    neighbours, dead share, validation tokens, training record); InputError naming the file when
    an SAE entry lacks one of its identifying keys."""
    data = read_json(path, "SAE report", required=("saes",))
    for i, sae in enumerate(data["saes"]):
        missing = [k for k in ("layer", "n_features", "fvu_own") if not isinstance(sae, dict) or k not in sae]
        if missing:
            raise InputError(f"{path}: SAE {i} lacks key(s) {missing}")
    return data


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Read ``model/metrics.json`` (val and test metrics, confusion matrices)."""
    return read_json(path, "fine-tuning metrics")


#: What the claims read of an intact model's metrics on one evaluation set.
INTACT_KEYS = ("accuracy", "n", "majority_baseline")


def read_intact_metrics(path: str | Path, part: str | None = None) -> dict[str, float]:
    """The intact model's ``accuracy``, the set's size ``n`` and its ``majority_baseline`` on one set:
    ``part`` ``test`` of ``model/metrics.json``, ``part`` ``intact`` of a characterisation's
    ``class_summary.json`` (its held-out proteins), or (``part`` None) ``external/<name>/metrics.json``.

    InputError naming the file when a value is missing (a file written before the majority baseline
    was recorded: rerun the rule that wrote it).
    """
    what = {"test": "fine-tuning metrics", "intact": "class summary", None: "external set metrics"}
    data = read_json(path, what.get(part, "metrics"))
    block = data.get(part) if part else data
    where = f"{path}" + (f" ({part!r})" if part else "")
    if not isinstance(block, dict):
        raise InputError(f"{where}: no {part} metrics (was the split's {part} part empty?)")
    missing = [k for k in INTACT_KEYS if not isinstance(block.get(k), int | float)]
    if missing:
        raise InputError(
            f"{where}: lacks {', '.join(missing)} (written by an older version; rerun the rule that made it)"
        )
    return {k: float(block[k]) for k in INTACT_KEYS}
