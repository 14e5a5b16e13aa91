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


def feature_outputs():
    """What the default target builds of the feature stage (nothing without units.features)."""
    if not FEATURES:
        return []
    return [
        *per_replicate(SAE_REPORT),
        SAE_QUALITY,
        *FEATURE_STATS.values(),
        COMPACTNESS,
        *(FEATURE_CHAR.values() if CHARACTERISE_FEATURES else []),
    ]


def compactness_inputs(wildcards):
    """The global-scope ablation tables and predictions of every method, neurons and features,
    replicate-major (claim 6 compares the two curves of each method on the same test proteins).
    """
    return {
        "neuron_tables": [
            ablation_table(m, "global", p) for p in REP_PREFIXES for m in SCORE_METHODS
        ],
        "neuron_preds": [
            ablation_predictions(m, "global", p)
            for p in REP_PREFIXES
            for m in SCORE_METHODS
        ],
        "feature_tables": [
            feature_ablation(m, "tsv", p) for p in REP_PREFIXES for m in SCORE_METHODS
        ],
        "feature_preds": [
            feature_ablation(m, "pred.npz", p)
            for p in REP_PREFIXES
            for m in SCORE_METHODS
        ],
    }
