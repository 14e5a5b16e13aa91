"""Reference attention vs the SDPA fast path: fine-tuning throughput/MFU, IG scoring speed, peak memory.

Both backends run in the same process on the same random-weight model (the ESM-2 shapes; no
weights are downloaded), so the printed ratios compare like with like. Meant for a GPU:

    .venv/bin/python benchmarks/attention_sdpa.py --models esm2_t12_35M_UR50D esm2_t33_650M_UR50D

On a CPU it runs too (small shapes, e.g. ``--models custom:4:64:4 --seq-len 64``) as a smoke test;
CPU numbers say nothing about the GPU kernels. The markdown table it prints is what
docs/performance.md records, together with the command and the GPU model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kneurons.model.architectures import ESM2_ARCHITECTURES
from kneurons.model.backends.fair_esm.attention import set_attention
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone, tokenize
from kneurons.model.runtime import autocast, resolve_device
from kneurons.scoring.ig import attribution_per_sequence
from kneurons.scoring.integration import integration_points

#: Dense bf16 peak TFLOP/s (no sparsity) by device-name substring, for MFU.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
AMINO = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def _spec(name: str) -> BackboneSpec:
    if name.startswith("custom:"):
        layers, dim, heads = (int(x) for x in name.split(":")[1:])
        return BackboneSpec("custom", layers, dim, heads)
    layers, dim, heads = ESM2_ARCHITECTURES[name]
    return BackboneSpec(name, layers, dim, heads)


def _sequences(n: int, max_len: int, rng: np.random.Generator) -> list[str]:
    # Lengths between half and all of max_len: batches carry padding, as real ones do.
    return ["".join(rng.choice(AMINO, size=int(rng.integers(max_len // 2, max_len + 1)))) for _ in range(n)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mem(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def _reset_mem(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def bench_train(model, tokens, labels, steps: int, warmup: int, device) -> tuple[float, float]:
    """Fine-tuning steps (AdamW, bf16 autocast on CUDA).

    Returns (tokens/s over non-pad tokens, seconds/step).
    """
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    n_tokens = int((tokens != 1).sum())
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        with autocast(device, True):
            loss = torch.nn.functional.cross_entropy(model(tokens).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    dt = (time.perf_counter() - t0) / steps
    return n_tokens / dt, dt


def train_flops_per_token(spec: BackboneSpec, n_params: int, seq_len: int) -> float:
    """6N for the weights plus 12 L T E for attention scores and values (forward + backward)."""
    return 6.0 * n_params + 12.0 * spec.num_layers * seq_len * spec.embed_dim


def bench_ig(model, seqs, gold, layer: int, ig_steps: int, token_budget: int, device) -> float:
    """Integrated gradients for all six modules of one layer: sequences/s."""
    alphas, weights = integration_points(ig_steps, "riemann_right")

    def run(s, g):
        return attribution_per_sequence(
            model,
            s,
            g,
            layer,
            alphas=alphas,
            weights=weights,
            token_budget=token_budget,
            device=device,
            bf16=True,
        )

    run(seqs[:2], gold[:2])  # warm-up (kernels, caches)
    _sync(device)
    t0 = time.perf_counter()
    run(seqs, gold)
    _sync(device)
    return len(seqs) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models",
        nargs="+",
        default=["esm2_t12_35M_UR50D", "esm2_t33_650M_UR50D"],
        help="fair-esm names or custom:LAYERS:DIM:HEADS",
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seq-len", type=int, default=512, help="longest sequence (residues)")
    ap.add_argument("--batch", type=int, default=16, help="sequences per fine-tuning step")
    ap.add_argument("--steps", type=int, default=10, help="timed fine-tuning steps")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--ig-seqs", type=int, default=64)
    ap.add_argument("--ig-steps", type=int, default=20)
    ap.add_argument("--token-budget", type=int, default=65536, help="padded tokens per IG pass")
    ap.add_argument(
        "--peak-tflops", type=float, default=None, help="bf16 dense peak for MFU (default: by GPU name)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    print(f"device: {name}; torch {torch.__version__}; peak bf16 TFLOP/s for MFU: {peak}")
    rng = np.random.default_rng(args.seed)
    rows = []
    for model_name in args.models:
        spec = _spec(model_name)
        torch.manual_seed(args.seed)
        base = EsmClassifier(build_backbone(spec), num_classes=8, attention="reference").to(device)
        state = {k: v.clone() for k, v in base.state_dict().items()}
        n_params = sum(p.numel() for p in base.esm.parameters())
        seqs = _sequences(args.batch, args.seq_len, rng)
        tokens = tokenize(seqs).to(device)
        labels = torch.as_tensor(rng.integers(0, 8, size=len(seqs)), device=device)
        ig_seqs = _sequences(args.ig_seqs, args.seq_len, rng)
        ig_gold = rng.integers(0, 8, size=len(ig_seqs)).tolist()
        result = {}
        for backend in ("reference", "sdpa"):
            base.load_state_dict(state)
            set_attention(base, backend)
            _reset_mem(device)
            tok_s, _ = bench_train(base, tokens, labels, args.steps, args.warmup, device)
            train_mem = _peak_mem(device)
            base.load_state_dict(state)
            _reset_mem(device)
            seq_s = bench_ig(
                base, ig_seqs, ig_gold, spec.num_layers // 2, args.ig_steps, args.token_budget, device
            )
            ig_mem = _peak_mem(device)
            flops = train_flops_per_token(spec, n_params, tokens.shape[1]) * tok_s
            mfu = flops / (peak * 1e12) if peak else float("nan")
            result[backend] = (tok_s, mfu, train_mem, seq_s, ig_mem)
            rows.append((model_name, backend, tok_s, mfu, train_mem, seq_s, ig_mem))
        r, s = result["reference"], result["sdpa"]
        print(
            f"{model_name}: fine-tune tokens/s sdpa/reference = {s[0] / r[0]:.2f}x; "
            f"IG sequences/s sdpa/reference = {s[3] / r[3]:.2f}x"
        )

    print(
        "\n| model | attention | fine-tune tokens/s | MFU | peak mem fine-tune (GiB) | IG seq/s | peak mem IG (GiB) |"  # noqa: E501
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for m, b, tok_s, mfu, tm, seq_s, im in rows:
        print(f"| {m} | {b} | {tok_s:,.0f} | {mfu:.1%} | {tm:.2f} | {seq_s:.2f} | {im:.2f} |")
    print(
        f"\nbatch {args.batch} x <= {args.seq_len} residues, {args.steps} timed steps; IG: {args.ig_seqs} "
        f"sequences, {args.ig_steps} steps, layer L/2, six modules, token budget {args.token_budget}"
    )


if __name__ == "__main__":
    main()
