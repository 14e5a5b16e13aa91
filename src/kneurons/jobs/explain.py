"""The explain job: proteins explained with a finished run, for the workflow's ``explain`` rule and
for ``kneurons explain`` alike."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kneurons.errors import InputError
from kneurons.explain.batch import explain_batch
from kneurons.explain.report import OUTPUTS, write_explanation
from kneurons.explain.run import RunFiles
from kneurons.explain.units import ExplainSettings

log = logging.getLogger(__name__)


def run_explain_job(
    files: RunFiles,
    proteins: str | Path,
    settings: Mapping[str, Any],
    out_dir: str | Path,
    device: torch.device | str = "cpu",
) -> dict[str, Path]:
    """Explain every protein of ``proteins`` with the run of ``files``; write ``explain.tsv``,
    ``explain.json`` and ``index.html`` into ``out_dir`` (nothing when a protein or the run is
    refused). ``settings``: the rule's params (``explain``: ``kneurons.settings``), or the CLI's
    values for the same keys. Returns the written paths."""
    result = explain_batch(
        files, proteins, ExplainSettings.from_section(settings["explain"]), out_dir, device
    )
    paths = write_explanation(result, out_dir)
    for c in result["summary"]["causal"]:
        log.info(
            "causal check, replicate %d, %s: mean drop %.4f for the named units, %.4f for random units "
            "(%d proteins; above random for %.0f%%)",
            c["replicate"],
            c["kind"],
            c["mean_drop"],
            c["mean_drop_random"],
            c["proteins"],
            100 * c["share_above_random"],
        )
    log.info(
        "explain: %d proteins in %.1f s; wrote %s", result["input"]["proteins"], result["seconds"], out_dir
    )
    return paths


def run_files(inputs: Mapping[str, Any]) -> RunFiles:
    """The run's files from the ``explain`` rule's named inputs (``RunFiles.from_inputs``)."""
    return RunFiles.from_inputs(dict(inputs.items()))


def output_dir(outputs: Mapping[str, Any]) -> Path:
    """The one folder of the rule's outputs ``html``, ``tsv``, ``json``, named as the job writes them
    (the page's links to the atlas are relative to it)."""
    folder = Path(outputs["html"]).parent
    for key, name in OUTPUTS.items():
        if Path(outputs[key]) != folder / name:
            raise InputError(
                f"explain outputs must be {folder}/{{{', '.join(OUTPUTS.values())}}}: got {outputs[key]}"
            )
    return folder
