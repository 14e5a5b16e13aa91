"""The atlas job: the browsable neuron atlas from the result tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kneurons.atlas import OVERVIEW_FIGURES, AtlasInputs, build_atlas, write_atlas
from kneurons.tables.results import CHARACTERISE_TABLES

log = logging.getLogger(__name__)


def run_atlas_job(inputs: Mapping[str, Any], settings: dict[str, Any], out: str | Path) -> Path:
    """Build ``out`` (index.html) from the rule's named inputs.

    ``inputs``: ``scores`` (one table per method, in ``settings['methods']`` order), ``density``,
    and where present ``random_gap``, ``metrics``, ``claims``, ``curves``, the overview figures as
    ``fig_<stem>`` (``fig_accuracy_preserve``, ...) and the characterisation tables by name
    (``neurons``, ``pfm``, ...).
    """
    scores = inputs["scores"]
    scores = [scores] if isinstance(scores, str | Path) else list(scores)
    data = build_atlas(
        AtlasInputs(
            scores=dict(zip(settings["methods"], map(Path, scores), strict=True)),
            density=Path(inputs["density"]),
            random_gap=_path(inputs.get("random_gap")),
            metrics=_path(inputs.get("metrics")),
            claims=_path(inputs.get("claims")),
            curves=_path(inputs.get("curves")),
            figures={
                k[4:]: Path(v)
                for k, v in inputs.items()
                if k.startswith("fig_") and k[4:] in OVERVIEW_FIGURES
            },
            characterise={k: Path(v) for k, v in inputs.items() if k in CHARACTERISE_TABLES},
        ),
        settings,
    )
    path = write_atlas(data, out)
    log.info("atlas: %d neurons, %d characterised, %s", data["n_shown"], len(data["details"]), path)
    return path


def _path(value: Any) -> Path | None:
    return Path(value) if value else None
