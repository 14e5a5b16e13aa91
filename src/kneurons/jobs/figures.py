"""The figure jobs: one workflow figure from its input tables."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from kneurons.figures.ablation import _read_tsv, figure_files, save_figure
from kneurons.figures.characterise import (
    plot_auroc_by_module,
    plot_class_specificity,
    plot_logos,
)
from kneurons.figures.curves import plot_ablation_curves, plot_threshold_bars
from kneurons.figures.heatmaps import plot_density, plot_layer_module_gap
from kneurons.figures.training import plot_confusion, plot_training_curve

log = logging.getLogger(__name__)


def make_figures(
    neurons_path: str | Path,
    pfm_path: str | Path,
    info_path: str | Path,
    matrix_path: str | Path,
    overlap_path: str | Path,
    out: dict[str, Sequence[str | Path]],
    logos: int = 8,
    dpi: int = 150,
    alpha: float = 0.05,
) -> None:
    """Write the three characterisation figures; ``out`` maps ``logos``, ``site_auroc`` and
    ``class_specificity`` to the paths (one per format) of each."""
    neurons = pd.read_csv(neurons_path, sep="\t", dtype={"top_class": str, "module": str})
    pfm = pd.read_csv(pfm_path, sep="\t")
    info = json.loads(Path(info_path).read_text())
    matrix = pd.read_csv(matrix_path, sep="\t", dtype={"suppressed": str, "evaluated": str})
    overlap = pd.read_csv(overlap_path, sep="\t", dtype={"class_a": str, "class_b": str})
    save_figure(plot_logos(neurons, pfm, logos), *figure_files(out["logos"]), dpi)
    save_figure(
        plot_auroc_by_module(neurons, info.get("annotation", ""), alpha),
        *figure_files(out["site_auroc"]),
        dpi,
    )
    save_figure(plot_class_specificity(matrix, overlap), *figure_files(out["class_specificity"]), dpi)


def make_figure(
    kind: str, inputs: dict[str, str | Path], base: str | Path, formats: Sequence[str], dpi: int
) -> list[Path]:
    """Build one workflow figure ``kind`` from its input tables and write ``base.<fmt>``."""
    if kind in ("accuracy_preserve", "accuracy_suppress"):
        fig = plot_ablation_curves(_read_tsv(inputs["curves"]), kind.split("_")[1])
    elif kind == "density":
        fig = plot_density(_read_tsv(inputs["density"]))
    elif kind == "smallest_fraction":
        fig = plot_threshold_bars(_read_tsv(inputs["summary"]))
    elif kind == "layer_module_gap":
        fig = plot_layer_module_gap(_read_tsv(inputs["random_gap"]))
    elif kind == "training_curve":
        metrics = json.loads(Path(inputs["metrics"]).read_text())
        fig = plot_training_curve(pd.read_csv(inputs["curve"], sep="\t"), metrics)
    elif kind == "confusion_matrix":
        fig = plot_confusion(json.loads(Path(inputs["metrics"]).read_text()))
    else:
        raise ValueError(f"unknown figure {kind!r}")
    return save_figure(fig, base, formats, dpi)
