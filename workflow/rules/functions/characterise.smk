# Functions of the characterisation stage (workflow/rules/characterise.smk, which includes this file).


def char_figure_outputs():
    """Named outputs ``<figure>_<format>`` of the characterisation figure rule; png goes into the report."""
    out = {}
    for name, (caption, label) in CHAR_FIGURES.items():
        for fmt in CHAR_FORMATS:
            path = f"{CHAR_FIG}/{name}.{fmt}"
            if fmt == "png":
                path = report(
                    path,
                    caption=f"../report/{caption}",
                    category="Characterisation",
                    labels={"figure": label},
                )
            out[f"{name}_{fmt}"] = path
    return out
