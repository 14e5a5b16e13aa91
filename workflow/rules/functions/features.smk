# Functions of the SAE feature stage (workflow/rules/features.smk, which includes this file).


def sae_file(layer, rep="{rep}"):
    """The SAE the workflow trained on the stream entering ``layer`` for one replicate."""
    return SAE_FILE.replace("{rep}", rep).replace("{layer}", str(layer))


def trained_sae_files(wildcards):
    """The replicate's trained SAE files, one per `sae: train` entry in config order (as the jobs'
    ``sae_specs`` pairs them with the entries)."""
    return [sae_file(layer, wildcards.rep) for layer in TRAINED_SAE_LAYERS]


def feature_scores(method, rep="{rep}"):
    """The score table of one method over the SAE features of one replicate."""
    return f"{R}/{rep}features/scores/{method}.parquet"


def feature_ablation(method, ext, rep="{rep}"):
    """The global-scope ablation table (``ext`` tsv) or predictions (``pred.npz``) of one method's features."""
    return f"{R}/{rep}features/ablation/{method}.{ext}"


def feature_ablation_inputs(wildcards):
    """Inputs of one feature ablation job; the fills ``mean`` and ``resample`` (of the fills that
    apply to features) also need the scoring set."""
    inputs = {
        "model": BEST_MODEL.replace("{rep}", wildcards.rep),
        "split": SPLIT,
        "scores": feature_scores(wildcards.method, wildcards.rep),
        "saes": trained_sae_files(wildcards),
    }
    if SCORING_SET_FILLS & set(feature_fills(config["ablate"]["fills"])):
        inputs["scoring_set"] = SCORING_SET
    return inputs


def bases_ablation(layer, ext, rep="{rep}"):
    """The same-site bases' ablation table (``ext`` tsv) or predictions (``pred.npz``) of the SAE
    stream entering ``layer``, for one replicate."""
    return f"{R}/{rep}features/bases/layer{layer}.{ext}"


def bases_inputs(wildcards):
    """Inputs of one same-site bases job: the replicate's model, the test and scoring proteins, its
    SAEs and their features' score tables (every method, in score.methods order), after the SAE
    report's wrong-layer check."""
    return {
        "model": BEST_MODEL.replace("{rep}", wildcards.rep),
        "split": SPLIT,
        "scoring_set": SCORING_SET,
        "saes": trained_sae_files(wildcards),
        "scores": [feature_scores(m, wildcards.rep) for m in SCORE_METHODS],
        "report": SAE_REPORT.replace("{rep}", wildcards.rep),
    }


def feature_outputs():
    """What the default target builds of the feature stage (nothing without units.features)."""
    if not FEATURES:
        return []
    return [
        *per_replicate(SAE_REPORT),
        SAE_QUALITY,
        *FEATURE_STATS.values(),
        *([COMPACTNESS, *BASES_STATS.values()] if SAME_SITE else []),
        *(FEATURE_CHAR.values() if CHARACTERISE_FEATURES else []),
    ]


def compactness_inputs(wildcards):
    """The same-site bases tables and predictions of every SAE stream, replicate-major (claim 6
    compares the bases of one stream on the same test proteins)."""
    return {
        "tables": [
            bases_ablation(layer, "tsv", p)
            for p in REP_PREFIXES
            for layer in FEATURE_LAYERS
        ],
        "preds": [
            bases_ablation(layer, "pred.npz", p)
            for p in REP_PREFIXES
            for layer in FEATURE_LAYERS
        ],
    }
