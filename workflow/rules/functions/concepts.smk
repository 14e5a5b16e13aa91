# Functions of the concept stage (workflow/rules/concepts.smk, which includes this file).


def concepts_inputs(wildcards):
    """The main run's model and split, the knowledge scores (IG and random, neurons and, with
    units.features, SAE features) where the run scores them, and the trained SAE files.
    """
    inputs = {"model": BEST_MODEL.replace("{rep}", ""), "split": SPLIT}
    for method in ("ig", "random"):
        if method in SCORE_METHODS:
            inputs[method] = score_table(method, "")
            if FEATURES:
                inputs[f"feature_{method}"] = feature_scores(method, "")
    if FEATURES:
        inputs["saes"] = [sae_file(layer, "") for layer in TRAINED_SAE_LAYERS]
    return inputs


def concept_figure_outputs():
    """Named outputs ``<figure>_<format>`` of the concept figure rule; png goes into the report."""
    out = {}
    for name, (caption, label) in CONCEPT_FIGURES.items():
        for fmt in CONCEPT_FORMATS:
            path = f"{CONCEPT_FIG}/{name}.{fmt}"
            if fmt == "png":
                path = report(
                    path,
                    caption=f"../report/{caption}",
                    category="5. Concepts",
                    labels={"figure": label},
                )
            out[f"{name}_{fmt}"] = path
    return out


def concept_outputs():
    """What the default target builds of the concept stage (nothing when concepts.enabled is false)."""
    if not CONCEPTS_ENABLED:
        return []
    return [*CONCEPTS.values(), *CONCEPT_FIGURE_FILES]
