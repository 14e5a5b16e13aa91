# Functions of the atlas stage (workflow/rules/atlas.smk, which includes this file).


def atlas_inputs(wildcards):
    """Inputs of the atlas: scores, statistics, the claims' verdicts, training metrics, the
    overview figures (png) and, when the stage runs, the characterisation tables; with SAE
    features, their score tables, the SAE report, the SAE quality rule on every replicate, their
    gap to random, claim 6's compactness
    table and (when characterised) their characterisation tables.
    """
    inputs = {
        # The atlas shows the main run (replicate 0); the statistics pool every replicate.
        "scores": [score_table(m, "") for m in ABLATE_METHODS],
        "density": STATS["density"],
        "random_gap": STATS["random_gap"],
        "claims": CLAIMS,
        # the curves' intact accuracy (mean of the replicates), named beside replicate 0's
        "curves": STATS["curves"],
        "metrics": MODEL_FILES["metrics"].replace("{rep}", ""),
    }
    if "png" in FIG_FORMATS:
        inputs.update(
            {
                f"fig_{name}": f"{FIG_DIR}/{name}.png"
                for name in ATLAS_FIGURES
                if name in FIGURES
            }
        )
    if config["characterise"]["enabled"]:
        main = {
            "neurons": CHAR_NEURONS["neurons"],
            "windows": CHAR_NEURONS["windows"],
            "pfm": CHAR_NEURONS["pfm"],
            "window_activations": CHAR_NEURONS["window_activations"],
            "class_neurons": CHAR_CLASS["neurons"],
            "class_suppression": CHAR_CLASS["matrix"],
            "class_specificity": CHAR_CLASS["specificity"],
        }
        inputs.update({k: v.replace("{rep}", "") for k, v in main.items()})
    if FEATURES:
        # SAE features as units beside the neurons (main run), and the page's SAE section
        inputs.update(
            {
                "feature_scores": [feature_scores(m, "") for m in ABLATE_METHODS],
                "sae_report": SAE_REPORT.replace("{rep}", ""),
                "sae_quality": SAE_QUALITY,
                "feature_random_gap": FEATURE_STATS["random_gap"],
            }
        )
    if SAME_SITE:
        inputs["compactness"] = COMPACTNESS
    if CHARACTERISE_FEATURES:
        tables = ("neurons", "windows", "pfm", "window_activations")
        inputs.update({f"feature_{name}": FEATURE_CHAR[name] for name in tables})
    if CONCEPTS_ENABLED:  # each unit's concepts and the concept section (concepts.smk)
        tables = ("units", "alignment", "summary", "knowledge", "info")
        inputs.update({f"concept_{name}": CONCEPTS[name] for name in tables})
        inputs.update(
            {
                f"fig_concepts_{name}": f"{CONCEPT_FIG}/{name}.png"
                for name in CONCEPT_FIGURES
            }
        )
    return inputs
