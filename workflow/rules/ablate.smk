# Ablation: preserve / suppress the top-f neurons of each scope, for every scoring method (random
# over ablate.random_seeds), on the test split; then statistics over all jobs. One job per
# (method, scope), so a cluster runs them in parallel. Logic: src/kneurons/ablation.py,
# src/kneurons/selection.py (ranking rules), src/kneurons/stats.py.

ABLATE_METHODS = list(config["score"]["methods"])
ABLATE_SCOPES = list(config["ablate"]["scopes"])
ABLATION_DIR = f"{R}/ablation"
STATS_DIR = f"{R}/stats"
#: The statistics tables (TSV, one row per curve / per f / per group; see src/kneurons/stats.py).
STATS = {name: f"{STATS_DIR}/{name}.tsv" for name in ("curves", "summary", "random_gap", "paired_tests", "density")}


def ablation_table(method, scope):
    """Metrics of every mask of one job: one row per (method, scope, scope_name, mode, f, seed)."""
    return f"{ABLATION_DIR}/{method}/{scope}.tsv"


def ablation_predictions(method, scope):
    """Per-protein predictions behind the rows of ``ablation_table`` (bootstrap, paired tests)."""
    return f"{ABLATION_DIR}/{method}/{scope}.pred.npz"


def ablation_inputs(wildcards):
    inputs = {"model": BEST_MODEL, "split": SPLIT, "scores": score_table(wildcards.method)}
    if config["ablate"]["fill"] == "mean":
        inputs["scoring_set"] = SCORING_SET  # mean activations are measured on the scoring data
    return inputs


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
    params:
        # rerun when the ablation settings change (they are read from config by the script)
        ablate=config["ablate"],
    threads: 4
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0 if config["device"] == "cpu" else 1,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/ablate.py"


rule ablation_stats:
    input:
        tables=[ablation_table(m, s) for m in ABLATE_METHODS for s in ABLATE_SCOPES],
        preds=[ablation_predictions(m, s) for m in ABLATE_METHODS for s in ABLATE_SCOPES],
        scores=[score_table(m) for m in ABLATE_METHODS],
    output:
        **STATS,
    log:
        f"{R}/logs/stats/ablation_stats.log",
    benchmark:
        f"{R}/benchmarks/stats/ablation_stats.tsv"
    params:
        methods=ABLATE_METHODS,
        stats=config["stats"],
        normalise=config["ablate"]["normalise"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/plots.yaml"
    script:
        "../scripts/ablation_stats.py"


TARGETS += list(STATS.values())
