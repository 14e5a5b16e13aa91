# External test sets (evaluate.external: name -> file, or `synthetic`: new proteins with the
# training motifs, external_synthetic): label each set against the model's classes, list the
# proteins dropped and report its overlap with training (external_set), evaluate the knowledge
# neurons of every replicate on it (ablate_external: the global scope's preserve/suppress masks of
# every method and the random baseline) and pool the replicates (external_stats); the claims table
# gets rows per set (stats.smk). Logic: src/kneurons/data/external.py; jobs:
# src/kneurons/jobs/external.py, src/kneurons/jobs/ablate.py (ablate_external).

EXTERNAL = dict(config["evaluate"]["external"])
EXT_DIR = f"{R}/external/{{set}}"
EXTERNAL_FILES = {
    "proteins": f"{EXT_DIR}/proteins.tsv",
    "dropped": f"{EXT_DIR}/dropped.tsv",
    "report": f"{EXT_DIR}/report.json",
}
EXTERNAL_STATS = {
    "curves": f"{EXT_DIR}/curves.tsv",
    "random_gap": f"{EXT_DIR}/random_gap.tsv",
    "faithfulness": f"{EXT_DIR}/faithfulness.tsv",
    "metrics": f"{EXT_DIR}/metrics.json",
}


include: "functions/external.smk"


rule external_synthetic:
    output:
        f"{EXT_DIR}/synthetic.tsv",
    log:
        f"{R}/logs/external/{{set}}/external_synthetic.log",
    wildcard_constraints:
        set="|".join(n for n, v in EXTERNAL.items() if v == "synthetic") or "(?!)",
    conda:
        "../../envs/data.yaml"
    params:
        **rule_params("external_synthetic", config),
    message:
        "Generating new synthetic proteins with the training motifs for external set {wildcards.set}"
    script:
        "../scripts/external_synthetic.py"


rule external_set:
    input:
        source=external_source,
        split=SPLIT,
        classes=CLASSES,
        # the training proteins at full length: the overlap is measured on uncropped sequences
        proteins=PROTEINS,
    output:
        **EXTERNAL_FILES,
    log:
        f"{R}/logs/external/{{set}}/external_set.log",
    wildcard_constraints:
        set="|".join(EXTERNAL) or "(?!)",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **rule_params("external_set", config),
    message:
        "Labelling external set {wildcards.set} and measuring its overlap with training"
    script:
        "../scripts/external_set.py"


rule ablate_external:
    input:
        unpack(external_ablation_inputs),
    output:
        table=external_ablation("{set}", "{method}", "tsv"),
        pred=external_ablation("{set}", "{method}", "pred.npz"),
    log:
        f"{R}/logs/{{rep}}external/{{set}}/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}external/{{set}}/{{method}}.tsv"
    wildcard_constraints:
        set="|".join(EXTERNAL) or "(?!)",
        method="|".join(ABLATE_METHODS),
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("ablate_external", config),
    message:
        "Ablating the {wildcards.method} neurons on external set {wildcards.set}"
    script:
        "../scripts/ablate_external.py"


rule external_stats:
    # Replicate-major lists; the job cuts them into one list per replicate (params.replicates).
    input:
        tables=[
            external_ablation("{set}", m, "tsv", p)
            for p in REP_PREFIXES
            for m in ABLATE_METHODS
        ],
        preds=[
            external_ablation("{set}", m, "pred.npz", p)
            for p in REP_PREFIXES
            for m in ABLATE_METHODS
        ],
    output:
        **EXTERNAL_STATS,
    log:
        f"{R}/logs/external/{{set}}/external_stats.log",
    wildcard_constraints:
        set="|".join(EXTERNAL) or "(?!)",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **rule_params("external_stats", config),
    message:
        "Statistics of the knowledge neurons on external set {wildcards.set}"
    script:
        "../scripts/external_stats.py"
