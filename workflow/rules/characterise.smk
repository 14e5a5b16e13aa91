# What knowledge neurons know: class-specific neurons (selection, overlap, suppression) and where
# the top IG neurons fire along held-out sequences (windows, logos, site AUROC).
# Definitions: src/kneurons/characterise/; figures: src/kneurons/figures/characterise.py;
# jobs: src/kneurons/jobs/characterise.py, src/kneurons/jobs/figures.py (make_figures).

# Per replicate (`rep`: "" for the main run, replicates/<r>/ for the others); the figures and the
# atlas show the main run, the claims pool the class specificity of every replicate.
CHAR = f"{R}/{{rep}}characterise"
CHAR_FIG = f"{R}/figures/characterise"
CHAR_MODEL = BEST_MODEL  # finetune.smk
CHAR_IG = score_table("ig")  # score.smk
CHAR_CLASS = {
    "neurons": f"{CHAR}/class_neurons.tsv",
    "overlap": f"{CHAR}/class_overlap.tsv",
    "matrix": f"{CHAR}/class_suppression.tsv",
    "specificity": f"{CHAR}/class_specificity.tsv",
    "summary": f"{CHAR}/class_summary.json",
}
CHAR_NEURONS = {
    "neurons": f"{CHAR}/neurons.tsv",
    "windows": f"{CHAR}/windows.tsv",
    "pfm": f"{CHAR}/pfm.tsv",
    "summary": f"{CHAR}/site_summary.tsv",
    "info": f"{CHAR}/sites.json",
    "window_activations": f"{CHAR}/window_activations.tsv",
}
CHAR_FORMATS = list(dict.fromkeys(["png", *config["figures"]["formats"]]))
#: name -> (report caption, label); each figure is written in every format, png is in the report.
CHAR_FIGURES = {
    "logos": ("characterise_logos.rst", "sequence logos of the top IG neurons"),
    "site_auroc": (
        "characterise_site_auroc.rst",
        "site AUROC by module type and layer",
    ),
    "class_specificity": (
        "characterise_class_specificity.rst",
        "class-specific neurons: recall change, overlap",
    ),
}
#: Every characterisation figure file (the default target's, and the `figures` rule's).
CHAR_FIGURE_FILES = [
    f"{CHAR_FIG}/{name}.{fmt}" for name in CHAR_FIGURES for fmt in CHAR_FORMATS
]


include: "functions/characterise.smk"


rule characterise_classes:
    input:
        model=CHAR_MODEL,
        ig=CHAR_IG,
        split=SPLIT,
        scoring_set=SCORING_SET,
    output:
        **CHAR_CLASS,
    log:
        f"{R}/logs/{{rep}}characterise/classes.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}characterise/classes.tsv"
    conda:
        "../../envs/torch.yaml"
    # As for the other model steps: a custom-size (demo) model gains nothing from more threads.
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("characterise_classes", config),
    message:
        "Finding class-specific neurons and suppressing them"
    script:
        "../scripts/characterise_classes.py"


rule characterise_neurons:
    input:
        model=CHAR_MODEL,
        ig=CHAR_IG,
        split=SPLIT,
        class_neurons=CHAR_CLASS["neurons"],
    output:
        **CHAR_NEURONS,
    log:
        f"{R}/logs/{{rep}}characterise/neurons.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}characterise/neurons.tsv"
    conda:
        "../../envs/torch.yaml"
    # As for the other model steps: a custom-size (demo) model gains nothing from more threads.
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("characterise_neurons", config),
    message:
        "Characterising where the top IG neurons fire"
    script:
        "../scripts/characterise_neurons.py"


rule characterise_figures:
    input:
        neurons=CHAR_NEURONS["neurons"].replace("{rep}", ""),
        pfm=CHAR_NEURONS["pfm"].replace("{rep}", ""),
        info=CHAR_NEURONS["info"].replace("{rep}", ""),
        matrix=CHAR_CLASS["matrix"].replace("{rep}", ""),
        overlap=CHAR_CLASS["overlap"].replace("{rep}", ""),
    output:
        **char_figure_outputs(),
    log:
        f"{R}/logs/characterise/figures.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("characterise_figures", config),
        figures=list(CHAR_FIGURES),
    message:
        "Drawing the characterisation figures"
    script:
        "../scripts/characterise_figures.py"
