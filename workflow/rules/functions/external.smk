# Functions of the external-set stage (workflow/rules/external.smk, which includes this file).


def external_source(wildcards):
    """The file of an external set: the user's, or the generated one for ``synthetic``."""
    path = EXTERNAL[wildcards.set]
    if path == "synthetic":
        return f"{R}/external/{wildcards.set}/synthetic.tsv"
    return path


def external_ablation(name, method, ext, rep="{rep}"):
    """One replicate's ablation of one method on external set ``name`` (``ext``: tsv or pred.npz)."""
    return f"{R}/{rep}external/{name}/ablation/{method}.{ext}"


def external_ablation_inputs(wildcards):
    """Inputs of one external ablation job; the fills ``mean`` and ``resample`` also need the
    scoring set."""
    inputs = {
        "model": BEST_MODEL.replace("{rep}", wildcards.rep),
        "proteins": EXTERNAL_FILES["proteins"].replace("{set}", wildcards.set),
        "scores": score_table(wildcards.method, wildcards.rep),
    }
    if SCORING_SET_FILLS & set(config["ablate"]["fills"]):
        inputs["scoring_set"] = SCORING_SET
    return inputs
