"""Render the atlas's data into one self-contained HTML page (Jinja2 template, vanilla JS, no network)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2

from kneurons.errors import InputError
from kneurons.io import write_text_atomic


def _environment() -> jinja2.Environment:
    # The templates ship as package data, so an installed package renders the same page.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("kneurons.atlas", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def data_json(data: dict[str, Any]) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` are written as unicode escapes, so no value (a class name, a claim's
    text) can close the script element or open a comment; ``JSON.parse`` reads them back unchanged.
    """
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


#: Parts of the atlas's data the template renders into the page itself; the page's script does not
#: read them, so the JSON leaves them out (the overview's figures would otherwise be there twice).
RENDERED_ONLY = ("overview",)


def render_atlas(data: dict[str, Any], title: str = "kneurons neuron atlas") -> str:
    """The atlas page (HTML text) for ``data`` from ``build_atlas``."""
    template = _environment().get_template("index.html.j2")
    script_data = {k: v for k, v in data.items() if k not in RENDERED_ONLY}
    return template.render(title=title, data=data, data_json=data_json(script_data))


def write_atlas(data: dict[str, Any], path: str | Path, title: str = "kneurons neuron atlas") -> Path:
    """Write the atlas page to ``path`` atomically; returns the path."""
    write_text_atomic(path, render_atlas(data, title))
    return Path(path)


#: The element of the page that holds its data (``render_atlas``; ``read_atlas_data`` reads it back).
DATA_ELEMENT = re.compile(r'<script type="application/json" id="atlas-data">(.*?)</script>', re.DOTALL)


def read_atlas_data(path: str | Path) -> dict[str, Any]:
    """The data an atlas page holds (``build_atlas``'s, less ``RENDERED_ONLY``): its ranking settings
    (``normalise``, ``top_fraction``) and the units it has an entry for (``neurons``, ``features``).

    InputError naming the file when it is not an atlas page this code wrote.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no atlas page")
    match = DATA_ELEMENT.search(path.read_text(encoding="utf-8"))
    if match is None:
        raise InputError(f"{path}: not a kneurons atlas page (no atlas-data element)")
    try:
        data = json.loads(match.group(1))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: the atlas's data is not JSON ({exc})") from None
    missing = [k for k in ("neurons", "normalise", "top_fraction") if k not in data]
    if missing:
        raise InputError(f"{path}: the atlas's data lacks {', '.join(missing)} (written by older code?)")
    return data
