#!/usr/bin/env bash
# Every GPU measurement docs/performance.md still lacks, in one run of about 9 minutes, for a
# session that is lent a GPU for a short time (one try, a rerun if it fails).
#
#   bash benchmarks/gpu_checks.sh [OUTDIR]        # OUTDIR defaults to $OUT, else gpu-checks/
#
# Most important first (the ablation engine on CUDA, then attention, IG scoring, fine-tuning);
# each step has its own time limit, so one that hangs or runs out of memory costs only its
# own slot, and the next one still runs. Each step's output goes to OUTDIR/<step>.log; a
# summary of exit codes and seconds goes to OUTDIR/summary.tsv. Python: $PYTHON, else .venv's,
# else python3, with a CUDA build of torch and the project's dependencies (pyproject.toml). A
# machine image with CUDA torch, pandas, pyarrow, scipy and pyyaml typically still lacks
# fair-esm, captum and jsonschema (with jsonschema-specifications, referencing, rpds-py):
# install those first (offline: from wheels brought along).
set -u
out="${1:-${OUT:-gpu-checks}}"
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py=python3
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}src"
printf 'step\texit\tseconds\n' >"$out/summary.tsv"

step() {  # step NAME LIMIT_S COMMAND...
    local name="$1" limit="$2"
    shift 2
    local t0=$SECONDS
    echo "== $name (limit ${limit} s): $*" | tee "$out/$name.log"
    timeout --kill-after=10 "$limit" "$@" >>"$out/$name.log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$out/summary.tsv"
}

nvidia-smi >"$out/nvidia-smi.txt" 2>&1
"$py" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())' \
    >"$out/device.txt" 2>&1 || { cat "$out/device.txt"; exit 1; }

# The ablation engine against the naive loop on CUDA: fp32 (predictions certified identical)
# with the workflow's 16 masks per pass, then the workflow's bf16 default on the larger shape.
step ablation_demo 60 "$py" benchmarks/bench_ablation.py --device cuda
step ablation_8m 120 "$py" benchmarks/bench_ablation.py --device cuda --model esm2_t6_8M_UR50D --n-test 240
step ablation_8m_bf16 60 "$py" benchmarks/bench_ablation.py --device cuda --model esm2_t6_8M_UR50D --n-test 240 --bf16
# SDPA against fair-esm's attention: fine-tuning tokens/s, IG sequences/s, peak memory.
step attention_sdpa 90 "$py" benchmarks/attention_sdpa.py --models esm2_t12_35M_UR50D esm2_t33_650M_UR50D
# IG scoring against the captum loop.
step scoring_35m 60 "$py" benchmarks/bench_scoring.py --model esm2_t12_35M_UR50D --device cuda \
    --n-seqs 32 --length-scale 1 --token-budget 65536
step scoring_650m 60 "$py" benchmarks/bench_scoring.py --model esm2_t33_650M_UR50D --device cuda \
    --n-seqs 16 --length-scale 1 --layers 0,8,16,24,32 --token-budget 65536
# Fine-tuning throughput and MFU.
step train_35m 45 "$py" benchmarks/bench_train.py --model esm2_t12_35M_UR50D --steps 50 --token-budget 16384
step train_650m 45 "$py" benchmarks/bench_train.py --model esm2_t33_650M_UR50D --steps 20 --token-budget 8192
cat "$out/summary.tsv"
