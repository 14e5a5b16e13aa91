# Neuron scoring: one job per (replicate, method, chunk of layers), gathered into one table per
# method. The scoring set is shared: every replicate is scored on the same proteins.
# The chunks (score.layers_per_job, kneurons.scatter.score_layer_chunks): by default one per
# layer for a named model, so a cluster scores its layers in parallel, and all layers in one job
# for a custom (demo) model, whose jobs would mostly start Python and load the checkpoint.
# Definitions: src/kneurons/scoring/; jobs: src/kneurons/jobs/score.py (score_layers),
# src/kneurons/jobs/data.py (run_scoring_set), src/kneurons/jobs/gather.py (run_gather_scores).

SCORE_METHODS = list(config["score"]["methods"])
SCORE_MODEL = BEST_MODEL  # finetune.smk
SCORING_SET = f"{R}/scores/scoring_set.tsv"
#: (first, last) layer of each scoring job of a method; the part file is named by both.
SCORE_CHUNKS = score_layer_chunks(config)
SCORE_PART = "layers{first}-{last}"


include: "functions/score.smk"


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


rule score_layers:
    input:
        model=SCORE_MODEL,
        scoring_set=SCORING_SET,
    output:
        f"{R}/{{rep}}scores/{{method}}/{SCORE_PART}.parquet",
    log:
        f"{R}/logs/{{rep}}score/{{method}}/{SCORE_PART}.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}score/{{method}}/{SCORE_PART}.tsv"
    wildcard_constraints:
        method="|".join(SCORE_METHODS),
        first=r"\d+",
        last=r"\d+",
    conda:
        "../../envs/torch.yaml"
    # As for finetune: a custom-size (demo) model gains nothing from a second OpenMP thread, and
    # on a busy machine it slows down severalfold (docs/performance.md).
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        # Host memory holds the model and the per-sequence score arrays of one layer at a time;
        # the tail's activations for token_budget tokens live on the GPU (or here on CPU runs).
        mem_mb=4000 if config["model"]["name"] == "custom" else 16000,
        # minutes: 240 per layer of the chunk (its layers are scored one after another)
        runtime=lambda wildcards: 240 * (int(wildcards.last) - int(wildcards.first) + 1),
        # `auto` may resolve to CUDA on the node that runs the job, so only `cpu` asks for none.
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("score_layers", config),
    message:
        "Scoring layers {wildcards.first}-{wildcards.last} by {wildcards.method}"
    script:
        "../scripts/score.py"


rule gather_scores:
    input:
        expand(
            f"{R}/{{{{rep}}}}scores/{{{{method}}}}/{SCORE_PART}.parquet",
            zip,
            first=[first for first, _ in SCORE_CHUNKS],
            last=[last for _, last in SCORE_CHUNKS],
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
        "Gathering the {wildcards.method} score tables of every layer chunk"
    script:
        "../scripts/gather_scores.py"
