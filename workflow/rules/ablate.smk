# Ablation: preserve / suppress the top-f neurons of each scope, for every scoring method (random
# over ablate.random_seeds), on the test split; then statistics over all jobs. One job per
# (method, scope), so a cluster runs them in parallel. Logic: src/kneurons/ablation/,
# src/kneurons/ablation/selection.py (ranking rules), src/kneurons/stats/.

ABLATE_METHODS = list(config["score"]["methods"])
ABLATE_SCOPES = list(config["ablate"]["scopes"])
STATS_DIR = f"{R}/stats"
#: The statistics tables (TSV, one row per curve / per f / per group; see src/kneurons/stats/).
STATS = {
    name: f"{STATS_DIR}/{name}.tsv"
    for name in ("curves", "summary", "random_gap", "paired_tests", "density")
}


rule ablate:
    input:
        unpack(ablation_inputs),
    output:
        table=ablation_table("{method}", "{scope}"),
        pred=ablation_predictions("{method}", "{scope}"),
    log:
        f"{R}/logs/ablation/{{method}}/{{scope}}.log",
    benchmark:
        f"{R}/benchmarks/ablation/{{method}}/{{scope}}.tsv"
    wildcard_constraints:
        method="|".join(ABLATE_METHODS),
        scope="|".join(ABLATE_SCOPES),
    conda:
        "../../envs/torch.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("ablate", config),
    message:
        "Ablating the {wildcards.method} neurons, scope {wildcards.scope}"
    script:
        "../scripts/ablate.py"


rule ablation_stats:
    input:
        tables=[ablation_table(m, s) for m in ABLATE_METHODS for s in ABLATE_SCOPES],
        preds=[
            ablation_predictions(m, s) for m in ABLATE_METHODS for s in ABLATE_SCOPES
        ],
        scores=[score_table(m) for m in ABLATE_METHODS],
    output:
        **STATS,
    log:
        f"{R}/logs/stats/ablation_stats.log",
    benchmark:
        f"{R}/benchmarks/stats/ablation_stats.tsv"
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **rule_params("ablation_stats", config),
    message:
        "Statistics over all ablation jobs"
    script:
        "../scripts/ablation_stats.py"


TARGETS += list(STATS.values())
