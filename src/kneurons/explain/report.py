"""What ``kneurons explain`` writes: ``explain.tsv`` (one row per named unit), ``explain.json`` (the
whole result) and ``index.html`` (one self-contained page, the atlas's look and offline rules).

The three files are rendered in memory first and written atomically, the page last, so a failure
leaves no half-written output. No other stage reads them. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from kneurons.atlas.page import data_json
from kneurons.io import write_json_atomic, write_table_atomic, write_text_atomic

#: The files of an explanation, in the order they are written (the page last).
OUTPUTS = {"tsv": "explain.tsv", "json": "explain.json", "html": "index.html"}

#: Columns of ``explain.tsv``.
TSV_COLUMNS = (
    "protein",
    "replicate",
    "predicted",
    "probability",
    "rank",
    "unit",
    "kind",
    "layer",
    "module",
    "index",
    "contribution",
    "residue_share",
    "run_rank",
    "run_score",
    "top_class",
    "class_share",
    "class_sets",
    "positions",
    "windows",
    "atlas",
)


def _windows_text(peaks: list[Mapping[str, Any]]) -> str:
    return ";".join(f"{p['start']}-{p['end']}:{p['window']}" for p in peaks)


def explain_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """``explain.tsv``: one row per (protein, replicate, named unit), best unit first; ``positions``
    are the 1-based peak residues, ``windows`` ``start-end:residues`` around each."""
    rows = []
    for p in result["proteins"]:
        for r in p["replicates"]:
            for u in r["units"]:
                rows.append(
                    {
                        "protein": p["accession"],
                        "replicate": r["replicate"],
                        "predicted": r["predicted"],
                        "probability": r["probabilities"][r["predicted"]],
                        "rank": u["rank"],
                        "unit": u["unit"],
                        "kind": u["kind"],
                        "layer": u["layer"],
                        "module": u["module"],
                        "index": u["index"],
                        "contribution": u["contribution"],
                        "residue_share": u["residue_share"],
                        "run_rank": u["run_rank"],
                        "run_score": u["run_score"],
                        "top_class": u["top_class"],
                        "class_share": u["class_share"],
                        "class_sets": ";".join(u.get("class_sets", [])),
                        "positions": ";".join(str(pk["center"]) for pk in u["peaks"]),
                        "windows": _windows_text(u["peaks"]),
                        "atlas": u.get("atlas") or "",
                    }
                )
    return pd.DataFrame(rows, columns=list(TSV_COLUMNS))


def _environment() -> jinja2.Environment:
    # The explain page's own templates, and the atlas's stylesheet (one look for both pages).
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader("kneurons.explain", "templates"),
                jinja2.PackageLoader("kneurons.atlas", "templates"),
            ]
        ),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_page(result: Mapping[str, Any], title: str = "kneurons: explain my proteins") -> str:
    """The batch's page (HTML text): a table of proteins and a panel per protein, drawn by its script
    from the result embedded as JSON."""
    template = _environment().get_template("index.html.j2")
    return template.render(title=title, data=result, data_json=data_json(dict(result)))


def write_explanation(result: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``explain.tsv``, ``explain.json`` and ``index.html`` into ``out_dir``; returns their paths.

    Everything is rendered before the first file is written (a rendering error writes nothing).
    """
    out = Path(out_dir)
    table = explain_table(result)
    json.dumps(result, allow_nan=False)  # NaN or infinity is no JSON: refused before anything is written
    page = render_page(result)
    paths = {k: out / name for k, name in OUTPUTS.items()}
    out.mkdir(parents=True, exist_ok=True)
    write_table_atomic(table, paths["tsv"])
    write_json_atomic(paths["json"], result)
    write_text_atomic(paths["html"], page)
    return paths
