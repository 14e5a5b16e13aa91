"""Integrated-gradients scoring: our implementation vs a straightforward captum loop, in one run.

Ours (``kneurons.scoring.ig.attribution_per_sequence``): the residual stream entering layer ``l`` once
per batch without grad, only layers ``>= l`` with grad, alpha steps in the batch dimension.
``q_proj`` and ``k_proj`` share their passes; length-sorted token-budget batches.
Reference: per layer, module and batch, ``captum.attr.IntegratedGradients`` on the full model with
the module's output replaced (``kneurons.scoring.reference.captum_ig_per_sequence``): the whole model runs
for every module, and captum also stacks the alpha steps in its batch. The reference loop takes
the sequences in input order, ``--reference-batch-size`` at a time, as a straightforward loop
does; ``--same-batches`` gives it our length-sorted batches instead, so that the ratio measures
the computation alone, without the padding that sorting saves.

Sequence lengths are drawn from the real Swiss-Prot sample in ../shared/data when it is present
(else from a log-normal with a similar median and spread), cropped at 1022 like the workflow's
``labels.max_length`` crop, then multiplied by ``--length-scale`` (default 1/4, for CPU time: the
shape of the distribution, hence the padding, is kept); residues are uniform random.

Prints per layer: seconds (ours, reference), speed ratio, max |difference| (absolute and relative
to the largest reference attribution); the total ratio over the measured layers; and the
completeness error |sum_i attr_i - (F(a) - F(0))| for Riemann vs Gauss-Legendre at several steps;
and the comparison a user faces (``equal_accuracy``): captum's default rule (50 Gauss-Legendre
steps) against our ``--method`` at the fewest steps that reach captum's completeness error, on
every module of the completeness layer, both timed here.

    .venv/bin/python benchmarks/bench_scoring.py --threads 1           # esm2_t6_8M shape, CPU
    .venv/bin/python benchmarks/bench_scoring.py --threads 1 --same-batches
    .venv/bin/python benchmarks/bench_scoring.py --model esm2_t33_650M_UR50D --device cuda \
        --n-seqs 32 --length-scale 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from kneurons.model.architectures import ESM2_ARCHITECTURES
from kneurons.model.batching import token_budget_batches
from kneurons.model.classifier import MODULE_TYPES, BackboneSpec, EsmClassifier, build_backbone, tokenize
from kneurons.model.runtime import resolve_device
from kneurons.scoring.ig import IG_MAX_PADDING, attribution_per_sequence
from kneurons.scoring.integration import integration_points
from kneurons.scoring.reference import ScoringBatch, captum_ig_per_sequence, make_batches, target_at_scale

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


SWISSPROT_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "uniprot_reviewed_sample.tsv"


def _real_lengths() -> np.ndarray | None:
    if not SWISSPROT_SAMPLE.exists():
        return None
    import pandas as pd

    return pd.read_csv(SWISSPROT_SAMPLE, sep="\t", usecols=["Sequence"])["Sequence"].str.len().to_numpy()


def _data(n: int, length_scale: float, seed: int, n_classes: int) -> tuple[list[str], list[int], str]:
    rng = np.random.default_rng(seed)
    real = _real_lengths()
    if real is not None:
        lengths, source = rng.choice(real, size=n), f"drawn from {SWISSPROT_SAMPLE.name}"
    else:  # Swiss-Prot-like: median ~330 residues, long right tail
        lengths, source = (
            np.rint(rng.lognormal(np.log(330), 0.65, size=n)).astype(int),
            "log-normal (sample absent)",
        )
    lengths = np.maximum(np.rint(np.minimum(lengths, 1022) * length_scale).astype(int), 5)
    seqs = ["".join(rng.choice(list(AMINO), size=int(k))) for k in lengths]
    return seqs, rng.integers(0, n_classes, size=n).tolist(), f"{source}, cropped at 1022, x {length_scale:g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="esm2_t6_8M_UR50D", choices=sorted(ESM2_ARCHITECTURES))
    ap.add_argument("--layers", default="all", help="comma-separated layers, or 'all'")
    ap.add_argument("--modules", default=",".join(MODULE_TYPES), help="comma-separated module types")
    ap.add_argument("--n-seqs", type=int, default=16)
    ap.add_argument("--length-scale", type=float, default=0.25, help="multiply the drawn lengths (CPU time)")
    ap.add_argument(
        "--reference-batch-size", type=int, default=8, help="sequences per batch of the reference loop"
    )
    ap.add_argument(
        "--same-batches", action="store_true", help="give the reference our length-sorted batches"
    )
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--method", default="riemann_right")
    ap.add_argument("--target", default="prob", choices=["prob", "logit"])
    ap.add_argument("--token-budget", type=int, default=1 << 16)
    ap.add_argument("--attention", default="sdpa", choices=["sdpa", "reference"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--completeness-layer", type=int, default=None, help="default: the middle layer")
    ap.add_argument("--completeness-steps", default="4,8,16,32")
    ap.add_argument("--no-reference", action="store_true", help="time ours only (large GPU shapes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-equal-accuracy", action="store_true", help="skip the comparison with captum's default rule"
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    n_layers, dim, heads = ESM2_ARCHITECTURES[args.model]
    spec = BackboneSpec(args.model, n_layers, dim, heads)
    n_classes = 4
    model = EsmClassifier(build_backbone(spec), n_classes, attention=args.attention).to(device).eval()
    layers = list(range(n_layers)) if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    modules = args.modules.split(",")
    seqs, gold, length_source = _data(args.n_seqs, args.length_scale, args.seed, n_classes)
    alphas, weights = integration_points(args.steps, args.method)
    bf16 = device.type == "cuda"
    print(
        f"model {args.model}-shaped random init ({n_layers} layers, {dim} dim, {heads} heads), "
        f"attention {args.attention}; "
        f"device {device}{' (bf16 autocast for ours, fp32 reference)' if bf16 else ''}, "
        f"threads {args.threads}; "
        f"{args.n_seqs} sequences, lengths {min(map(len, seqs))}-{max(map(len, seqs))} ({length_source}); "
        f"modules {','.join(modules)}; {args.steps} steps {args.method}, target {args.target}"
    )
    ours_batches = make_batches(seqs, gold, args.token_budget, copies=len(alphas), max_padding=IG_MAX_PADDING)
    if args.same_batches:
        batches = ours_batches
    else:
        bs = args.reference_batch_size
        batches = [
            ScoringBatch(
                np.arange(i, min(i + bs, len(seqs))),
                tokenize(seqs[i : i + bs]),
                torch.tensor(gold[i : i + bs]),
            )
            for i in range(0, len(seqs), bs)
        ]
    padded = [int(b.tokens.numel()) for b in ours_batches], [int(b.tokens.numel()) for b in batches]
    print(
        f"batches: ours {len(ours_batches)} length-sorted ({sum(padded[0])} padded tokens); reference "
        f"{len(batches)} "
        f"{'(the same)' if args.same_batches else f'in input order of {args.reference_batch_size}'} "
        f"({sum(padded[1])} padded tokens); real tokens {sum(len(x) + 2 for x in seqs)}"
    )

    # Warm-up (thread pools, allocator, kernels) so that neither side pays it inside the timing.
    a2, w2 = integration_points(2, "riemann_right")
    attribution_per_sequence(
        model, seqs[:1], gold[:1], n_layers - 1, modules[:1], a2, w2, device=device, bf16=bf16
    )
    b0 = batches[0]
    captum_ig_per_sequence(
        model, b0.tokens[:1].to(device), b0.gold[:1].to(device), n_layers - 1, modules[0], 2
    )

    total_ours = total_ref = 0.0
    print(f"{'layer':>5} {'ours_s':>8} {'ref_s':>8} {'ratio':>6} {'max_abs_diff':>12} {'max_rel_diff':>12}")

    def run_ours(layer: int) -> tuple[dict[str, np.ndarray], float]:
        _sync(device)
        t0 = time.perf_counter()
        out = attribution_per_sequence(
            model,
            seqs,
            gold,
            layer,
            modules,
            alphas,
            weights,
            args.target,
            token_budget=args.token_budget,
            device=device,
            bf16=bf16,
        )
        _sync(device)
        return out, time.perf_counter() - t0

    def run_reference(layer: int) -> tuple[dict[str, np.ndarray], float]:
        out = {t: np.zeros((len(seqs), model.neuron_count(t))) for t in modules}
        _sync(device)
        t0 = time.perf_counter()
        for t in modules:
            for b in batches:
                r = captum_ig_per_sequence(
                    model,
                    b.tokens.to(device),
                    b.gold.to(device),
                    layer,
                    t,
                    args.steps,
                    args.method,
                    args.target,
                )
                out[t][b.index] = r.detach().double().cpu().numpy()
        _sync(device)
        return out, time.perf_counter() - t0

    for i, layer in enumerate(layers):
        if args.no_reference:
            ours, t_ours = run_ours(layer)
            total_ours += t_ours
            print(f"{layer:>5} {t_ours:>8.2f}")
            continue
        # Alternate which side runs first, so drift in machine load does not favour one.
        if i % 2 == 0:
            ours, t_ours = run_ours(layer)
            ref, t_ref = run_reference(layer)
        else:
            ref, t_ref = run_reference(layer)
            ours, t_ours = run_ours(layer)
        total_ours += t_ours
        total_ref += t_ref
        diff = max(np.abs(ours[t] - ref[t]).max() for t in modules)
        scale = max(np.abs(ref[t]).max() for t in modules)
        print(
            f"{layer:>5} {t_ours:>8.2f} {t_ref:>8.2f} {t_ref / t_ours:>6.2f} "
            f"{diff:>12.3e} {diff / scale:>12.3e}"
        )
    n_units = args.n_seqs * len(modules) * len(layers)
    print(f"ours: {total_ours:.2f} s, {n_units / total_ours:.2f} sequence-modules/s")
    if not args.no_reference:
        print(
            f"reference: {total_ref:.2f} s; speed ratio over layers {layers}: {total_ref / total_ours:.2f}x"
        )

    # Completeness: sum_i attr_i vs F(a) - F(0), per sequence, for one module.
    layer = n_layers // 2 if args.completeness_layer is None else args.completeness_layer
    module = modules[0]
    tokens, g = tokenize(seqs).to(device), torch.tensor(gold, device=device)
    gap = (
        (
            target_at_scale(model, tokens, g, layer, module, 1.0, args.target)
            - target_at_scale(model, tokens, g, layer, module, 0.0, args.target)
        )
        .double()
        .cpu()
        .numpy()
    )
    print(f"completeness, layer {layer} {module}: max |F(a) - F(0)| = {np.abs(gap).max():.3e}")
    print(
        f"{'steps':>5} {'riemann_right':>14} {'gausslegendre':>14}   "
        "(max over sequences of |sum attr - gap| / |gap|)"
    )
    for m in [int(x) for x in args.completeness_steps.split(",")]:
        row = []
        for rule in ("riemann_right", "gausslegendre"):
            al, wt = integration_points(m, rule)
            attr = attribution_per_sequence(
                model,
                seqs,
                gold,
                layer,
                [module],
                al,
                wt,
                args.target,
                token_budget=args.token_budget,
                device=device,
                bf16=bf16,
            )[module]
            row.append(np.max(np.abs(attr.sum(1) - gap) / np.maximum(np.abs(gap), 1e-12)))
        print(f"{m:>5} {row[0]:>14.3e} {row[1]:>14.3e}")
    if not args.no_equal_accuracy:
        equal_accuracy(model, seqs, gold, batches, layer, modules, args, device, bf16)
    _padding_report()


#: Step counts tried for our rule, smallest first, until it is as exact as captum's default.
EQUAL_ACCURACY_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 50, 64)
#: captum.attr.IntegratedGradients.attribute defaults: n_steps=50, method="gausslegendre".
CAPTUM_DEFAULT = (50, "gausslegendre")


def _completeness_error(attr: np.ndarray, gap: np.ndarray) -> float:
    """Max over sequences of |sum_i attr_i - (F(a) - F(0))| / |F(a) - F(0)|."""
    return float(np.max(np.abs(attr.sum(1) - gap) / np.maximum(np.abs(gap), 1e-12)))


def equal_accuracy(model, seqs, gold, batches, layer, modules, args, device, bf16) -> None:
    """The comparison a user faces: captum's default rule (50 Gauss-Legendre steps) vs our rule
    (``--method``) at the fewest steps that reach captum's completeness error, on every module of
    ``layer``; both timed in this process, captum on the reference batches."""
    tokens, g = tokenize(seqs).to(device), torch.tensor(gold, device=device)
    gaps = {
        t: (
            target_at_scale(model, tokens, g, layer, t, 1.0, args.target)
            - target_at_scale(model, tokens, g, layer, t, 0.0, args.target)
        )
        .double()
        .cpu()
        .numpy()
        for t in modules
    }
    steps, rule = CAPTUM_DEFAULT
    _sync(device)
    t0 = time.perf_counter()
    captum = {t: np.zeros((len(seqs), model.neuron_count(t))) for t in modules}
    for t in modules:
        for b in batches:
            r = captum_ig_per_sequence(
                model, b.tokens.to(device), b.gold.to(device), layer, t, steps, rule, args.target
            )
            captum[t][b.index] = r.detach().double().cpu().numpy()
    _sync(device)
    t_captum = time.perf_counter() - t0
    err_captum = max(_completeness_error(captum[t], gaps[t]) for t in modules)

    def ours(m: int) -> tuple[dict[str, np.ndarray], float]:
        al, wt = integration_points(m, args.method)
        _sync(device)
        t0 = time.perf_counter()
        out = attribution_per_sequence(
            model,
            seqs,
            gold,
            layer,
            modules,
            al,
            wt,
            args.target,
            token_budget=args.token_budget,
            device=device,
            bf16=bf16,
        )
        _sync(device)
        return out, time.perf_counter() - t0

    for m in EQUAL_ACCURACY_STEPS:
        out, t_ours = ours(m)
        err = max(_completeness_error(out[t], gaps[t]) for t in modules)
        if err <= err_captum:
            break
    print(
        f"equal accuracy, layer {layer}, modules {','.join(modules)}: captum default ({steps} {rule}) "
        f"{t_captum:.2f} s, completeness error {err_captum:.3e}; ours {args.method} x {m} steps "
        f"{t_ours:.2f} s, error {err:.3e}{'' if err <= err_captum else ' (not reached)'}; "
        f"ratio {t_captum / t_ours:.1f}x"
    )


def _padding_report(batch_size: int = 8) -> None:
    """Padded tokens of input-order batches vs length-sorted buckets on real UniProt lengths.

    The timed comparison above gives both sides the same batches; this is the separate saving of
    length sorting (compute grows at least linearly with padded tokens).
    """
    real_lengths = _real_lengths()
    if real_lengths is None:
        print(f"padding: skipped ({SWISSPROT_SAMPLE} absent)")
        return
    lengths = np.minimum(real_lengths, 1022) + 2
    real = int(lengths.sum())
    fixed = sum(
        len(c) * int(c.max())
        for c in np.array_split(lengths, np.arange(batch_size, len(lengths), batch_size))
    )
    budget = batch_size * int(lengths.mean())  # about the same number of sequences per batch
    sorted_batches = token_budget_batches(lengths - 2, budget)
    bucketed = sum(len(b) * int(lengths[b].max()) for b in sorted_batches)
    print(
        f"padding on {len(lengths)} UniProt lengths: input-order batches of {batch_size}: "
        f"{fixed / real:.2f}x the real tokens; length-sorted buckets (budget {budget}, "
        f"mean batch {len(lengths) / len(sorted_batches):.1f}): "
        f"{bucketed / real:.3f}x; ratio {fixed / bucketed:.2f}"
    )


if __name__ == "__main__":
    main()
