# Train/val/test split (stratified random, or homology-aware: whole MMseqs2 clusters per
# split) and the leakage report (class counts per split, shared clusters, max test-vs-train
# identity when MMseqs2 is available). Clusters and identities compare the full-length
# sequences of data/proteins.tsv; the split keeps the labels' sequences, cropped for the model.
# Logic: src/kneurons/data/split.py; jobs: src/kneurons/jobs/data.py (run_split, run_leakage).

SPLIT = f"{R}/data/split.tsv"
LEAKAGE = f"{R}/data/leakage_report.json"


rule split:
    input:
        labels=LABELS,
        proteins=PROTEINS,
    output:
        SPLIT,
    log:
        f"{R}/logs/data/split.log",
    benchmark:
        f"{R}/benchmarks/data/split.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 2
    params:
        **rule_params("split", config),
    message:
        "Splitting the labelled proteins into train/val/test"
    script:
        "../scripts/split.py"


rule leakage:
    input:
        split=SPLIT,
        proteins=PROTEINS,
    output:
        LEAKAGE,
    log:
        f"{R}/logs/data/leakage.log",
    benchmark:
        f"{R}/benchmarks/data/leakage.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 2
    params:
        **rule_params("leakage", config),
    message:
        "Writing the leakage report of {input.split}"
    script:
        "../scripts/leakage.py"
