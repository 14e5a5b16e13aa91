# Functions of the explain stage (workflow/rules/explain.smk, which includes this file).


def explain_proteins_file(path):
    """``explain.proteins`` where Snakemake finds it: a relative path is read from the working
    directory, else from the workflow's folder (where the embedded default's example ships).
    """
    if path is None or Path(path).is_absolute() or Path(path).exists():
        return path
    shipped = Path(workflow.basedir) / path
    return str(shipped) if shipped.exists() else path


def explain_inputs(wildcards):
    """The proteins and every file of the run an explanation reads (kneurons.explain.run.RunFiles):
    per replicate its checkpoint, IG scores, feature IG scores (units.features) and class
    characterisation (when it runs); the main run's atlas, label report, IG ablation table (its
    fill), run metadata and scoring set (the mean fill's).
    """
    scope = "global" if "global" in ABLATE_SCOPES else ABLATE_SCOPES[0]
    inputs = {
        "proteins": explain_proteins_file(EXPLAIN_PROTEINS),
        "checkpoints": per_replicate(MODEL_FILES["model"]),
        "ig_scores": [score_table("ig", p) for p in REP_PREFIXES],
        "atlas": ATLAS,
        "label_report": LABEL_REPORT,
        "ablation": ablation_table("ig", scope, ""),
        "metadata": MODEL_FILES["metadata"].replace("{rep}", ""),
        "scoring_set": SCORING_SET,
    }
    if FEATURES:
        inputs["feature_scores"] = [feature_scores("ig", p) for p in REP_PREFIXES]
    if config["characterise"]["enabled"]:
        inputs["class_neurons"] = per_replicate(CHAR_CLASS["neurons"])
        inputs["class_specificity"] = per_replicate(CHAR_CLASS["specificity"])
    return inputs


def explain_outputs():
    """What the default target builds of the explain stage (nothing while explain.proteins is null)."""
    return list(EXPLAIN_FILES.values()) if EXPLAIN_PROTEINS else []
