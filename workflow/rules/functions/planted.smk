# Functions of the planted-knowledge benchmark (workflow/rules/planted.smk, which includes this file).


def planting_files(folder):
    """The fine-tuning outputs of one planting (or of the head-alone control) under ``folder``:
    what ``fine_tune`` writes, in one directory."""
    return {
        "model": f"{folder}/model/best.pt",
        "metrics": f"{folder}/model/metrics.json",
        "curve": f"{folder}/model/training_curve.tsv",
        "metadata": f"{folder}/model/run_metadata.json",
    }


def planting_inputs(wildcards):
    """A planting starts from the base model and trains on the planted task's split."""
    return {
        "base": PLANTED_BASE,
        "split": PLANTED_DATA["split"],
        "classes": PLANTED_DATA["classes"],
    }


def planted_ablation(
    ext, variant="{variant}", replicate="{replicate}", method="{method}"
):
    """One planting's ablation of one method, one file per scope of ablate.scopes (``ext``: tsv or pred.npz)."""
    folder = f"{PLANTED}/{variant}/{replicate}/ablation/{method}"
    return [f"{folder}/{scope}.{ext}" for scope in ABLATE_SCOPES]


def planted_curve_inputs(ext):
    """The ablation files of every replicate of a variant (``ext``: tsv or pred.npz), replicate-major,
    then method, then scope."""

    def inputs(wildcards):
        return [
            path
            for r in PLANTED_REPLICATES
            for m in PLANTED_METHODS
            for path in planted_ablation(ext, wildcards.variant, r, m)
        ]

    return inputs


def planted_stats_inputs():
    """Every planting's S, ground truth, selections and score tables (variant-major, then replicate,
    then method), and the head-alone control's metrics (one per replicate)."""
    plantings = [
        f"{PLANTED}/{v}/{r}" for v in PLANTED_VARIANTS for r in PLANTED_REPLICATES
    ]
    return {
        "units": [f"{p}/units.tsv" for p in plantings],
        "ground_truth": [f"{p}/ground_truth.json" for p in plantings],
        "selections": [f"{p}/selections.tsv" for p in plantings],
        "scores": [
            f"{p}/scores/{m}.parquet" for p in plantings for m in PLANTED_METHODS
        ],
        "head_only": [
            planting_files(HEAD_ONLY.replace("{replicate}", str(r)))["metrics"]
            for r in PLANTED_REPLICATES
        ],
    }


def planted_figure_outputs():
    """The precision-recall figure, one file per format; the report's format carries the caption."""
    out = {}
    for fmt in FIG_FORMATS:
        path = f"{PLANTED_FIGURE}.{fmt}"
        if fmt == REPORT_FORMAT:
            path = report(
                path,
                caption="../report/planted_precision_recall.rst",
                category="0. Verdicts",
                labels={"figure": "planted knowledge: precision-recall of S"},
            )
        out[fmt] = path
    return out


def planted_outputs():
    """What the target ``planted`` builds: the statistics, the verdicts, the figure and the curve
    statistics of the run's ablation grid per variant."""
    return [
        *PLANTED_STATS.values(),
        *PLANTED_VERDICTS.values(),
        *(f"{PLANTED_FIGURE}.{fmt}" for fmt in FIG_FORMATS),
        *(
            path.replace("{variant}", v)
            for v in PLANTED_VARIANTS
            for path in PLANTED_CURVES.values()
        ),
    ]
