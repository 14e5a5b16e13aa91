# Ablation: preserve / suppress the top-f neurons of each scope, for every scoring method (random
# over ablate.random_seeds), on the test split. One job per (method, scope), and for the random
# baseline one per (scope, chunk of seeds; ablate.seeds_per_job), gathered in seed order into the
# same table, so a cluster runs them in parallel. The statistics over all jobs: stats.smk. Logic: src/kneurons/ablation/, src/kneurons/ranking.py
# (ranking rules); jobs: src/kneurons/jobs/ablate.py, src/kneurons/jobs/gather.py
# (run_gather_ablation_seeds).

ABLATE_METHODS = list(config["score"]["methods"])
#: The fills whose values come from the scoring set (mean activations, resample donors).
SCORING_SET_FILLS = {"mean", "resample"}
ABLATE_SCOPES = list(config["ablate"]["scopes"])
#: The random baseline's jobs: one per chunk of seeds (ablate.seeds_per_job), e.g. "0_1_2_3_4".
SEED_CHUNKS = [seed_chunk_label(c) for c in random_seed_chunks(config)]


include: "functions/ablate.smk"


rule ablate:
    input:
        unpack(ablation_inputs),
    output:
        table=ablation_table("{method}", "{scope}"),
        pred=ablation_predictions("{method}", "{scope}"),
    log:
        f"{R}/logs/{{rep}}ablation/{{method}}/{{scope}}.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}ablation/{{method}}/{{scope}}.tsv"
    wildcard_constraints:
        # the random baseline's tables are gathered from its seed-chunk jobs (ablate_seed);
        # "(?!)" matches nothing, when random is the only method
        method="|".join(m for m in ABLATE_METHODS if m != "random") or "(?!)",
        scope="|".join(ABLATE_SCOPES),
    conda:
        "../../envs/torch.yaml"
    # A custom-size model (the demo's 64-dim matmuls) gains nothing from a second thread
    # (measured: docs/performance.md); one thread lets two jobs share two cores.
    threads: 1 if config["model"]["name"] == "custom" else 4
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


rule ablate_seed:
    input:
        unpack(ablation_inputs),
    output:
        table=ablation_seed_part("{method}", "{scope}", "{seeds}", "tsv"),
        pred=ablation_seed_part("{method}", "{scope}", "{seeds}", "pred.npz"),
    log:
        f"{R}/logs/{{rep}}ablation/{{method}}/seeds/{{scope}}/{{seeds}}.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}ablation/{{method}}/seeds/{{scope}}/{{seeds}}.tsv"
    wildcard_constraints:
        method="random",
        scope="|".join(ABLATE_SCOPES),
        seeds=r"\d+(_\d+)*",
    # The longest jobs (a chunk of seeds is that many ablation jobs' work) start first, so that
    # the short ones fill the cores at the end instead of one long job running alone.
    priority: 1
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        # minutes: 240 per seed of the chunk
        runtime=lambda wildcards: 240 * len(seed_chunk_seeds(wildcards.seeds)),
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("ablate_seed", config),
    message:
        "Ablating the random neurons of seeds {wildcards.seeds}, scope {wildcards.scope}"
    script:
        "../scripts/ablate.py"


rule gather_ablation_seeds:
    input:
        tables=expand(
            ablation_seed_part("{{method}}", "{{scope}}", "{seeds}", "tsv", "{{rep}}"),
            seeds=SEED_CHUNKS,
        ),
        preds=expand(
            ablation_seed_part(
                "{{method}}", "{{scope}}", "{seeds}", "pred.npz", "{{rep}}"
            ),
            seeds=SEED_CHUNKS,
        ),
    output:
        table=ablation_table("{method}", "{scope}"),
        pred=ablation_predictions("{method}", "{scope}"),
    log:
        f"{R}/logs/{{rep}}ablation/{{method}}/{{scope}}.log",
    wildcard_constraints:
        method="random",
        scope="|".join(ABLATE_SCOPES),
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **rule_params("gather_ablation_seeds", config),
    message:
        "Gathering the random baseline's seed chunks, scope {wildcards.scope}"
    script:
        "../scripts/gather_ablation_seeds.py"
