# Functions of the statistics stage (workflow/rules/stats.smk, which includes this file).


def claims_inputs(wildcards):
    """The statistics behind the claims, and the intact model on the proteins each claim was
    measured on (the baseline rule): one test-split ablation job's predictions per replicate (every
    job of a replicate evaluates the same proteins), each external set's metrics and, with the
    characterisation, its class summaries; class specificity only when the characterisation runs,
    compactness only with SAE features, the concept stage's knowledge table when
    it runs.
    """
    inputs = {
        "random_gap": STATS["random_gap"],
        "faithfulness": STATS["faithfulness"],
        "density": STATS["density"],
        "intact": [
            ablation_predictions(ABLATE_METHODS[0], ABLATE_SCOPES[0], p)
            for p in REP_PREFIXES
        ],
    }
    inputs["external"] = [
        EXTERNAL_STATS["random_gap"].replace("{set}", name) for name in sorted(EXTERNAL)
    ]
    inputs["external_faithfulness"] = [
        EXTERNAL_STATS["faithfulness"].replace("{set}", name)
        for name in sorted(EXTERNAL)
    ]
    inputs["external_metrics"] = [
        EXTERNAL_STATS["metrics"].replace("{set}", name) for name in sorted(EXTERNAL)
    ]
    if config["characterise"]["enabled"]:
        inputs["class_specificity"] = per_replicate(CHAR_CLASS["specificity"])
        inputs["class_summary"] = per_replicate(CHAR_CLASS["summary"])
    # claim 6: SAE features against the other bases of their stream, where the SAEs fit (features.smk)
    if SAME_SITE:
        inputs["compactness"] = COMPACTNESS
        inputs["sae_quality"] = SAE_QUALITY
    if CONCEPTS_ENABLED:  # claim 7: knowledge units against random units (concepts.smk)
        inputs["concept_knowledge"] = CONCEPTS["knowledge"]
    return inputs
