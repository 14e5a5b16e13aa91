"""The atlas job: the browsable neuron atlas from the result tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kneurons.atlas import (
    CONCEPT_FIGURES,
    FEATURE_FIGURES,
    OVERVIEW_FIGURES,
    AtlasInputs,
    build_atlas,
    write_atlas,
)
from kneurons.tables.results import CHARACTERISE_TABLES

log = logging.getLogger(__name__)


def run_atlas_job(inputs: Mapping[str, Any], settings: dict[str, Any], out: str | Path) -> Path:
    """Build ``out`` (index.html) from the rule's named inputs.

    ``inputs``: ``scores`` (one table per method, in ``settings['methods']`` order), ``density``,
    and where present ``random_gap``, ``metrics``, ``claims``, ``curves``, the figures as
    ``fig_<stem>`` (``fig_accuracy_preserve``, ``fig_compactness``, ...) and the characterisation
    tables by name (``neurons``, ``pfm``, ...). SAE features (all optional): ``feature_scores``
    (one table per method, in ``settings['methods']`` order), ``sae_report``, ``sae_quality``,
    ``feature_random_gap``, ``compactness`` and the features' characterisation tables as
    ``feature_<name>`` (``feature_neurons``, ``feature_pfm``, ...). The concept stage (optional): its
    tables as ``concept_<name>`` (``concept_units``, ``concept_alignment``, ``concept_summary``,
    ``concept_knowledge``, ``concept_info``) and its figures as ``fig_concepts_<name>``.
    """
    figures = {**OVERVIEW_FIGURES, **FEATURE_FIGURES, **CONCEPT_FIGURES}
    data = build_atlas(
        AtlasInputs(
            scores=_by_method(inputs["scores"], settings),
            density=Path(inputs["density"]),
            random_gap=_path(inputs.get("random_gap")),
            metrics=_path(inputs.get("metrics")),
            claims=_path(inputs.get("claims")),
            curves=_path(inputs.get("curves")),
            figures={k[4:]: Path(v) for k, v in inputs.items() if k.startswith("fig_") and k[4:] in figures},
            characterise={k: Path(v) for k, v in inputs.items() if k in CHARACTERISE_TABLES},
            feature_scores=_by_method(inputs.get("feature_scores") or [], settings),
            feature_characterise={
                k[len(FEATURE_PREFIX) :]: Path(v)
                for k, v in inputs.items()
                if k.startswith(FEATURE_PREFIX) and k[len(FEATURE_PREFIX) :] in CHARACTERISE_TABLES
            },
            sae_report=_path(inputs.get("sae_report")),
            sae_quality=_path(inputs.get("sae_quality")),
            feature_random_gap=_path(inputs.get("feature_random_gap")),
            compactness=_path(inputs.get("compactness")),
            concepts={
                k[len(CONCEPT_PREFIX) :]: Path(v) for k, v in inputs.items() if k.startswith(CONCEPT_PREFIX)
            },
        ),
        settings,
    )
    path = write_atlas(data, out)
    n_features = data["features"]["n_shown"] if "features" in data else 0
    log.info(
        "atlas: %d neurons, %d SAE features, %d characterised, %s",
        data["n_shown"],
        n_features,
        len(data["details"]),
        path,
    )
    return path


#: Prefix of the SAE features' characterisation tables among the job's inputs.
FEATURE_PREFIX = "feature_"
#: Prefix of the concept stage's tables among the job's inputs (``concept_units``, ``concept_info``, ...).
CONCEPT_PREFIX = "concept_"


def _by_method(paths: Any, settings: Mapping[str, Any]) -> dict[str, Path]:
    """Score tables by method: one per ``settings['methods']``, in its order (none: empty)."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        return {}
    return dict(zip(settings["methods"], map(Path, paths), strict=True))


def _path(value: Any) -> Path | None:
    return Path(value) if value else None
