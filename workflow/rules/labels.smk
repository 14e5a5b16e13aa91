# EC labels: level, policies (multi-EC, incomplete, preliminary, non-enzymes, min class
# size, long sequences, non-standard residues, duplicates), each counted in label_report.json;
# every protein a policy removed is listed with its reason in dropped.tsv.
# Logic: src/kneurons/data/labels.py; job: src/kneurons/jobs/data.py (run_labels).

LABELS = f"{R}/data/labels.tsv"
CLASSES = f"{R}/data/classes.tsv"
LABEL_REPORT = f"{R}/data/label_report.json"
DROPPED = f"{R}/data/dropped.tsv"
# ExPASy's class names (data.enzclass) as an optional input: a one-element list, or empty when unset.
ENZCLASS = [config["data"]["enzclass"]] if config["data"]["enzclass"] else []


rule labels:
    input:
        proteins=PROTEINS,
        source=SOURCE_REPORT,
        enzclass=ENZCLASS,
    output:
        labels=LABELS,
        classes=CLASSES,
        report=LABEL_REPORT,
        dropped=DROPPED,
    log:
        log=f"{R}/logs/data/labels.log",
        # the dropped proteins and why, kept when the job fails (Snakemake removes its outputs)
        dropped=f"{R}/logs/data/labels_dropped.tsv",
    conda:
        "../../envs/data.yaml"
    params:
        **rule_params("labels", config),
    message:
        "Extracting EC labels from {input.proteins}"
    script:
        "../scripts/labels.py"
