"""The cost plan's time formula against measured CPU time, at two model sizes, in one process.

For each shape it times two stages on random weights: one ablation job (scope ``layer_module``,
the default grid, equal-length test proteins) and one IG score job (the middle layer, the
default's Gauss-Legendre steps); the plan predicts each from its token-layer count
(``kneurons.plan``) and ``THROUGHPUT['cpu']``. Printed: measured seconds, predicted seconds,
their ratio, and the effective FLOP/s each run reached (what ``THROUGHPUT['cpu']`` should hold).

    .venv/bin/python benchmarks/bench_plan.py                 # demo shape and esm2_t6_8M shape
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from kneurons.ablation.fill import Fill
from kneurons.ablation.masks import layout_of
from kneurons.ablation.run import run_ablation
from kneurons.config import validate_config
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone
from kneurons.plan import THROUGHPUT, StageCost, ablation_job_forward, distinct_mask_starts, score_job_cost
from kneurons.scoring import registry

AA = "ACDEFGHIKLMNPQRSTVWY"
#: name -> (layers, dim, heads, test proteins): fewer proteins for the larger shape (CPU time)
SHAPES = {"custom 4x64": (4, 64, 4, 24), "esm2_t6_8M shape": (6, 320, 20, 4)}


def _scores(model: EsmClassifier, seed: int = 0) -> pd.DataFrame:
    layout = layout_of(model)
    rows = [(b[0], b[1], i) for b, n in zip(layout.blocks, layout.sizes, strict=True) for i in range(n)]
    df = pd.DataFrame(rows, columns=["layer", "module", "neuron"])
    df.insert(0, "method", "activation")
    df["score"] = np.random.default_rng(seed).random(len(df))
    df["label"] = pd.array([None] * len(df), dtype="string")
    df["seed"] = pd.array([None] * len(df), dtype="Int64")
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--length", type=int, default=80, help="residues per protein")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = validate_config({})
    ab, rate = cfg["ablate"], THROUGHPUT["cpu"][0]
    print(f"torch {torch.__version__}, {args.threads} thread(s); THROUGHPUT['cpu'] = {rate:.3g} FLOP/s")
    print(f"{'shape':<18}{'stage':<22}{'measured s':>11}{'plan s':>9}{'ratio':>7}{'FLOP/s':>10}")
    for name, (layers, dim, heads, n_test) in SHAPES.items():
        rng = np.random.default_rng(0)
        seqs = ["".join(rng.choice(list(AA), args.length)) for _ in range(n_test)]
        tokens = n_test * (args.length + 2)
        torch.manual_seed(0)
        model = EsmClassifier(build_backbone(BackboneSpec("custom", layers, dim, heads)), 4).eval()
        t0 = time.perf_counter()
        run_ablation(
            model,
            seqs,
            np.zeros(len(seqs), dtype=np.int64),
            list("abcd"),
            _scores(model),
            "activation",
            "layer_module",
            ab["fractions"],
            ab["modes"],
            fill=Fill(),
            token_budget=8192,
        )
        t_ablate = time.perf_counter() - t0
        starts = distinct_mask_starts(layers, dim, "layer_module", ab["fractions"], ab["modes"])
        stages = [
            ("ablate layer_module", StageCost("a", 1, ablation_job_forward(layers, starts, tokens), 0, ""))
        ]
        times = [t_ablate]
        layer = layers // 2
        score_cfg = {**cfg["score"], "ig": {**cfg["score"]["ig"], "steps": 8, "method": "gausslegendre"}}
        subset = pd.DataFrame({"sequence": seqs, "label": "a", "label_index": 0})
        t0 = time.perf_counter()
        registry.build("ig", score_cfg).score_layer(model, subset, layer)
        times.append(time.perf_counter() - t0)
        fwd, bwd = score_job_cost("ig", 8, layers, layer, tokens)
        stages.append((f"score ig (layer {layer})", StageCost("s", 1, fwd, bwd, "")))
        for (stage, cost), measured in zip(stages, times, strict=True):
            flops = cost.flops(dim, args.length + 2)
            print(
                f"{name:<18}{stage:<22}{measured:>11.2f}{flops / rate:>9.2f}"
                f"{measured / (flops / rate):>7.2f}{flops / measured:>10.3g}"
            )


if __name__ == "__main__":
    main()
