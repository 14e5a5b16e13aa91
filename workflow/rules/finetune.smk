# Fine-tuning: ESM-2 (pretrained or random init) + classification head on the train split,
# early stopping on validation macro-F1, metrics on val and test. Resumable: a rerun after a
# kill continues from results/model/checkpoints/last.pt. One job per replicate (`rep`: "" for
# the main run, replicates/<r>/ for replicate r, seed + r). Logic: src/kneurons/training/;
# job: src/kneurons/jobs/finetune.py.

MODEL_DIR = f"{R}/{{rep}}model"
BEST_MODEL = f"{MODEL_DIR}/best.pt"
MODEL_FILES = {
    "model": BEST_MODEL,
    "metrics": f"{MODEL_DIR}/metrics.json",
    "curve": f"{MODEL_DIR}/training_curve.tsv",
    "metadata": f"{MODEL_DIR}/run_metadata.json",
}


include: "functions/finetune.smk"


rule finetune:
    input:
        split=SPLIT,
        classes=CLASSES,
        # A changed local weights file reruns fine-tuning (nothing when model.checkpoint is unset).
        weights=checkpoint_inputs,
    output:
        **MODEL_FILES,
    log:
        f"{R}/logs/{{rep}}model/finetune.log",
    benchmark:
        f"{R}/benchmarks/{{rep}}model/finetune.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1 if config["model"]["name"] == "custom" else 4
    resources:
        # Host memory: the checkpoint is read on the CPU before it moves to the GPU (3B: ~11 GB).
        mem_mb=4000 if config["model"]["name"] == "custom" else 32000,
        runtime=720,
        # `auto` may resolve to CUDA on the node that runs the job, so only `cpu` asks for none.
        gpu=0 if config["device"] == "cpu" else 1,
    # A custom-size model (the demo's 64-dim matmuls) is too small to gain much from threads,
    # and on a busy machine a second OpenMP thread slowed it ~10x (docs/performance.md).
    params:
        **rule_params("finetune", config),
    message:
        "Fine-tuning the classifier on {input.split} -> {output.model}"
    script:
        "../scripts/finetune.py"
