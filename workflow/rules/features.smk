# SAE features as units beside neurons (units.features; docs/features.md): the workflow's own SAEs
# trained per replicate and layer (train_sae), every SAE's fit checked on the validation split
# (sae_report) and judged by the quality rule on every replicate (sae_quality), features scored by every method (score_features) and ablated in the global
# scope against random features (ablate_features), their curve statistics pooled over replicates
# (feature_stats); at each SAE's stream the features against the stream's other bases (dimensions,
# PCA, a random basis), fitted, scored and ablated in one job per replicate and SAE
# (same_site_bases), compared in `compactness` (claim 6). Logic: src/kneurons/features/; jobs:
# src/kneurons/jobs/features.py (training, report), src/kneurons/jobs/score.py and ablate.py (with
# SAEs attached), src/kneurons/jobs/bases.py, src/kneurons/jobs/stats.py.

FEATURES = config["units"]["features"]
#: Layers of every SAE of units.features (trained or given), in config order.
FEATURE_LAYERS = [int(entry["layer"]) for entry in FEATURES]
#: Claim 6's same-site bases beside each SAE's features (units.bases; none: no claim 6).
SAME_SITE = bool(FEATURES) and bool(config["units"]["bases"])
#: Layers whose SAE the workflow trains (`sae: train`), in config order.
TRAINED_SAE_LAYERS = trained_sae_layers(FEATURES)
SAE_FILE = f"{R}/{{rep}}features/sae/layer{{layer}}.pt"
SAE_REPORT = f"{R}/{{rep}}features/saes.json"
FEATURE_STATS = {
    name: f"{R}/features/stats/{name}.tsv"
    for name in ("curves", "summary", "random_gap", "paired_tests", "faithfulness")
}
COMPACTNESS = f"{R}/stats/compactness.tsv"
#: The same-site bases' curve statistics (every basis of every SAE stream, pooled over replicates).
BASES_STATS = {
    name: f"{R}/stats/bases_{name}.tsv"
    for name in ("curves", "summary", "random_gap", "faithfulness")
}
#: The SAE quality rule on every replicate's SAE report (claim 6 rests on it).
SAE_QUALITY = f"{R}/features/stats/sae_quality.tsv"
#: Where the top IG features fire (the main run; the same tables as the neurons', CHAR_NEURONS).
FEATURE_CHAR = {
    name: path.replace(f"{R}/{{rep}}characterise", f"{R}/features/characterise")
    for name, path in CHAR_NEURONS.items()
}
#: Characterised features need IG scores and the characterisation stage.
CHARACTERISE_FEATURES = bool(FEATURES) and config["characterise"]["enabled"]


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
    # The chain to the same-site bases (the longest job of a replicate) starts early, so the bases
    # do not run alone at the end with every short ablation job already done.
    priority: 1
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


rule sae_quality:
    # every replicate's SAE report, replicate-major, against the rule fixed in advance (sae.quality)
    input:
        reports=per_replicate(SAE_REPORT),
    output:
        report(
            SAE_QUALITY,
            caption="../report/sae_quality.rst",
            category="4. SAE features",
            labels={"table": "does each SAE fit each replicate (TSV)"},
        ),
    log:
        f"{R}/logs/features/sae_quality.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **rule_params("sae_quality", config),
    message:
        "The SAE quality rule on every replicate"
    script:
        "../scripts/sae_quality.py"


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
    # as train_sae: the chain to the same-site bases starts early
    priority: 1
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
        unpack(feature_ablation_inputs),
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
        "Ablating the {wildcards.method} SAE features (global scope, every feature fill)"
    script:
        "../scripts/ablate_features.py"


rule characterise_features:
    input:
        model=BEST_MODEL.replace("{rep}", ""),
        ig=feature_scores("ig", ""),
        split=SPLIT,
        saes=[sae_file(layer, "") for layer in TRAINED_SAE_LAYERS],
    output:
        **FEATURE_CHAR,
    log:
        f"{R}/logs/features/characterise.log",
    benchmark:
        f"{R}/benchmarks/features/characterise.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("characterise_features", config),
    message:
        "Characterising where the top IG SAE features fire"
    script:
        "../scripts/characterise_features.py"


rule same_site_bases:
    input:
        unpack(bases_inputs),
    output:
        table=bases_ablation("{layer}", "tsv"),
        pred=bases_ablation("{layer}", "pred.npz"),
    log:
        f"{R}/logs/{{rep}}features/bases/layer{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}features/bases/layer{{layer}}.tsv"
    wildcard_constraints:
        layer=r"\d+",
    # as train_sae: the chain to the same-site bases starts early
    priority: 1
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("same_site_bases", config),
    message:
        "Fitting, scoring and ablating the bases of the stream entering layer {wildcards.layer}"
    script:
        "../scripts/same_site_bases.py"


rule feature_stats:
    # Replicate-major lists; the job cuts them into one list per replicate (params.replicates).
    input:
        tables=[
            feature_ablation(m, "tsv", p) for p in REP_PREFIXES for m in SCORE_METHODS
        ],
        preds=[
            feature_ablation(m, "pred.npz", p)
            for p in REP_PREFIXES
            for m in SCORE_METHODS
        ],
    output:
        **FEATURE_STATS,
    log:
        f"{R}/logs/features/stats.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **rule_params("feature_stats", config),
    message:
        "Statistics over the SAE feature ablations"
    script:
        "../scripts/feature_stats.py"


rule compactness:
    # Replicate-major lists of the same-site bases tables, one per SAE stream.
    input:
        unpack(compactness_inputs),
    output:
        # named as the job names them (bases_curves, ...)
        **{f"bases_{name}": path for name, path in BASES_STATS.items()},
        compactness=COMPACTNESS,
    log:
        f"{R}/logs/stats/compactness.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **rule_params("compactness", config),
    message:
        "Comparing how compact the knowledge is in SAE features and in the other bases of their stream (claim 6)"
    script:
        "../scripts/compactness.py"
