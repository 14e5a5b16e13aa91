# SAE features as units beside neurons (units.features; docs/features.md): the workflow's own SAEs
# trained per replicate and layer (train_sae), every SAE's reconstruction checked on the validation
# split (sae_report), features scored by every method (score_features) and ablated in the global
# scope against random features (ablate_features), their curve statistics pooled over replicates
# (feature_stats) and compared with the neurons' (compactness: claim 6). Logic:
# src/kneurons/features/; jobs: src/kneurons/jobs/features.py (training, report),
# src/kneurons/jobs/score.py and ablate.py (with SAEs attached), src/kneurons/jobs/stats.py.

FEATURES = config["units"]["features"]
#: Layers whose SAE the workflow trains (`sae: train`), in config order.
TRAINED_SAE_LAYERS = trained_sae_layers(FEATURES)
SAE_FILE = f"{R}/{{rep}}features/sae/layer{{layer}}.pt"
SAE_REPORT = f"{R}/{{rep}}features/saes.json"
FEATURE_STATS = {
    name: f"{R}/features/stats/{name}.tsv"
    for name in ("curves", "summary", "random_gap", "paired_tests")
}
COMPACTNESS = f"{R}/stats/compactness.tsv"


include: "functions/features.smk"


rule train_sae:
    input:
        model=BEST_MODEL,
        split=SPLIT,
    output:
        SAE_FILE,
    log:
        f"{R}/logs/{{rep}}features/train_sae/layer{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}features/train_sae/layer{{layer}}.tsv"
    wildcard_constraints:
        layer=r"\d+",
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("train_sae", config),
    message:
        "Training an SAE on the stream entering layer {wildcards.layer}"
    script:
        "../scripts/train_sae.py"


rule sae_report:
    input:
        model=BEST_MODEL,
        split=SPLIT,
        saes=trained_sae_files,
    output:
        SAE_REPORT,
    log:
        f"{R}/logs/{{rep}}features/sae_report.log",
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("sae_report", config),
    message:
        "Checking the SAEs' reconstruction on the validation split"
    script:
        "../scripts/sae_report.py"


rule score_features:
    input:
        model=BEST_MODEL,
        scoring_set=SCORING_SET,
        saes=trained_sae_files,
        # features are scored only after every SAE passed the wrong-layer check
        report=SAE_REPORT,
    output:
        feature_scores("{method}"),
    log:
        f"{R}/logs/{{rep}}features/score/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}features/score/{{method}}.tsv"
    wildcard_constraints:
        method="|".join(SCORE_METHODS),
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=4000 if config["model"]["name"] == "custom" else 16000,
        runtime=240,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("score_features", config),
    message:
        "Scoring SAE features by {wildcards.method}"
    script:
        "../scripts/score_features.py"


rule ablate_features:
    input:
        model=BEST_MODEL,
        split=SPLIT,
        scores=feature_scores("{method}"),
        saes=trained_sae_files,
    output:
        table=feature_ablation("{method}", "tsv"),
        pred=feature_ablation("{method}", "pred.npz"),
    log:
        f"{R}/logs/{{rep}}features/ablation/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}features/ablation/{{method}}.tsv"
    wildcard_constraints:
        method="|".join(SCORE_METHODS),
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("ablate_features", config),
    message:
        "Ablating the {wildcards.method} SAE features (global scope)"
    script:
        "../scripts/ablate_features.py"
