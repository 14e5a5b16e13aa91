# Paper figures (PNG + PDF) from the result tables, with report captions. `snakemake figures`
# draws the missing ones from existing results; to redraw all of them without touching training,
# scoring or ablation (also after their code changed):
#   snakemake figures --rerun-triggers mtime --forcerun figure_accuracy figure_density \
#       figure_smallest_fraction figure_layer_module_gap figure_training_curve figure_confusion_matrix
# `snakemake --report results/report.html` gathers them. Logic: src/kneurons/figures/;
# job: src/kneurons/jobs/figures.py (make_figure).

FIG_DIR = f"{R}/figures"
FIG_FORMATS = list(config["figures"]["formats"])
#: The format embedded in the report: png if made, else the first format.
REPORT_FORMAT = "png" if "png" in FIG_FORMATS else FIG_FORMATS[0]


HAS_CURVE_SCOPES = bool({"global", "module_type"} & set(ABLATE_SCOPES))
HAS_GAP = "layer_module" in ABLATE_SCOPES and "random" in ABLATE_METHODS
FIGURES = {
    "density": "density",
    "stability": "stability",
    "training_curve": "training",
    "confusion_matrix": "training",
}
if HAS_CURVE_SCOPES:
    FIGURES.update({f"accuracy_{mode}": "curves" for mode in config["ablate"]["modes"]})
    if "preserve" in config["ablate"]["modes"]:
        FIGURES["smallest_fraction"] = "smallest"
if HAS_GAP:
    FIGURES["layer_module_gap"] = "gap"
if (
    FEATURES
):  # features.smk: SAE features against random features, and against their stream's bases
    FIGURES.update(
        {f"features_accuracy_{mode}": "features" for mode in config["ablate"]["modes"]}
    )
if SAME_SITE:
    FIGURES["compactness"] = "compactness"
if CHARACTERISE_FEATURES:
    FIGURES["feature_logos"] = "feature logos"
FIGURE_FILES = [f"{FIG_DIR}/{name}.{fmt}" for name in FIGURES for fmt in FIG_FORMATS]


include: "functions/figures.smk"


rule figure_accuracy:
    input:
        curves=STATS["curves"],
    output:
        **figure_outputs(
            "accuracy_{mode}",
            "accuracy_curves.rst",
            "1. Ablation curves",
            "accuracy vs f ({mode})",
        ),
    log:
        f"{R}/logs/figures/accuracy_{{mode}}.log",
    wildcard_constraints:
        mode="preserve|suppress",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_accuracy", config),
        kind=lambda wc: f"accuracy_{wc.mode}",
    message:
        "Drawing the accuracy curves ({wildcards.mode})"
    script:
        "../scripts/figure.py"


rule figure_density:
    input:
        density=STATS["density"],
    output:
        **figure_outputs(
            "density", "density.rst", "2. Density", "layer x module enrichment"
        ),
    log:
        f"{R}/logs/figures/density.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_density", config),
        kind="density",
    message:
        "Drawing the density figure"
    script:
        "../scripts/figure.py"


rule figure_stability:
    input:
        stability=STATS["stability"],
    output:
        **figure_outputs(
            "stability",
            "stability.rst",
            "2. Density",
            "stability of the top neurons across replicates",
        ),
    log:
        f"{R}/logs/figures/stability.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_stability", config),
        kind="stability",
    message:
        "Drawing the stability figure"
    script:
        "../scripts/figure.py"


rule figure_smallest_fraction:
    input:
        summary=STATS["summary"],
    output:
        **figure_outputs(
            "smallest_fraction",
            "smallest_fraction.rst",
            "1. Ablation curves",
            "smallest f keeping accuracy",
        ),
    log:
        f"{R}/logs/figures/smallest_fraction.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_smallest_fraction", config),
        kind="smallest_fraction",
    message:
        "Drawing the smallest-fraction figure"
    script:
        "../scripts/figure.py"


rule figure_layer_module_gap:
    input:
        random_gap=STATS["random_gap"],
    output:
        **figure_outputs(
            "layer_module_gap",
            "layer_module_gap.rst",
            "1. Ablation curves",
            "single-module AUC gap",
        ),
    log:
        f"{R}/logs/figures/layer_module_gap.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_layer_module_gap", config),
        kind="layer_module_gap",
    message:
        "Drawing the layer x module gap figure"
    script:
        "../scripts/figure.py"


rule figure_training_curve:
    input:
        curve=MODEL_FILES["curve"].replace("{rep}", ""),
        metrics=MODEL_FILES["metrics"].replace("{rep}", ""),
    output:
        **figure_outputs(
            "training_curve", "training_curve.rst", "3. Fine-tuning", "training curve"
        ),
    log:
        f"{R}/logs/figures/training_curve.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_training_curve", config),
        kind="training_curve",
    message:
        "Drawing the training curve"
    script:
        "../scripts/figure.py"


rule figure_confusion_matrix:
    input:
        metrics=MODEL_FILES["metrics"].replace("{rep}", ""),
    output:
        **figure_outputs(
            "confusion_matrix",
            "confusion_matrix.rst",
            "3. Fine-tuning",
            "test confusion matrix",
        ),
    log:
        f"{R}/logs/figures/confusion_matrix.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_confusion_matrix", config),
        kind="confusion_matrix",
    message:
        "Drawing the test confusion matrix"
    script:
        "../scripts/figure.py"


rule figure_features_accuracy:
    input:
        curves=FEATURE_STATS["curves"],
    output:
        **figure_outputs(
            "features_accuracy_{mode}",
            "features_curves.rst",
            "4. SAE features",
            "SAE features: accuracy vs f ({mode})",
        ),
    log:
        f"{R}/logs/figures/features_accuracy_{{mode}}.log",
    wildcard_constraints:
        mode="preserve|suppress",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_features_accuracy", config),
        kind=lambda wc: f"features_accuracy_{wc.mode}",
    message:
        "Drawing the SAE features' accuracy curves ({wildcards.mode})"
    script:
        "../scripts/figure.py"


rule figure_compactness:
    input:
        compactness=COMPACTNESS,
        curves=BASES_STATS["curves"],
    output:
        **figure_outputs(
            "compactness",
            "compactness.rst",
            "4. SAE features",
            "claim 6: SAE features against the other bases of their stream",
        ),
    log:
        f"{R}/logs/figures/compactness.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_compactness", config),
        kind="compactness",
    message:
        "Drawing claim 6: the bases of each SAE stream on one axis of directions kept"
    script:
        "../scripts/figure.py"


rule figure_feature_logos:
    input:
        neurons=FEATURE_CHAR["neurons"],
        pfm=FEATURE_CHAR["pfm"],
    output:
        **figure_outputs(
            "feature_logos",
            "feature_logos.rst",
            "4. SAE features",
            "sequence logos of the top IG SAE features",
        ),
    log:
        f"{R}/logs/figures/feature_logos.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_feature_logos", config),
        kind="feature_logos",
    message:
        "Drawing the logos of the top IG SAE features"
    script:
        "../scripts/figure.py"


rule figures:
    """Every figure, drawn from the result tables; training and scoring rerun only if their outputs are missing or stale."""
    input:
        FIGURE_FILES,
        # the characterisation stage's figures (characterise.smk), when it runs
        CHAR_FIGURE_FILES if config["characterise"]["enabled"] else [],
