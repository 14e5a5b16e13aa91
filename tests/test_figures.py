"""Figures: every plot builds from tables in the result contract and is written atomically in each format."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kneurons.errors import InputError
from kneurons.figures.ablation import METHOD_STYLE, figure_files, save_figure
from kneurons.figures.curves import plot_ablation_curves, plot_threshold_bars
from kneurons.figures.heatmaps import plot_density, plot_layer_module_gap
from kneurons.figures.training import plot_confusion, plot_training_curve
from kneurons.jobs.figures import make_figure
from kneurons.stats.curves import summarise_curves
from kneurons.stats.density import density, pool_density, with_q_values
from kneurons.vocabulary import MODULE_TYPES

GRID = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1]


def fake_curves(layers: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    scopes = [("global", "global", None, None)] + [("module_type", m, None, m) for m in MODULE_TYPES]
    scopes += [("layer_module", f"L{lay}.{m}", lay, m) for lay in range(layers) for m in MODULE_TYPES]
    for method, seeds in (
        ("activation", [None]),
        ("ig", [None]),
        ("gradxact", [None]),
        ("random", [0, 1, 2]),
    ):
        for scope, name, layer, module in scopes:
            for mode in ("preserve", "suppress"):
                for seed in seeds:
                    base = (
                        np.linspace(0.25, 0.97, len(GRID))
                        if mode == "preserve"
                        else np.linspace(0.97, 0.25, len(GRID))
                    )
                    shift = {"activation": 0.1, "ig": 0.15, "gradxact": 0.0, "random": 0.0}[method]
                    acc = np.clip(
                        base + (shift if mode == "preserve" else -shift) + rng.normal(0, 0.02, len(GRID)),
                        0,
                        1,
                    )
                    for f, a in zip(GRID, acc, strict=False):
                        rows.append(
                            {
                                "method": method,
                                "scope": scope,
                                "scope_name": name,
                                "layer": layer,
                                "module": module,
                                "mode": mode,
                                "f": f,
                                "seed": seed,
                                "fill": "zero",
                                "n_scope": 64,
                                "n_test": 72,
                                "accuracy": a,
                                "macro_f1": a * 0.95,
                                "recall_1": a,
                                "recall_2": a,
                                "recall_3": a,
                                "full_accuracy": 0.97,
                            }
                        )
    df = pd.DataFrame(rows)
    df["seed"] = df["seed"].astype("Int64")
    df["layer"] = df["layer"].astype("Int64")
    return df


def fake_gap(curves: pd.DataFrame) -> pd.DataFrame:
    lm = curves[(curves.scope == "layer_module") & (curves.method != "random")]
    rows = []
    for (method, name, mode), g in lm.groupby(["method", "scope_name", "mode"]):
        gap = float(np.random.default_rng(len(rows)).normal(0, 0.05))
        rows.append(
            {
                "method": method,
                "scope": "layer_module",
                "scope_name": name,
                "mode": mode,
                "layer": g.layer.iloc[0],
                "module": g.module.iloc[0],
                "auc_gap": gap,
                "ci_lo": gap - 0.03,
                "ci_hi": gap + 0.03,
                "excludes_zero": abs(gap) > 0.03,
            }
        )
    return pd.DataFrame(rows)


def fake_density() -> pd.DataFrame:
    frames = []
    rng = np.random.default_rng(1)
    for method, seeds in (("ig", [None]), ("random", [0, 1])):
        for seed in seeds:
            rows = [
                (method, layer, m, i, rng.random() * (5 if m == "k_proj" and method == "ig" else 1), seed)
                for layer in range(2)
                for m in MODULE_TYPES
                for i in range(32 if m == "fc1" else 8)
            ]
            frames.append(
                pd.DataFrame(rows, columns=["method", "layer", "module", "neuron", "score", "seed"])
            )
    out = []
    for method in ("ig", "random"):
        s = pd.concat([f for f in frames if f.method.iloc[0] == method], ignore_index=True)
        s["seed"] = s["seed"].astype("Int64")
        out.append(density(s, method, top_fraction=0.1))
    return with_q_values(pd.concat(out, ignore_index=True))


def test_density_figure_says_what_it_counts_stars_q_values_and_centres_its_colours_on_one():
    """Item by item: the title names the per-replicate top set and the pooling, a star needs a
    Benjamini-Hochberg q (not a raw p) below 0.05, and the colour scale is diverging and logarithmic
    around 1, so that depletion to 0.25 is as far from neutral as enrichment to 4."""
    from matplotlib.colors import to_rgb

    one = fake_density()
    one = one[one["method"] == "ig"].drop(columns="q_enriched")
    pooled = with_q_values(pool_density([one, one]))
    cells = pooled.index[pooled["level"] == "layer_module"]
    pooled.loc[cells, ["p_enriched", "q_enriched"]] = 0.5
    pooled.loc[cells[0], ["p_enriched", "q_enriched"]] = [0.01, 0.2]  # significant only uncorrected
    pooled.loc[cells[1], ["p_enriched", "q_enriched"]] = [0.001, 0.01]
    fig = plot_density(pooled)
    n_total = int(one["n_total"].iloc[0])
    per_rep = int(one["n_top"].iloc[0])
    title = fig._suptitle.get_text()
    assert f"= {per_rep} of {n_total} neurons per replicate, counts summed over 2 replicates" in title
    assert "q <" in title and "p <" not in title
    heat = fig.axes[0]
    rows = ["all", *sorted({str(v) for v in pooled["layer"].dropna()})]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in heat.texts}
    lm = pooled[pooled["level"] == "layer_module"]
    types = [m for m in MODULE_TYPES if m in set(lm["module"])]
    stars = {
        (r.layer, r.module)
        for r in lm.itertuples()
        if texts[(rows.index(str(r.layer)), types.index(r.module))].split("\n")[0].endswith("*")
    }
    assert stars == {(lm.loc[cells[1], "layer"], lm.loc[cells[1], "module"])}
    # the colour scale: 1 in the middle, 4 and 0.25 equally far on either side
    im = heat.images[0]
    mid, up, down = (np.array(im.to_rgba(np.log2(e))[:3]) for e in (1.0, 4.0, 0.25))
    assert np.allclose(im.norm(np.log2(1.0)), 0.5)
    assert np.isclose(im.norm(np.log2(4.0)) - 0.5, 0.5 - im.norm(np.log2(0.25)))
    assert np.linalg.norm(mid - np.array(to_rgb("white"))) < 0.15  # neutral is near white
    assert up[0] > up[2] and down[2] > down[0]  # enriched red, depleted blue
    labels = [t.get_text() for t in fig.axes[-1].get_yticklabels()]
    assert "1" in labels and "0.5" in labels and "2" in labels, labels


def test_density_q_values_are_benjamini_hochberg_per_method_and_seed():
    from kneurons.stats.multiple import bh_qvalues

    dens = fake_density()
    for (_method, _seed), rows in dens.groupby(["method", "seed"], dropna=False):
        np.testing.assert_allclose(rows["q_enriched"], bh_qvalues(rows["p_enriched"].to_numpy()))
    assert (dens["q_enriched"] >= dens["p_enriched"] - 1e-15).all()
    assert list(dens.columns).index("q_enriched") == list(dens.columns).index("p_enriched") + 1


def test_stability_figure_labels_both_axes_and_says_what_the_bands_are():
    from kneurons.figures.stability import plot_stability
    from kneurons.stats.stability import stability

    def table(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        rows = [
            (layer, m, i) for layer in range(2) for m in MODULE_TYPES for i in range(32 if m == "fc1" else 8)
        ]
        df = pd.DataFrame(rows, columns=["layer", "module", "neuron"]).assign(method="ig")
        return df.assign(score=rng.random(len(df)))

    fig = plot_stability(stability({"0": table(0), "1": table(1)}, "ig", fractions=(0.05, 0.2)))
    left, right = fig.axes[:2]
    assert left.get_ylabel() and right.get_ylabel() == left.get_ylabel()
    assert right.get_xlabel()
    legend = " ".join(t.get_text() for ax in (left, right) for t in ax.get_legend().get_texts())
    assert "shaded, in each method's colour: random selections'" in legend and "97.5%" in legend, legend


def test_styles_differ_in_marker_and_line_style():
    markers = [s[2] for s in METHOD_STYLE.values()]
    lines = [str(s[3]) for s in METHOD_STYLE.values()]
    assert len(set(markers)) == len(markers) and len(set(lines)) == len(lines)


@pytest.mark.parametrize("mode", ["preserve", "suppress"])
def test_ablation_curves_panels_axes_and_files(tmp_path, mode):
    fig = plot_ablation_curves(fake_curves(), mode)
    axes = [a for a in fig.axes if a.get_visible() and a.axison]
    assert len(axes) == 1 + len(MODULE_TYPES)
    titles = {a.get_title() for a in axes}
    assert "all modules (global)" in titles and "k_proj (all layers)" in titles
    assert axes[0].get_ylabel() == "test accuracy"
    assert mode in fig._suptitle.get_text().lower() and "n = 72" in fig._suptitle.get_text()
    k_ax = next(a for a in axes if a.get_title() == "k_proj (all layers)")
    assert len(k_ax.collections) == 1  # the random band
    paths = save_figure(fig, tmp_path / f"acc_{mode}", ["png", "pdf"], dpi=60)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_curves_name_their_intact_line_as_the_mean_of_the_replicates():
    def legend(curves: pd.DataFrame) -> list[str]:
        fig = plot_ablation_curves(curves, "preserve")
        return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]

    curves = fake_curves().assign(full_accuracy=0.951)
    assert "intact model (0.951)" in legend(curves)  # one replicate: its own accuracy
    assert "intact model, mean of 2 replicates (0.951)" in legend(curves.assign(n_replicates=2))


def test_figure_files_split_paths_into_base_and_formats(tmp_path):
    base, formats = figure_files([tmp_path / "logos.png", tmp_path / "logos.pdf"])
    assert base == tmp_path / "logos" and formats == ["png", "pdf"]
    assert figure_files([str(tmp_path / "L0.k_proj.svg")]) == (tmp_path / "L0.k_proj", ["svg"])
    with pytest.raises(ValueError, match="one base name"):
        figure_files([tmp_path / "a.png", tmp_path / "b.pdf"])


def test_density_heatmap_and_bars_and_gap(tmp_path):
    dens = fake_density()
    fig = plot_density(dens)
    assert len(fig.axes) == 3  # ig, random, colour bar
    heat = fig.axes[0]
    assert heat.get_ylabel().startswith("layer") and heat.get_xlabel() == "module type"
    texts = [t.get_text() for t in heat.texts]
    assert len(texts) == 3 * len(MODULE_TYPES)  # rows: all, layer 0, layer 1
    save_figure(fig, tmp_path / "density", ["png"], 60)

    curves = fake_curves()
    summary = summarise_curves(curves, 0.97, 0.95)
    fig = plot_threshold_bars(summary)
    assert "smallest f" in fig.axes[0].get_ylabel()
    save_figure(fig, tmp_path / "bars", ["png"], 60)

    fig = plot_layer_module_gap(fake_gap(curves))
    assert len(fig.axes) == 3 * 2 + 1
    save_figure(fig, tmp_path / "gap", ["png"], 60)


def test_training_and_confusion_figures(tmp_path):
    curve = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "step": [10, 20, 30],
            "train_loss": [1.2, 0.6, 0.3],
            "val_accuracy": [0.5, 0.8, 0.9],
            "val_macro_f1": [0.4, 0.8, 0.9],
        }
    )
    metrics = {
        "best_epoch": 3,
        "test": {
            "n": 10,
            "accuracy": 0.9,
            "macro_f1": 0.88,
            "labels": ["1", "2"],
            "confusion_matrix": [[5, 0], [1, 4]],
        },
    }
    fig = plot_training_curve(curve, metrics)
    # replicate 0's intact accuracy, named as such (the curves show the mean over replicates)
    assert "replicate 0; test accuracy 0.900" in fig._suptitle.get_text()
    save_figure(fig, tmp_path / "train", ["png"], 60)
    fig = plot_confusion(metrics)
    ax = fig.axes[0]
    assert "confusion matrix, replicate 0" in ax.get_title()
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "4", "5"]
    assert ax.get_ylabel() == "true class (EC)"
    save_figure(fig, tmp_path / "cm", ["png"], 60)
    with pytest.raises(InputError, match="no 'val' confusion matrix"):
        plot_confusion(metrics, "val")


def test_make_figure_from_files_and_failure_leaves_nothing(tmp_path):
    curves = fake_curves()
    curves.to_csv(tmp_path / "curves.tsv", sep="\t", index=False)
    paths = make_figure(
        "accuracy_preserve", {"curves": tmp_path / "curves.tsv"}, tmp_path / "fig", ["png", "pdf"], 60
    )
    assert all(p.exists() for p in paths)
    (tmp_path / "metrics.json").write_text(json.dumps({"val": {}}))
    with pytest.raises(InputError):
        make_figure("confusion_matrix", {"metrics": tmp_path / "metrics.json"}, tmp_path / "cm", ["png"], 60)
    assert not list(tmp_path.glob("cm*")) and not list(tmp_path.glob(".cm*"))
    with pytest.raises(InputError, match="no ablation rows with mode"):
        plot_ablation_curves(curves[curves["mode"] == "preserve"], "suppress")


def test_curve_titles_say_when_replicates_were_pooled():
    from kneurons.figures.curves import _run_note

    curves = pd.DataFrame(
        {
            "method": ["ig", "random"],
            "seed": pd.array([pd.NA, 0], dtype="Int64"),
            "n_test": [72, 72],
            "fill": ["zero", "zero"],
        }
    )
    assert "replicates" not in _run_note(curves)
    assert _run_note(curves.assign(n_replicates=2)).endswith("mean of 2 fine-tuning replicates")


# -- SAE features: their curves, and claim 6's compactness figure ----------------------------------
def _feature_curves() -> pd.DataFrame:
    """Curves of SAE features: the global scope only, 4096 features, curves reaching higher sooner."""
    curves = fake_curves()
    curves = curves[curves["scope"] == "global"].copy()
    curves["n_scope"] = 4096
    curves["accuracy"] = np.minimum(1.0, curves["accuracy"] + 0.1 * (curves["method"] != "random"))
    return curves


def _bases_tables(fills=("zero",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(stats/compactness.tsv, stats/bases_curves.tsv)`` of one SAE stream, as the compactness job
    makes them from a same-site bases table (tests/test_compactness.py's: activation's features reach
    the intact model at 4 of 64 directions, the dimensions at 16 of 16, PCA at 2)."""
    from test_compactness import as_data, bases_result, step

    from kneurons.jobs.stats import curve_statistics
    from kneurons.stats.compactness import compactness

    reach = {"features": 4, "dimensions": 16, "pca": 2, "random_basis": 8}
    data = as_data(bases_result(step(reach), fills=fills))
    curves = curve_statistics(
        [data], {"stats": {"keep_accuracy": 0.95, "bootstrap": 0, "confidence": 0.95}, "seed": 0}
    )["curves"]
    curves["kept"] = curves["n_scope"] - curves["n_filled"]
    return compactness([data], n_boot=100, seed=0), curves


def test_feature_curves_say_sae_features_and_random_active_features():
    fig = plot_ablation_curves(_feature_curves(), "preserve", units="features")
    axes = [a for a in fig.axes if a.get_visible() and a.axison]
    assert [a.get_title() for a in axes] == ["all SAE features (global)"]  # no module panels
    assert "top-f SAE features" in fig._suptitle.get_text()
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend())
    texts = [t.get_text() for t in legend.get_texts()]
    assert legend.get_title().get_text() == "SAE features selected by"
    assert any(t.startswith("random features active on the scoring set") for t in texts), texts
    neurons = plot_ablation_curves(fake_curves(), "preserve")
    assert "top-f neurons" in neurons._suptitle.get_text()
    with pytest.raises(ValueError, match="unknown units"):
        plot_ablation_curves(fake_curves(), "preserve", units="heads")


def test_compactness_figure_puts_the_four_bases_on_one_axis_of_directions_kept():
    from kneurons.figures.compactness import plot_compactness

    table, curves = _bases_tables(fills=("zero", "resample"))
    fig = plot_compactness(table, curves)
    axes = [a for a in fig.axes if a.axison]
    assert len(axes) == 2  # one panel per fill (one non-random method, one stream)
    title = axes[0].get_title()
    dims = table[(table["comparison"] == "dimensions") & (table["fill"] == "zero")].iloc[0]
    assert title.startswith("activation, zero fill, stream L2") and "resample fill" in axes[1].get_title()
    assert f"vs dimensions: min CPR gap {dims.estimate:+.2f} [{dims.ci_lo:+.2f}, {dims.ci_hi:+.2f}]" in title
    assert "random_basis" not in title  # the null is drawn, not claimed
    xs = [list(line.get_xdata()) for line in axes[0].lines if len(line.get_xdata()) > 2]
    assert len(xs) == 4  # the four bases
    # the features' curve runs to 64 directions (both grids merged), the stream's bases to 16
    assert [max(x) for x in xs] == [64, 16, 16, 16] and 4 in xs[0] and 2 in xs[2]
    assert axes[0].get_xlabel() == "directions kept (log scale)"
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[:4] == ["SAE features", "stream dimensions", "PCA components", "random orthogonal basis"]
    with pytest.raises(InputError, match="no same-site bases"):
        plot_compactness(table.iloc[0:0], curves)


def test_make_figure_draws_the_feature_kinds_from_files(tmp_path):
    from kneurons.tables import write_stats_tables

    features = _feature_curves()
    table, bases = _bases_tables()
    paths = {n: tmp_path / f"{n}.tsv" for n in ("curves", "feature_curves", "compactness")}
    write_stats_tables({"curves": bases, "feature_curves": features, "compactness": table}, paths)
    made = make_figure(
        "compactness",
        {"compactness": paths["compactness"], "curves": paths["curves"]},
        tmp_path / "compactness",
        ["png", "pdf"],
        60,
    )
    for mode in ("preserve", "suppress"):
        made += make_figure(
            f"features_accuracy_{mode}",
            {"curves": paths["feature_curves"]},
            tmp_path / f"f_{mode}",
            ["png"],
            60,
        )
    assert [p.name for p in made] == [
        "compactness.png",
        "compactness.pdf",
        "f_preserve.png",
        "f_suppress.png",
    ]
    assert all(p.stat().st_size > 1000 for p in made)
    assert made[0].read_bytes()[:4] == b"\x89PNG"
