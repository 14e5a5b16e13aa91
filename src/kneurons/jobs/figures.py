"""The figure jobs: one workflow figure from its input tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from kneurons.figures.ablation import figure_files, save_figure
from kneurons.figures.characterise import (
    plot_auroc_by_module,
    plot_class_specificity,
    plot_logos,
)
from kneurons.figures.compactness import plot_compactness
from kneurons.figures.concepts import plot_concepts_covered, plot_knowledge, plot_units_aligned
from kneurons.figures.curves import plot_ablation_curves, plot_threshold_bars
from kneurons.figures.heatmaps import plot_density, plot_layer_module_gap
from kneurons.figures.planted import plot_precision_recall
from kneurons.figures.stability import plot_stability
from kneurons.figures.training import plot_confusion, plot_training_curve
from kneurons.tables import (
    read_characterise_table,
    read_concept_table,
    read_concepts_info,
    read_metrics,
    read_sites_info,
    read_stats_table,
    read_training_curve,
)
from kneurons.tables.planted import read_planted_stats

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
    neurons = read_characterise_table(neurons_path, "neurons")
    pfm = read_characterise_table(pfm_path, "pfm")
    info = read_sites_info(info_path)
    matrix = read_characterise_table(matrix_path, "class_suppression")
    overlap = read_characterise_table(overlap_path, "class_overlap")
    save_figure(plot_logos(neurons, pfm, logos), *figure_files(out["logos"]), dpi)
    save_figure(
        plot_auroc_by_module(neurons, info.get("annotation", ""), alpha),
        *figure_files(out["site_auroc"]),
        dpi,
    )
    save_figure(plot_class_specificity(matrix, overlap), *figure_files(out["class_specificity"]), dpi)


def make_concept_figures(
    inputs: Mapping[str, str | Path], out: Mapping[str, Sequence[str | Path]], dpi: int = 150
) -> None:
    """Write the three concept figures: ``out`` maps ``units_aligned``, ``covered`` and
    ``knowledge`` to their paths (one per format); ``inputs``: the concept stage's ``summary``,
    ``concepts``, ``units`` and ``knowledge`` tables and its ``info``."""
    info = read_concepts_info(inputs["info"])
    units = read_concept_table(inputs["units"], "units")
    summary = read_concept_table(inputs["summary"], "summary")
    save_figure(plot_units_aligned(summary, info), *figure_files(out["units_aligned"]), dpi)
    concepts = read_concept_table(inputs["concepts"], "concepts")
    save_figure(plot_concepts_covered(concepts, info), *figure_files(out["covered"]), dpi)
    knowledge = read_concept_table(inputs["knowledge"], "knowledge")
    save_figure(plot_knowledge(units, knowledge, info), *figure_files(out["knowledge"]), dpi)


def make_figure(
    kind: str,
    inputs: dict[str, str | Path],
    base: str | Path,
    formats: Sequence[str],
    dpi: int,
    logos: int = 8,
) -> list[Path]:
    """Build one workflow figure ``kind`` from its input tables and write ``base.<fmt>``.

    SAE features: ``features_accuracy_{mode}`` draws the feature curves (``inputs["curves"]``: their
    curves table); ``compactness`` draws claim 6 from ``inputs["compactness"]`` and
    ``inputs["curves"]`` (the same-site bases' curves, ``stats/bases_curves.tsv``).
    ``feature_logos`` draws the top IG features' logos (``inputs["neurons"]``, ``inputs["pfm"]``);
    ``logos``: how many (``characterise.logos``, as the neurons' logos).
    ``planted_precision_recall`` draws the planted benchmark's curves (``inputs["pr_curves"]``,
    ``inputs["recovery"]``).
    """
    if kind in ("accuracy_preserve", "accuracy_suppress"):
        fig = plot_ablation_curves(read_stats_table(inputs["curves"], "curves"), kind.split("_")[1])
    elif kind in ("features_accuracy_preserve", "features_accuracy_suppress"):
        curves = read_stats_table(inputs["curves"], "curves")
        fig = plot_ablation_curves(curves, kind.rsplit("_", 1)[1], units="features")
    elif kind == "compactness":
        fig = plot_compactness(
            read_stats_table(inputs["compactness"], "compactness"),
            read_stats_table(inputs["curves"], "curves"),
        )
    elif kind == "density":
        fig = plot_density(read_stats_table(inputs["density"], "density"))
    elif kind == "stability":
        fig = plot_stability(read_stats_table(inputs["stability"], "stability"))
    elif kind == "smallest_fraction":
        fig = plot_threshold_bars(read_stats_table(inputs["summary"], "summary"))
    elif kind == "layer_module_gap":
        fig = plot_layer_module_gap(read_stats_table(inputs["random_gap"], "random_gap"))
    elif kind == "training_curve":
        fig = plot_training_curve(read_training_curve(inputs["curve"]), read_metrics(inputs["metrics"]))
    elif kind == "confusion_matrix":
        fig = plot_confusion(read_metrics(inputs["metrics"]))
    elif kind == "planted_precision_recall":
        fig = plot_precision_recall(
            read_planted_stats(inputs["pr_curves"], "pr_curves"),
            read_planted_stats(inputs["recovery"], "recovery"),
        )
    elif kind == "feature_logos":
        neurons = read_characterise_table(inputs["neurons"], "neurons")
        fig = plot_logos(neurons, read_characterise_table(inputs["pfm"], "pfm"), logos)
    else:
        raise ValueError(f"unknown figure {kind!r}")
    return save_figure(fig, base, formats, dpi)
