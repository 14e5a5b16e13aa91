"""Training throughput of kneurons' fine-tuning loop vs a plain reference loop, in one process.

Both loops train the same ESM-2-shaped classifier (random weights: speed does not depend on
them) on the same random protein-like sequences for ``--steps`` optimiser steps after
``--warmup`` untimed ones:

* ``kneurons``: the library's loop (``kneurons.training.optim.forward_backward`` / ``optimizer_step``):
  length-sorted token-budget buckets in shuffled order, fused SDPA attention, bf16 autocast on CUDA;
* ``plain``: fair-esm's reference attention, fp32, sequences in random order in fixed-size
  batches (the same mean number of sequences per step), so batches are padded to their longest member.

Printed: real (non-padding) tokens/s, padding share, the speed ratio kneurons/plain, and on
CUDA the model-FLOPs utilisation (MFU) against the GPU's dense bf16 peak.

    python benchmarks/bench_train.py --model esm2_t6_8M_UR50D --steps 10
    python benchmarks/bench_train.py --model custom --layers 4 --dim 64 --heads 4 --steps 50
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from kneurons.data.synthetic import SWISSPROT_FREQUENCIES
from kneurons.model.batching import token_budget_batches
from kneurons.model.classifier import get_alphabet, tokenize
from kneurons.model.loading import build_classifier
from kneurons.model.runtime import resolve_device, seed_everything
from kneurons.training.optim import forward_backward, make_optimizer, optimizer_step

#: Dense bf16 peak TFLOP/s by GPU name fragment (vendor data sheets, without sparsity).
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
    "V100": 125.0,
}


def sequences(n: int, median: float, seed: int) -> list[str]:
    """Random sequences with Swiss-Prot residue frequencies and log-normal lengths (median ``median``)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(median), 0.5, size=n), 30, 1022).astype(int)
    res = np.array(list(SWISSPROT_FREQUENCIES))
    p = np.array(list(SWISSPROT_FREQUENCIES.values()))
    return ["".join(rng.choice(res, size=n_, p=p / p.sum())) for n_ in lengths]


def flops_per_token(n_layers: int, dim: int, mean_len: float) -> float:
    """Training FLOPs per token: 6 x (per-layer matmul weights) + attention scores (PaLM appendix B)."""
    return 6 * n_layers * 12 * dim * dim + 12 * n_layers * dim * mean_len


def run_loop(model, batches, seqs, labels, device, bf16, steps, warmup) -> dict:
    """Train for ``warmup`` untimed then ``steps`` timed steps; returns tokens, padded tokens, seconds."""
    alphabet = get_alphabet()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(model, 1e-4, 0.01)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    real = padded = 0
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            real = padded = 0
        batch = batches[i % len(batches)]
        tokens = tokenize([seqs[j] for j in batch], alphabet)
        real += int((tokens != alphabet.padding_idx).sum())
        padded += tokens.numel()
        target = torch.as_tensor(labels[batch])
        forward_backward(model, tokens.to(device), target.to(device), loss_fn, device, bf16)
        optimizer_step(params, optimizer, None, 1.0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return {
        "tokens": real,
        "padded_tokens": padded,
        "seconds": seconds,
        "tokens_per_s": real / seconds,
        "padding_share": 1 - real / padded,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="esm2_t6_8M_UR50D", help="fair-esm ESM-2 name or `custom`")
    ap.add_argument("--layers", type=int, default=4, help="custom: transformer layers")
    ap.add_argument("--dim", type=int, default=64, help="custom: embedding width")
    ap.add_argument("--heads", type=int, default=4, help="custom: attention heads")
    ap.add_argument("--steps", type=int, default=10, help="timed optimiser steps per loop")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per loop")
    ap.add_argument("--token-budget", type=int, default=8192, help="padded tokens per kneurons batch")
    ap.add_argument("--n-seqs", type=int, default=512, help="sequences in the pool")
    ap.add_argument(
        "--median-length", type=float, default=400, help="median sequence length (Swiss-Prot enzymes: 407)"
    )
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument(
        "--peak-tflops", type=float, default=None, help="GPU dense bf16 peak, if not in the table"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    custom = {"num_layers": args.layers, "embed_dim": args.dim, "attention_heads": args.heads}
    model_cfg = {"name": args.model, "pretrained": False, "custom": custom}
    seqs = sequences(args.n_seqs, args.median_length, args.seed)
    labels = np.random.default_rng(args.seed).integers(0, 7, size=len(seqs))
    lengths = [len(s) for s in seqs]

    ours = token_budget_batches(lengths, args.token_budget, shuffle=True, seed=args.seed)
    per_batch = max(1, round(len(seqs) / len(ours)))
    order = np.random.default_rng(args.seed).permutation(len(seqs))
    plain = [order[i : i + per_batch].tolist() for i in range(0, len(seqs), per_batch)]

    results = {}
    for name, batches, bf16, attention in (
        ("plain", plain, False, "reference"),
        ("kneurons", ours, True, "sdpa"),
    ):
        seed_everything(args.seed)
        model, spec = build_classifier({**model_cfg, "attention": attention}, 7)
        model.to(device)
        for p in list(model.esm.contact_head.parameters()) + list(model.esm.lm_head.parameters()):
            p.requires_grad_(False)
        results[name] = run_loop(model, batches, seqs, labels, device, bf16, args.steps, args.warmup)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()

    out = {
        "model": spec.name,
        "layers": spec.num_layers,
        "dim": spec.embed_dim,
        "heads": spec.attention_heads,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "steps": args.steps,
        "token_budget": args.token_budget,
        "seqs_per_plain_batch": per_batch,
        "torch": torch.__version__,
        **{f"{k}_{n}": v for n, r in results.items() for k, v in r.items()},
        "speedup": results["kneurons"]["tokens_per_s"] / results["plain"]["tokens_per_s"],
    }
    if device.type == "cuda":
        mean_len = float(np.mean(lengths)) + 2
        peak = args.peak_tflops or next(
            (v for k, v in PEAK_BF16_TFLOPS.items() if k in torch.cuda.get_device_name(device)), None
        )
        if peak:
            for n in results:
                achieved = results[n]["tokens_per_s"] * flops_per_token(
                    spec.num_layers, spec.embed_dim, mean_len
                )
                out[f"mfu_{n}"] = achieved / (peak * 1e12)
            out["peak_bf16_tflops"] = peak
    if args.json:
        print(json.dumps(out))
        return out
    print(
        f"model {out['model']} ({out['layers']} layers x {out['dim']} dim x {out['heads']} heads) "
        f"on {out['device']}, "
        f"torch {out['torch']}, {args.steps} timed steps, token budget {args.token_budget}"
    )
    print(f"{'loop':<10}{'tokens/s':>12}{'padding':>10}{'seconds':>10}{'MFU':>8}")
    for n in ("plain", "kneurons"):
        mfu = f"{out[f'mfu_{n}']:.1%}" if f"mfu_{n}" in out else "-"
        r = results[n]
        print(f"{n:<10}{r['tokens_per_s']:>12.0f}{r['padding_share']:>10.1%}{r['seconds']:>10.2f}{mfu:>8}")
    print(f"ratio kneurons/plain: {out['speedup']:.2f}x")
    return out


if __name__ == "__main__":
    main()
