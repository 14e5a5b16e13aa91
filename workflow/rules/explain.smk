# Explain my proteins: the proteins of explain.proteins explained with the finished run (every
# replicate): prediction, the knowledge units that drive it and where, a per-residue track and a
# causal check against random units; one self-contained page linking into the atlas, explain.tsv
# and explain.json (docs/explain.md). Nothing runs while explain.proteins is null. What the run
# decided (label policy, fill, ranking, IG settings, SAEs) is read from the run's own files, its
# inputs here, so the page reruns when the run changes. Logic: src/kneurons/explain/; job:
# src/kneurons/jobs/explain.py (the same as `kneurons explain`).

EXPLAIN_PROTEINS = config["explain"]["proteins"]
EXPLAIN_DIR = f"{R}/explain"
EXPLAIN_FILES = {
    "html": f"{EXPLAIN_DIR}/index.html",
    "tsv": f"{EXPLAIN_DIR}/explain.tsv",
    "json": f"{EXPLAIN_DIR}/explain.json",
}


include: "functions/explain.smk"


rule explain:
    input:
        unpack(explain_inputs),
    output:
        html=report(
            EXPLAIN_FILES["html"],
            caption="../report/explain.rst",
            category="Explain",
            labels={"page": "explained proteins (open from disk)"},
        ),
        tsv=EXPLAIN_FILES["tsv"],
        json=EXPLAIN_FILES["json"],
    log:
        f"{R}/logs/explain/explain.log",
    benchmark:
        f"{R}/benchmarks/explain/explain.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=0 if config["device"] == "cpu" else 1,
    params:
        **rule_params("explain", config),
    message:
        "Explaining the proteins of {input.proteins} with the finished run"
    script:
        "../scripts/explain.py"
