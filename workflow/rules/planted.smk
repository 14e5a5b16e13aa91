# The planted-knowledge benchmark (planted.*; docs/evidence.md, "Ground truth: planted knowledge"):
# its own task (the parity of two motifs: planted_data), a base model that does not know it
# (planted_base), per variant (spread, concentrated) and replicate a planting that trains only the
# rows of a seeded set S of neurons and the head (planted_plant), the head-alone control per replicate
# (planted_head_only), every method scored on each planting (planted_score; delta against the base)
# and the run's ablation grid under the pretrained fill with the base as the reference
# (planted_ablate, planted_curves), each planting's ground truth and top-|S| selections
# (planted_ground_truth), and the recovery statistics, verdicts and figure (planted_stats,
# figure_planted_precision_recall). Target: `snakemake planted`; with planted.enabled the default
# target builds it too. Logic: src/kneurons/planted/; jobs: src/kneurons/jobs/planted.py (model) and
# planted_stats.py (data, statistics).

PLANTED = f"{R}/planted"
PLANTED_DATA = {
    name: f"{PLANTED}/data/{name}.tsv"
    for name in ("split", "classes", "motifs", "scoring_set")
}
PLANTED_BASE = f"{PLANTED}/base/best.pt"
#: One planting: variant (spread | concentrated) and replicate (0, 1, ...).
PLANTING = f"{PLANTED}/{{variant}}/{{replicate}}"
HEAD_ONLY = f"{PLANTED}/head_only/{{replicate}}"
PLANTED_VARIANTS = planted_variants(config)
PLANTED_METHODS = planted_methods(config)
PLANTED_REPLICATES = list(range(config["planted"]["replicates"]))
PLANTED_STATS = {
    name: f"{PLANTED}/stats/{name}.tsv"
    for name in ("recovery", "pr_curves", "ground_truth")
}
PLANTED_VERDICTS = {
    "verdicts": f"{PLANTED}/verdicts.tsv",
    "verdicts_html": f"{PLANTED}/verdicts.html",
}
PLANTED_CURVES = {
    name: f"{PLANTED}/{{variant}}/stats/{name}.tsv"
    for name in ("curves", "summary", "random_gap", "paired_tests")
}
PLANTED_FIGURE = f"{PLANTED}/figures/precision_recall"


include: "functions/planted.smk"


wildcard_constraints:
    variant="|".join(PLANTED_VARIANTS),
    replicate=r"\d+",


rule planted:
    input:
        planted_outputs(),


rule planted_data:
    output:
        **PLANTED_DATA,
    log:
        f"{R}/logs/planted/data.log",
    conda:
        "../../envs/data.yaml"
    params:
        **rule_params("planted_data", config),
    message:
        "Generating the planted task's proteins (the parity of its motifs)"
    script:
        "../scripts/planted_data.py"


rule planted_base:
    input:
        classes=PLANTED_DATA["classes"],
    output:
        PLANTED_BASE,
    log:
        f"{R}/logs/planted/base.log",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000 if config["model"]["name"] == "custom" else 32000,
        runtime=30,
    params:
        **rule_params("planted_base", config),
    message:
        "Building the planted benchmark's base model (never trained on its task)"
    script:
        "../scripts/planted_base.py"


rule planted_plant:
    input:
        unpack(planting_inputs),
    output:
        **planting_files(PLANTING),
        units=f"{PLANTING}/units.tsv",
    log:
        f"{R}/logs/planted/{{variant}}/{{replicate}}/plant.log",
    benchmark:
        f"{R}/benchmarks/planted/{{variant}}/{{replicate}}/plant.tsv"
    conda:
        "../../envs/torch.yaml"
    # As for finetune: a custom-size model gains nothing from a second thread (docs/performance.md).
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=4000 if config["model"]["name"] == "custom" else 32000,
        runtime=720,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("planted_plant", config),
    message:
        "Planting the task in S ({wildcards.variant}, replicate {wildcards.replicate})"
    script:
        "../scripts/planted_plant.py"


rule planted_head_only:
    input:
        unpack(planting_inputs),
    output:
        **planting_files(HEAD_ONLY),
    log:
        f"{R}/logs/planted/head_only/{{replicate}}.log",
    benchmark:
        f"{R}/benchmarks/planted/head_only/{{replicate}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=4000 if config["model"]["name"] == "custom" else 32000,
        runtime=720,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("planted_head_only", config),
    message:
        "Training the head alone on the base (the control, replicate {wildcards.replicate})"
    script:
        "../scripts/planted_plant.py"


rule planted_score:
    input:
        model=f"{PLANTING}/model/best.pt",
        scoring_set=PLANTED_DATA["scoring_set"],
        base=PLANTED_BASE,
    output:
        f"{PLANTING}/scores/{{method}}.parquet",
    log:
        f"{R}/logs/planted/{{variant}}/{{replicate}}/score/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/planted/{{variant}}/{{replicate}}/score/{{method}}.tsv"
    wildcard_constraints:
        method="|".join(PLANTED_METHODS),
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=4000 if config["model"]["name"] == "custom" else 16000,
        runtime=240,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("planted_score", config),
    message:
        "Scoring the planted model by {wildcards.method} ({wildcards.variant}, replicate {wildcards.replicate})"
    script:
        "../scripts/planted_score.py"


rule planted_ablate:
    input:
        model=f"{PLANTING}/model/best.pt",
        base=PLANTED_BASE,
        split=PLANTED_DATA["split"],
        scores=f"{PLANTING}/scores/{{method}}.parquet",
    output:
        tables=planted_ablation("tsv"),
        preds=planted_ablation("pred.npz"),
    log:
        f"{R}/logs/planted/{{variant}}/{{replicate}}/ablation/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/planted/{{variant}}/{{replicate}}/ablation/{{method}}.tsv"
    wildcard_constraints:
        method="|".join(PLANTED_METHODS),
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("planted_ablate", config),
    message:
        "Ablating the planted model's {wildcards.method} neurons under the pretrained fill "
        "({wildcards.variant}, replicate {wildcards.replicate})"
    script:
        "../scripts/planted_ablate.py"


rule planted_ground_truth:
    input:
        model=f"{PLANTING}/model/best.pt",
        base=PLANTED_BASE,
        split=PLANTED_DATA["split"],
        units=f"{PLANTING}/units.tsv",
        scores=expand(
            f"{PLANTING}/scores/{{method}}.parquet",
            method=PLANTED_METHODS,
            allow_missing=True,
        ),
    output:
        ground_truth=f"{PLANTING}/ground_truth.json",
        selections=f"{PLANTING}/selections.tsv",
    log:
        f"{R}/logs/planted/{{variant}}/{{replicate}}/ground_truth.log",
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("planted_ground_truth", config),
    message:
        "Rolling back S, everything else, and each method's top |S| neurons "
        "({wildcards.variant}, replicate {wildcards.replicate})"
    script:
        "../scripts/planted_ground_truth.py"


rule planted_curves:
    # Replicate-major lists (every method and scope of each replicate).
    input:
        tables=planted_curve_inputs("tsv"),
        preds=planted_curve_inputs("pred.npz"),
    output:
        **PLANTED_CURVES,
    log:
        f"{R}/logs/planted/{{variant}}/curves.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **rule_params("planted_curves", config),
    message:
        "Statistics over the planted ablations ({wildcards.variant})"
    script:
        "../scripts/planted_curves.py"


rule planted_stats:
    input:
        **planted_stats_inputs(),
    output:
        **PLANTED_STATS,
        verdicts=report(
            PLANTED_VERDICTS["verdicts"],
            caption="../report/planted.rst",
            category="0. Verdicts",
            labels={"table": "planted knowledge: a verdict per method"},
        ),
        verdicts_html=PLANTED_VERDICTS["verdicts_html"],
    log:
        f"{R}/logs/planted/stats.log",
    benchmark:
        f"{R}/benchmarks/planted/stats.tsv"
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **rule_params("planted_stats", config),
    message:
        "How well each method recovers the planted units"
    script:
        "../scripts/planted_stats.py"


rule figure_planted_precision_recall:
    input:
        pr_curves=PLANTED_STATS["pr_curves"],
        recovery=PLANTED_STATS["recovery"],
    output:
        **planted_figure_outputs(),
    log:
        f"{R}/logs/figures/planted_precision_recall.log",
    conda:
        "../../envs/plots.yaml"
    params:
        **rule_params("figure_planted_precision_recall", config),
        kind="planted_precision_recall",
    message:
        "Drawing the planted units' precision-recall curves"
    script:
        "../scripts/figure.py"
