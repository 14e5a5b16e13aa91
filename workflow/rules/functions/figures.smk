# Functions of the figures stage (workflow/rules/figures.smk, which includes this file).


def figure_outputs(name, caption, category, label):
    """Named outputs of one figure, one per format; the report format carries the caption."""
    out = {}
    for fmt in FIG_FORMATS:
        path = f"{FIG_DIR}/{name}.{fmt}"
        if fmt == REPORT_FORMAT:
            path = report(
                path,
                caption=f"../report/{caption}",
                category=category,
                labels={"figure": label},
            )
        out[fmt] = path
    return out
