# Shared by every stage: the validated config, the results folder `R`, the replicates and the
# default target (get_final_output). Each stage's paths, rules and functions are in its own file:
# workflow/rules/<stage>.smk (path constants, then rules), with its functions (input functions,
# path helpers) in workflow/rules/functions/<stage>.smk. A job reads only its input files and its
# params, built from the config by the settings seam (src/kneurons/settings.py).
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
from kneurons.config_cli import workflow_config  # noqa: E402
from kneurons.data.mmseqs import check_mmseqs_for_config  # noqa: E402
from kneurons.io import check_output_dir  # noqa: E402
from kneurons.planted.design import planted_methods, planted_variants  # noqa: E402
from kneurons.scatter import (  # noqa: E402
    random_seed_chunks,
    score_layer_chunks,
    seed_chunk_label,
    seed_chunk_seeds,
    trained_sae_layers,
)
from kneurons.settings import feature_fills, rule_params  # noqa: E402

# The merged config (configfile:, --configfile, --config) validated as `kneurons plan` reads it
# (kneurons.config_cli: nested `--config` strings typed, then the schema and semantic checks); a
# user's file with the old one-value ablate.fill wins over the embedded default's ablate.fills
# (Snakemake merges the two key by key).
config.update(workflow_config(config, workflow.config_settings.overwrite_config))

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


def per_replicate(pattern):
    """``pattern`` (with a ``{rep}`` prefix) for every replicate, replicate-major."""
    return [pattern.replace("{rep}", p) for p in REP_PREFIXES]


def get_final_output():
    """Everything the default target ``all`` builds, each stage's final outputs, named by the
    stage's path constants (set by the stage files, all included before ``all`` is read).
    """
    final = [LABEL_REPORT, SPLIT, LEAKAGE]
    final += [f for pattern in MODEL_FILES.values() for f in per_replicate(pattern)]
    final += [score_table(m, p) for p in REP_PREFIXES for m in SCORE_METHODS]
    if config["characterise"]["enabled"]:
        final += [
            *(f for pattern in CHAR_CLASS.values() for f in per_replicate(pattern)),
            *(pattern.replace("{rep}", "") for pattern in CHAR_NEURONS.values()),
            *CHAR_FIGURE_FILES,
        ]
    final += [*STATS.values(), CLAIMS, *feature_outputs(), *concept_outputs()]
    final += [
        path.replace("{set}", name)
        for name in EXTERNAL
        for path in (*EXTERNAL_FILES.values(), *EXTERNAL_STATS.values())
    ]
    final += [*FIGURE_FILES, ATLAS, *explain_outputs()]
    if config["planted"]["enabled"]:  # the planted-knowledge benchmark (planted.smk)
        final += planted_outputs()
    return final
