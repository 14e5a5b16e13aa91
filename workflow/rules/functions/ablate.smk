# Functions of the ablation stage (workflow/rules/ablate.smk, which includes this file).


def ablation_table(method, scope, rep="{rep}"):
    """Metrics of every mask of one job: one row per (method, scope, scope_name, mode, f, seed)."""
    return f"{R}/{rep}ablation/{method}/{scope}.tsv"


def ablation_predictions(method, scope, rep="{rep}"):
    """Per-protein predictions behind the rows of ``ablation_table`` (bootstrap, paired tests)."""
    return f"{R}/{rep}ablation/{method}/{scope}.pred.npz"


def ablation_seed_part(method, scope, seeds, ext, rep="{rep}"):
    """One seed chunk's part of a random-baseline ablation table (``ext``: ``tsv`` or ``pred.npz``)."""
    return f"{R}/{rep}ablation/{method}/seeds/{scope}/{seeds}.{ext}"


def ablation_inputs(wildcards):
    """Inputs of one ablation job; the fills ``mean`` and ``resample`` also need the scoring set."""
    inputs = {
        "model": BEST_MODEL.replace("{rep}", wildcards.rep),
        "split": SPLIT,
        "scores": score_table(wildcards.method, wildcards.rep),
    }
    if SCORING_SET_FILLS & set(config["ablate"]["fills"]):
        # mean activations and the resample donors come from the scoring data
        inputs["scoring_set"] = SCORING_SET
    return inputs
