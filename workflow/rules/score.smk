# Neuron scoring: one job per (replicate, method, layer), gathered into one table per method.
# The scoring set is shared: every replicate is scored on the same proteins.
# The scatter width is the model's layer count (LAYERS, from common.smk), so a cluster runs
# the layers of each method in parallel. Definitions: src/kneurons/scoring/.

SCORE_METHODS = list(config["score"]["methods"])
SCORE_MODEL = BEST_MODEL  # finetune.smk
SCORING_SET = f"{R}/scores/scoring_set.tsv"


rule scoring_set:
    input:
        split=SPLIT,
        classes=CLASSES,
    output:
        SCORING_SET,
    log:
        f"{R}/logs/score/scoring_set.log",
    conda:
        "../../envs/data.yaml"
    params:
        **rule_params("scoring_set", config),
    message:
        "Picking the scoring subset"
    script:
        "../scripts/scoring_set.py"


rule score_layer:
    input:
        model=SCORE_MODEL,
        scoring_set=SCORING_SET,
    output:
        f"{R}/{{rep}}scores/{{method}}/layer{{layer}}.parquet",
    log:
        f"{R}/logs/{{rep}}score/{{method}}/layer{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}score/{{method}}/layer{{layer}}.tsv"
    wildcard_constraints:
        method="|".join(SCORE_METHODS),
        layer=r"\d+",
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        # Host memory holds the model and the per-sequence score arrays; the tail's activations
        # for token_budget tokens live on the GPU (or here on CPU runs).
        mem_mb=4000 if config["model"]["name"] == "custom" else 16000,
        runtime=240,
        # `auto` may resolve to CUDA on the node that runs the job, so only `cpu` asks for none.
        gpu=0 if config["device"] == "cpu" else 1,
    # As for finetune: a custom-size (demo) model gains nothing from a second OpenMP thread, and
    # on a busy machine it slows down severalfold (docs/performance.md).
    params:
        **rule_params("score_layer", config),
    message:
        "Scoring layer {wildcards.layer} by {wildcards.method}"
    script:
        "../scripts/score.py"


rule gather_scores:
    input:
        expand(
            f"{R}/{{{{rep}}}}scores/{{{{method}}}}/layer{{layer}}.parquet",
            layer=LAYERS,
        ),
    output:
        score_table("{method}"),
    log:
        f"{R}/logs/{{rep}}score/{{method}}/gather.log",
    wildcard_constraints:
        method="|".join(SCORE_METHODS),
    conda:
        "../../envs/torch.yaml"
    params:
        **rule_params("gather_scores", config),
    message:
        "Gathering the {wildcards.method} score tables of every layer"
    script:
        "../scripts/gather_scores.py"


TARGETS += [score_table(m, p) for p in REP_PREFIXES for m in SCORE_METHODS]
