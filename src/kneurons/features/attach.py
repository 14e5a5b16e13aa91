"""The SAEs of a job: resolved from ``units.features``, attached to a classifier, and identified.

A feature job (scoring, ablation, characterisation, the SAE report) gets its SAEs as *specs*:
``{"layer", "path", "format", "k"}`` (``sae_specs`` in ``kneurons.jobs.features`` resolves the
config's ``sae: train`` entries to the files the workflow trained). ``attach_saes`` loads each one
and attaches it to the model; ``sae_identities`` records what was attached (description and
sha256 of the files read) in a table's provenance, so a later job can refuse scores of other
SAEs (``check_same_saes``): features of another dictionary are other units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kneurons.errors import InputError
from kneurons.features.formats import load_sae
from kneurons.features.sae import SparseAutoencoder
from kneurons.io import sha256_file
from kneurons.model.classifier import EsmClassifier
from kneurons.vocabulary import FEATURE_MODULE

#: The provenance key of a table's SAEs (score tables, the SAE report).
SAES_KEY = "saes"

#: One SAE of a job: ``layer``, ``path`` (file or folder), ``format``, ``k`` (None: from the file).
SaeSpec = Mapping[str, Any]


def _files_read(spec: SaeSpec) -> list[Path]:
    """The files whose bytes make the SAE: the file itself, or an ESM C folder's config and layer file."""
    path = Path(spec["path"])
    if path.is_dir():
        return [
            p for p in (path / "config.json", path / f"layer_{int(spec['layer'])}.safetensors") if p.exists()
        ]
    return [path]


def attach_saes(model: EsmClassifier, specs: Sequence[SaeSpec]) -> list[SparseAutoencoder]:
    """Load the SAE of each spec and attach it to ``model`` (its layer's stream); returns them in spec order.

    A file of the wrong format, width or layer range is refused naming the file
    (``kneurons.features.formats.load_sae``, ``EsmClassifier.attach_sae``).
    """
    if not specs:
        raise InputError("a feature job needs at least one SAE (units.features)")
    saes = []
    for spec in specs:
        sae = load_sae(spec["path"], spec["format"], int(spec["layer"]), spec.get("k"))
        model.attach_sae(sae)
        saes.append(sae)
    return saes


def sae_identities(saes: Sequence[SparseAutoencoder], specs: Sequence[SaeSpec]) -> list[dict[str, Any]]:
    """What a table records of its SAEs: each one's description and the sha256 of the files read."""
    return [
        {**sae.describe(), "sha256": {p.name: sha256_file(p) for p in _files_read(spec)}}
        for sae, spec in zip(saes, specs, strict=True)
    ]


def check_same_saes(
    source: str | Path, recorded: Sequence[Mapping[str, Any]] | None, attached: Sequence[Mapping[str, Any]]
) -> None:
    """Raise InputError unless ``recorded`` (a table's ``SAES_KEY``) names the SAEs ``attached`` now.

    Layer, format, size and file hashes must agree; a table that records no SAEs was not
    scored on features at all.
    """
    if not recorded:
        raise InputError(
            f"{source}: the table records no SAEs; it does not score SAE features (units.features)"
        )

    def key(d: Mapping[str, Any]) -> tuple:
        return (int(d["layer"]), d["format"], int(d["n_features"]), tuple(sorted(dict(d["sha256"]).items())))

    def names(saes: Sequence[Mapping[str, Any]]) -> str:
        return ", ".join(f"layer {int(d['layer'])}: {d['source']}" for d in saes)

    if sorted(map(key, recorded)) != sorted(map(key, attached)):
        raise InputError(
            f"{source}: scored with other SAEs ({names(recorded)}) than this job attaches "
            f"({names(attached)}); re-run the feature scoring"
        )


def attach_scored_saes(
    model: EsmClassifier, specs: Sequence[SaeSpec], scores_path: str | Path, score_meta: Mapping[str, Any]
) -> tuple[str, ...]:
    """Attach the SAEs of ``specs`` for a job that ranks their features by a score table: the table
    (``scores_path``, provenance ``score_meta``) must record the same SAEs (``check_same_saes``).
    Returns the units the job ranks, ``("sae",)``."""
    attached = sae_identities(attach_saes(model, specs), specs)
    check_same_saes(scores_path, score_meta.get(SAES_KEY), attached)
    return (FEATURE_MODULE,)
