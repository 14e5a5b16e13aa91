# Paper figures (PNG + PDF) from the result tables, with report captions. `snakemake figures`
# draws the missing ones from existing results; to redraw all of them without touching training,
# scoring or ablation (also after their code changed):
#   snakemake figures --rerun-triggers mtime --forcerun figure_accuracy figure_density \
#       figure_smallest_fraction figure_layer_module_gap figure_training_curve figure_confusion_matrix
# `snakemake --report results/report.html` gathers them. Logic: src/kneurons/figures.py.

FIG_DIR = f"{R}/figures"
FIG_FORMATS = list(config["figures"]["formats"])
#: The format embedded in the report: png if made, else the first format.
REPORT_FORMAT = "png" if "png" in FIG_FORMATS else FIG_FORMATS[0]


def run_description():
    """What was run, for the captions: model, data, split, scoring, ablation settings (from config)."""
    m, d, lab, sp = config["model"], config["data"], config["labels"], config["split"]
    if m["name"] == "custom":
        c = m["custom"]
        model = f"custom ESM-2 ({c['num_layers']} layers, {c['embed_dim']} dim, {c['attention_heads']} heads)"
    else:
        model = m["name"]
    model += ", pretrained weights" if m["pretrained"] else ", random initialisation"
    src = d["source"]
    if src == "synthetic":
        s = d["synthetic"]
        data = (
            f"synthetic planted-motif proteins ({s['n_classes']} classes x {s['n_per_class']}, "
            f"lengths {s['length_min']}-{s['length_max']})"
        )
    elif src in ("tsv", "fasta"):
        data = f"{src} file {Path(str(d[src])).name}"
    else:
        data = f"{src}"
    fr = sp["fractions"]
    sc, ab = config["score"], config["ablate"]
    return (
        f"Model: {model}, fine-tuned with seed {config['seed']}. Data: {data}; EC level {lab['level']} labels "
        f"(classes with < {lab['min_class_size']} proteins dropped). Split: {sp['method']} "
        f"train/val/test = {fr['train']}/{fr['val']}/{fr['test']}. Scores: {', '.join(sc['methods'])} on up to "
        f"{sc['max_sequences']} {sc['split']} proteins (IG: {sc['ig']['steps']} steps, target {sc['ig']['target']}). "
        f"Ablation on the test split: fill {ab['fill']}, per-module normalisation {ab['normalise']}, "
        f"f in {ab['fractions']}, random baseline seeds {ab['random_seeds']}."
    )


RUN_DESCRIPTION = run_description()


def figure_outputs(name, caption, category, label):
    """Named outputs, one per format; the report format carries the caption."""
    out = {}
    for fmt in FIG_FORMATS:
        path = f"{FIG_DIR}/{name}.{fmt}"
        if fmt == REPORT_FORMAT:
            path = report(path, caption=f"../report/{caption}", category=category, labels={"figure": label})
        out[fmt] = path
    return out


HAS_CURVE_SCOPES = bool({"global", "module_type"} & set(ABLATE_SCOPES))
HAS_GAP = "layer_module" in ABLATE_SCOPES and "random" in ABLATE_METHODS
FIGURES = {"density": "density", "training_curve": "training", "confusion_matrix": "training"}
if HAS_CURVE_SCOPES:
    FIGURES.update({f"accuracy_{mode}": "curves" for mode in config["ablate"]["modes"]})
    if "preserve" in config["ablate"]["modes"]:
        FIGURES["smallest_fraction"] = "smallest"
if HAS_GAP:
    FIGURES["layer_module_gap"] = "gap"


rule figure_accuracy:
    input:
        curves=STATS["curves"],
    output:
        **figure_outputs(
            "accuracy_{mode}", "accuracy_curves.rst", "1. Ablation curves", "accuracy vs f ({mode})"
        ),
    log:
        f"{R}/logs/figures/accuracy_{{mode}}.log",
    wildcard_constraints:
        mode="preserve|suppress",
    params:
        kind=lambda wc: f"accuracy_{wc.mode}",
        run=RUN_DESCRIPTION,
    conda:
        "../../envs/plots.yaml"
    script:
        "../scripts/figure.py"


rule figure_density:
    input:
        density=STATS["density"],
    output:
        **figure_outputs("density", "density.rst", "2. Density", "layer x module enrichment"),
    log:
        f"{R}/logs/figures/density.log",
    params:
        kind="density",
        run=RUN_DESCRIPTION,
    conda:
        "../../envs/plots.yaml"
    script:
        "../scripts/figure.py"


rule figure_smallest_fraction:
    input:
        summary=STATS["summary"],
    output:
        **figure_outputs("smallest_fraction", "smallest_fraction.rst", "1. Ablation curves", "smallest f keeping accuracy"),
    log:
        f"{R}/logs/figures/smallest_fraction.log",
    params:
        kind="smallest_fraction",
        run=RUN_DESCRIPTION,
    conda:
        "../../envs/plots.yaml"
    script:
        "../scripts/figure.py"


rule figure_layer_module_gap:
    input:
        random_gap=STATS["random_gap"],
    output:
        **figure_outputs("layer_module_gap", "layer_module_gap.rst", "1. Ablation curves", "single-module AUC gap"),
    log:
        f"{R}/logs/figures/layer_module_gap.log",
    params:
        kind="layer_module_gap",
        run=RUN_DESCRIPTION,
    conda:
        "../../envs/plots.yaml"
    script:
        "../scripts/figure.py"


rule figure_training_curve:
    input:
        curve=f"{MODEL_DIR}/training_curve.tsv",
        metrics=f"{MODEL_DIR}/metrics.json",
    output:
        **figure_outputs("training_curve", "training_curve.rst", "3. Fine-tuning", "training curve"),
    log:
        f"{R}/logs/figures/training_curve.log",
    params:
        kind="training_curve",
        run=RUN_DESCRIPTION,
    conda:
        "../../envs/plots.yaml"
    script:
        "../scripts/figure.py"


rule figure_confusion_matrix:
    input:
        metrics=f"{MODEL_DIR}/metrics.json",
    output:
        **figure_outputs("confusion_matrix", "confusion_matrix.rst", "3. Fine-tuning", "test confusion matrix"),
    log:
        f"{R}/logs/figures/confusion_matrix.log",
    params:
        kind="confusion_matrix",
        run=RUN_DESCRIPTION,
    conda:
        "../../envs/plots.yaml"
    script:
        "../scripts/figure.py"


FIGURE_FILES = [f"{FIG_DIR}/{name}.{fmt}" for name in FIGURES for fmt in FIG_FORMATS]
# The characterisation stage's figures (characterise.smk, included before this file) join the target.
CHARACTERISE_FIGURE_FILES = (
    [f"{CHAR_FIG}/{name}.{fmt}" for name in CHAR_FIGURES for fmt in CHAR_FORMATS]
    if "CHAR_FIGURES" in globals() and config["characterise"]["enabled"]
    else []
)


rule figures:
    """Every figure, drawn from the result tables; training and scoring rerun only if their outputs are missing or stale."""
    input:
        FIGURE_FILES,
        CHARACTERISE_FIGURE_FILES,


TARGETS += FIGURE_FILES
