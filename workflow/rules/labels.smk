# EC labels: level, policies (multi-EC, incomplete, preliminary, non-enzymes, min class
# size, long sequences, non-standard residues, duplicates), each counted in label_report.json.
# Logic: src/kneurons/data/labels.py.


rule labels:
    input:
        proteins=PROTEINS,
        enzclass=ENZCLASS,
    output:
        labels=LABELS,
        classes=CLASSES,
        report=LABEL_REPORT,
    log:
        f"{R}/logs/data/labels.log",
    conda:
        "../../envs/data.yaml"
    params:
        **rule_params("labels", config),
    message:
        "Extracting EC labels from {input.proteins}"
    script:
        "../scripts/labels.py"
