# Shared by every stage: validated config, output paths, helpers. A job reads only its input
# files and its params, built from the config by the settings seam (src/kneurons/settings.py).
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
# Jobs find the package the same way, in any working directory and any software environment
# (conda envs under .snakemake/conda do not install it; SLURM jobs re-read this file):
# PYTHONPATH precedes site-packages, so the workflow always runs its own src/.
_SRC = str(Path(workflow.basedir) / "src")
# (Set here, not required from the user: so no `envvars:` directive, which would demand it.)
_PYTHONPATH = os.environ.get("PYTHONPATH")
if _SRC not in (_PYTHONPATH or "").split(os.pathsep):
    os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (_SRC, _PYTHONPATH) if p))
from kneurons.config import validate_config  # noqa: E402
from kneurons.config_cli import typed_config_values  # noqa: E402
from kneurons.data.mmseqs import check_mmseqs_for_config  # noqa: E402
from kneurons.io import check_output_dir  # noqa: E402
from kneurons.captions import run_description  # noqa: E402
from kneurons.scatter import (  # noqa: E402
    random_seed_chunks,
    score_layer_chunks,
    seed_chunk_label,
    seed_chunk_seeds,
)
from kneurons.settings import rule_params  # noqa: E402

# One validation function (schema + semantic checks) for Snakefile, scripts and tests; nested
# `--config` values arrive as strings ('36'), read as YAML where the schema needs another type.
config.update(validate_config(typed_config_values(config)))

R = config["results"]
# A results path under a regular file, or not writable: one clear error before any job starts.
check_output_dir(R, "results")
# A homology split needs MMseqs2: without `--sdm conda` (which installs it from envs/data.yaml)
# it must be on PATH, checked now rather than after a long download.
_SDM = getattr(workflow.deployment_settings, "deployment_method", None) or ()
check_mmseqs_for_config(config, conda=any(m.name == "CONDA" for m in _SDM))
#: Fine-tuning replicates (train.replicates). Replicate 0 is the main run and keeps the results
#: layout (results/model, scores, ablation, characterise); replicate r > 0 has the same layout
#: under results/replicates/<r>/. The `rep` wildcard is that path prefix ("" for replicate 0).
REPLICATES = list(range(config["train"]["replicates"]))
REP_PREFIXES = ["" if r == 0 else f"replicates/{r}/" for r in REPLICATES]


wildcard_constraints:
    rep=r"(replicates/\d+/)?",


# The file contract between stages.
PROTEINS = f"{R}/data/proteins.tsv"
# What reading the user's input rewrote; outside data/, which holds only the data tables.
SOURCE_REPORT = f"{R}/provenance/source_report.json"
DROPPED = f"{R}/data/dropped.tsv"
LABELS = f"{R}/data/labels.tsv"
CLASSES = f"{R}/data/classes.tsv"
LABEL_REPORT = f"{R}/data/label_report.json"
SPLIT = f"{R}/data/split.tsv"
LEAKAGE = f"{R}/data/leakage_report.json"


def all_targets():
    """Everything the default target builds (stages append their final outputs to TARGETS)."""
    return TARGETS


TARGETS = [LABEL_REPORT, SPLIT, LEAKAGE]


# Path and output helpers of the stage files (Snakemake's lint wants functions here, not
# beside the rules). Constants they name (SCORING_SET, BEST_MODEL, CHAR_FIGURES, FIG_FORMATS,
# ...) are set by the stage files, before any of these is called.
def score_table(method, rep="{rep}"):
    """The gathered score table of one method of one replicate (``rep``: its path prefix)."""
    return f"{R}/{rep}scores/{method}.parquet"


def score_chunk_runtime(wildcards):
    """Minutes asked for one scoring job: 240 per layer of its chunk (they run one after another)."""
    return 240 * (int(wildcards.last) - int(wildcards.first) + 1)


def seed_chunk_runtime(wildcards):
    """Minutes asked for one random-baseline job: 240 per seed of its chunk."""
    return 240 * len(seed_chunk_seeds(wildcards.seeds))


def ablation_table(method, scope, rep="{rep}"):
    """Metrics of every mask of one job: one row per (method, scope, scope_name, mode, f, seed)."""
    return f"{R}/{rep}ablation/{method}/{scope}.tsv"


def ablation_predictions(method, scope, rep="{rep}"):
    """Per-protein predictions behind the rows of ``ablation_table`` (bootstrap, paired tests)."""
    return f"{R}/{rep}ablation/{method}/{scope}.pred.npz"


def ablation_seed_part(method, scope, seeds, ext, rep="{rep}"):
    """One seed chunk's part of a random-baseline ablation table (``ext``: ``tsv`` or ``pred.npz``)."""
    return f"{R}/{rep}ablation/{method}/seeds/{scope}/{seeds}.{ext}"


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
    """Inputs of one external ablation job; ``fill: mean`` also needs the scoring set."""
    inputs = {
        "model": BEST_MODEL.replace("{rep}", wildcards.rep),
        "proteins": EXTERNAL_FILES["proteins"].replace("{set}", wildcards.set),
        "scores": score_table(wildcards.method, wildcards.rep),
    }
    if config["ablate"]["fill"] == "mean":
        inputs["scoring_set"] = SCORING_SET
    return inputs


def per_replicate(pattern):
    """``pattern`` (with a ``{rep}`` prefix) for every replicate, replicate-major."""
    return [pattern.replace("{rep}", p) for p in REP_PREFIXES]


def checkpoint_inputs(wildcards):
    """The local pretrained weights (``model.checkpoint``) as inputs of fine-tuning; none when unset.

    A file (fair-esm ``.pt``, ESM C ``.pth``) is the input itself. A directory (a Hugging Face
    snapshot) contributes its files, not itself: a directory's mtime changes only when entries
    are added or removed, so a weights file rewritten in place would not rerun fine-tuning.
    """
    ckpt = config["model"]["checkpoint"]
    if not (ckpt and config["model"]["pretrained"]):
        return []
    path = Path(ckpt).expanduser()
    if path.is_dir():
        return sorted(
            str(f)
            for f in path.rglob("*")
            if f.is_file()
            and not any(p.startswith(".") for p in f.relative_to(path).parts)
        )
    return [str(path)]


def ablation_inputs(wildcards):
    """Inputs of one ablation job; ``fill: mean`` also needs the scoring set."""
    inputs = {
        "model": BEST_MODEL.replace("{rep}", wildcards.rep),
        "split": SPLIT,
        "scores": score_table(wildcards.method, wildcards.rep),
    }
    if config["ablate"]["fill"] == "mean":
        inputs["scoring_set"] = (
            SCORING_SET  # mean activations are measured on the scoring data
        )
    return inputs


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


def atlas_inputs(wildcards):
    """Inputs of the atlas: scores, statistics, the claims' verdicts, training metrics, the
    overview figures (png) and, when the stage runs, the characterisation tables.
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
    return inputs


def claims_inputs(wildcards):
    """The statistics behind the claims, and the intact model's metrics on each set (the baseline
    rule); class specificity only when the characterisation runs."""
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
    return inputs
