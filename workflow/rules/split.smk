# Train/val/test split (stratified random, or homology-aware: whole MMseqs2 clusters per
# split) and the leakage report (class counts per split, shared clusters, max test-vs-train
# identity when MMseqs2 is available). Logic: src/kneurons/split.py.


rule split:
    input:
        LABELS,
    output:
        SPLIT,
    log:
        f"{R}/logs/data/split.log",
    benchmark:
        f"{R}/benchmarks/data/split.tsv"
    params:
        split=config["split"],
        seed=config["seed"],
    threads: 2
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/split.py"


rule leakage:
    input:
        SPLIT,
    output:
        LEAKAGE,
    log:
        f"{R}/logs/data/leakage.log",
    benchmark:
        f"{R}/benchmarks/data/leakage.tsv"
    params:
        split=config["split"],
    threads: 2
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/leakage.py"
