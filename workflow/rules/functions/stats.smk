# Functions of the statistics stage (workflow/rules/stats.smk, which includes this file).


def claims_inputs(wildcards):
    """The statistics behind the claims, and the intact model's metrics on each set (the baseline
    rule); class specificity only when the characterisation runs, compactness only with SAE features,
    the concept stage's knowledge table when it runs.
    """
    inputs = {
        "random_gap": STATS["random_gap"],
        "density": STATS["density"],
        "metrics": per_replicate(MODEL_FILES["metrics"]),
    }
    inputs["external"] = [
        EXTERNAL_STATS["random_gap"].replace("{set}", name) for name in sorted(EXTERNAL)
    ]
    inputs["external_metrics"] = [
        EXTERNAL_STATS["metrics"].replace("{set}", name) for name in sorted(EXTERNAL)
    ]
    if config["characterise"]["enabled"]:
        inputs["class_specificity"] = per_replicate(CHAR_CLASS["specificity"])
    if FEATURES:  # claim 6: SAE features against neurons (features.smk)
        inputs["compactness"] = COMPACTNESS
    if CONCEPTS_ENABLED:  # claim 7: knowledge units against random units (concepts.smk)
        inputs["concept_knowledge"] = CONCEPTS["knowledge"]
    return inputs
