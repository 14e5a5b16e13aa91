# What units know, measured as InterPLM measures it (concepts.enabled): every neuron and SAE feature
# of the main run against the concepts of the split's residue annotations (UniProt feature columns;
# the synthetic planted motifs): thresholds on the validation part, F1 and shuffled nulls on the test
# part, a summary per layer and kind of unit, and the knowledge units against random units (claim 7,
# read by the claims rule). Logic: src/kneurons/concepts/; jobs: src/kneurons/jobs/concepts.py;
# figures: src/kneurons/figures/concepts.py.

CONCEPTS_ENABLED = config["concepts"]["enabled"]
CONCEPTS_DIR = f"{R}/concepts"
#: The stage's tables (kneurons.tables.concepts) and its info.
CONCEPTS = {
    **{
        name: f"{CONCEPTS_DIR}/{name}.tsv"
        for name in ("alignment", "summary", "concepts", "units", "knowledge")
    },
    "info": f"{CONCEPTS_DIR}/info.json",
}
CONCEPT_FIG = f"{R}/figures/concepts"
CONCEPT_FORMATS = list(dict.fromkeys(["png", *config["figures"]["formats"]]))
#: name -> (report caption, label); each figure in every format, png in the report.
CONCEPT_FIGURES = {
    "units_aligned": (
        "concepts_units_aligned.rst",
        "units aligned with a concept, per layer",
    ),
    "covered": (
        "concepts_covered.rst",
        "best unit per concept, neurons and features",
    ),
    "knowledge": (
        "concepts_knowledge.rst",
        "claim 7: knowledge units and catalytic concepts",
    ),
}
#: Every concept figure file (the default target's).
CONCEPT_FIGURE_FILES = [
    f"{CONCEPT_FIG}/{name}.{fmt}" for name in CONCEPT_FIGURES for fmt in CONCEPT_FORMATS
]


include: "functions/concepts.smk"


rule concepts:
    input:
        unpack(concepts_inputs),
    output:
        **CONCEPTS,
    log:
        f"{R}/logs/concepts/concepts.log",
    benchmark:
        f"{R}/benchmarks/concepts/concepts.tsv"
    conda:
        "../../envs/torch.yaml"
    # As for the other model steps: a custom-size (demo) model gains nothing from more threads.
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("concepts", config),
    message:
        "Aligning neurons and SAE features with the annotated concepts"
    script:
        "../scripts/concepts.py"


rule concept_figures:
    input:
        **{k: v for k, v in CONCEPTS.items() if k != "alignment"},
    output:
        **concept_figure_outputs(),
    log:
        f"{R}/logs/concepts/figures.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("concept_figures", config),
        figures=list(CONCEPT_FIGURES),
    message:
        "Drawing the concept alignment figures"
    script:
        "../scripts/concept_figures.py"
