# Statistics over every ablation job of every replicate (ablation_stats: curve summaries, gaps to
# random, paired tests, density, stability), and a verdict per claim from them (claims; the
# external sets' statistics, which the claims also read, are in external.smk). Logic:
# src/kneurons/stats/; jobs: src/kneurons/jobs/stats.py, src/kneurons/jobs/claims.py.

STATS_DIR = f"{R}/stats"
#: The statistics tables (TSV, one row per curve / per f / per group; see src/kneurons/stats/).
STATS = {
    name: f"{STATS_DIR}/{name}.tsv"
    for name in (
        "curves",
        "summary",
        "random_gap",
        "paired_tests",
        "faithfulness",
        "density",
        "stability",
    )
}
CLAIMS = f"{STATS_DIR}/claims.tsv"
#: The verdict table rendered, for the report's first screen (workflow/report/workflow.rst).
VERDICTS = f"{STATS_DIR}/verdicts.html"


include: "functions/stats.smk"


rule ablation_stats:
    # Replicate-major lists; the job cuts them into one list per replicate (params.replicates).
    input:
        tables=[
            ablation_table(m, s, p)
            for p in REP_PREFIXES
            for m in ABLATE_METHODS
            for s in ABLATE_SCOPES
        ],
        preds=[
            ablation_predictions(m, s, p)
            for p in REP_PREFIXES
            for m in ABLATE_METHODS
            for s in ABLATE_SCOPES
        ],
        scores=[score_table(m, p) for p in REP_PREFIXES for m in ABLATE_METHODS],
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


rule claims:
    input:
        unpack(claims_inputs),
    output:
        claims=report(
            CLAIMS,
            caption="../report/claims.rst",
            category="0. Verdicts",
            labels={"table": "a verdict per claim (TSV; rendered on the first page)"},
        ),
        verdicts=VERDICTS,
    log:
        f"{R}/logs/stats/claims.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **rule_params("claims", config),
    message:
        "A verdict per claim"
    script:
        "../scripts/claims.py"
