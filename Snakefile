# Knowledge neurons in protein language models (arXiv:2312.10770), as a Snakemake workflow.
# Thin on purpose: all logic lives in the kneurons package (src/kneurons) and workflow/rules:
# common.smk (config, results folder, replicates, get_final_output), then one file per stage, each
# with its paths and rules; a stage's functions are in workflow/rules/functions/<stage>.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/characterise.smk"
include: "workflow/rules/ablate.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/concepts.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/atlas.smk"
include: "workflow/rules/planted.smk"
include: "workflow/rules/explain.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
