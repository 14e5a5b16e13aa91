"""One protein explained (``kneurons.explain.compute.explain_protein``) on a random-weight ESM-2 of a
given shape, against what ``kneurons plan`` counts for it (``kneurons.plan.explain``).

No weights are downloaded: the model has the shape's random weights, its knowledge units are a
random top fraction of its neurons (every layer holds some, as the plan assumes), the fill is
``zero``. It prints the measured CPU seconds per protein and replicate (the process's CPU time, which
other jobs on the machine do not inflate, and the wall time), the plan's token-layers for the
same protein, and the CPU seconds the plan's throughput table gives for them:

    .venv/bin/python benchmarks/bench_explain.py --model custom:4:64:4 --length 80 --steps 8
    .venv/bin/python benchmarks/bench_explain.py --model esm2_t6_8M_UR50D --length 400 --steps 20

Measured numbers go to docs/explain.md with the command and the machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from attention_sdpa import _spec  # the same model names: custom:L:d:h or an official ESM-2 name

from kneurons.ablation.fill import Fill
from kneurons.explain.compute import explain_protein, neuron_layout
from kneurons.explain.units import ExplainSettings, IgSettings, ReplicateModel
from kneurons.model.classifier import EsmClassifier, build_backbone
from kneurons.plan.passes import THROUGHPUT, StageCost, score_job_cost

AMINO = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def planned_token_layers(layers: int, steps: int, track: int, seeds: int, tokens: int) -> tuple[float, float]:
    """What ``kneurons.plan.explain`` counts for one protein and one replicate, without SAEs."""
    fwd = bwd = 0.0
    for layer in range(layers):
        f, b = score_job_cost("ig", steps, layers, layer, 1.0)
        fwd, bwd = fwd + f, bwd + b
    fwd += layers * (1 + track + (2 + seeds) + 2)
    bwd += layers * track
    return tokens * fwd, tokens * bwd


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="custom:4:64:4")
    parser.add_argument("--length", type=int, default=80)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--top-fraction", type=float, default=0.01)
    parser.add_argument("--proteins", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = _spec(args.model)
    model = EsmClassifier(build_backbone(spec), num_classes=7).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    layout = neuron_layout(model)
    rng = np.random.default_rng(0)
    top = np.sort(
        rng.choice(layout.total, size=max(1, round(args.top_fraction * layout.total)), replace=False)
    )
    units = layout.keys(top).assign(
        run_rank=np.arange(1, len(top) + 1), run_score=1.0, top_class="1", class_share=1.0
    )
    rm = ReplicateModel(
        0,
        model,
        [str(c) for c in range(1, 8)],
        units,
        None,
        Fill(),
        IgSettings(args.steps, "gausslegendre", "prob"),
        layout,
        None,
    )
    settings = ExplainSettings()
    seqs = ["".join(rng.choice(AMINO, size=args.length)) for _ in range(args.proteins + 1)]
    explain_protein(rm, seqs[0], settings)  # warm-up
    cpu, wall = time.process_time(), time.monotonic()
    for s in seqs[1:]:
        explain_protein(rm, s, settings)
    cpu, wall = (time.process_time() - cpu) / args.proteins, (time.monotonic() - wall) / args.proteins
    fwd, bwd = planned_token_layers(
        spec.num_layers, args.steps, settings.track_steps, len(settings.random_seeds), args.length + 2
    )
    cost = StageCost("explain", 0, fwd, bwd, "")
    planned = cost.hours(THROUGHPUT["cpu"][0], spec.embed_dim, args.length + 2) * 3600
    print(
        f"model {args.model} ({spec.num_layers} layers, {spec.embed_dim} dim), {args.length} residues, "
        f"{args.steps} IG steps, {len(top)} knowledge neurons, {args.threads} thread(s)"
    )
    print(f"measured: {cpu:.2f} s CPU, {wall:.2f} s wall per protein")
    print(
        f"planned:  {fwd:.3g} forward + {bwd:.3g} backward token-layers = {planned:.2f} s on one CPU thread"
    )


if __name__ == "__main__":
    main()
