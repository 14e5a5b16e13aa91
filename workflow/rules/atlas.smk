# The neuron atlas: one self-contained HTML page (results/atlas/index.html) that opens from disk
# with no network: overview (verdicts, curves, density, training), a sortable/filterable neuron
# table and a panel per neuron (logo, windows, class profile, suppression, density cell); with
# units.features, SAE features are rows beside the neurons and the page has an SAE section.
# Logic: src/kneurons/atlas/ (torch-free: it reads the result tables only); job:
# src/kneurons/jobs/atlas.py.

ATLAS = f"{R}/atlas/index.html"
#: The figures of the page's overview (kneurons.atlas.OVERVIEW_FIGURES; a test checks they agree).
ATLAS_FIGURES = [
    "accuracy_preserve",
    "accuracy_suppress",
    "density",
    "training_curve",
    "confusion_matrix",
    # the SAE section's (kneurons.atlas.FEATURE_FIGURES), drawn where units.features is set
    "features_accuracy_preserve",
    "features_accuracy_suppress",
    "compactness",
    "feature_logos",
]


include: "functions/atlas.smk"


rule atlas:
    input:
        unpack(atlas_inputs),
    output:
        html=report(
            ATLAS,
            caption="../report/atlas.rst",
            category="Atlas",
            labels={"page": "neuron atlas (open from disk)"},
        ),
    log:
        f"{R}/logs/atlas/atlas.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **rule_params("atlas", config),
    message:
        "Building the neuron atlas"
    script:
        "../scripts/atlas.py"
