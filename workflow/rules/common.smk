# Shared by every stage: validated config, output paths, helpers. No rule reads another
# step's internals: each takes its input files and config.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
# Jobs find the package the same way, in any working directory and any software environment
# (conda envs under .snakemake/conda do not install it; SLURM jobs re-read this file):
# PYTHONPATH precedes site-packages, so the workflow always runs its own src/.
_SRC = str(Path(workflow.basedir) / "src")
if _SRC not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)
from kneurons.config import validate_config, num_layers  # noqa: E402
from kneurons.io import check_output_dir  # noqa: E402

# One validation function (schema + semantic checks) for Snakefile, scripts and tests.
config.update(validate_config(config))

R = config["results"]
# A results path under a regular file, or not writable: one clear error before any job starts.
check_output_dir(R, "results")
N_LAYERS = num_layers(config)
LAYERS = list(range(N_LAYERS))

# The file contract between stages.
PROTEINS = f"{R}/data/proteins.tsv"
LABELS = f"{R}/data/labels.tsv"
CLASSES = f"{R}/data/classes.tsv"
LABEL_REPORT = f"{R}/data/label_report.json"
SPLIT = f"{R}/data/split.tsv"
LEAKAGE = f"{R}/data/leakage_report.json"


def all_targets():
    """Everything `rule all` builds: stages append their final outputs to TARGETS."""
    return TARGETS


TARGETS = [LABEL_REPORT, SPLIT, LEAKAGE]
