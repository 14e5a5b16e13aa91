"""The concept stage's streamed counts against the dense reference, in one process on one model.

``concept_counts`` (hooks reduce each module's residue activations to counts as they are computed)
and the reference (``residue_activations`` for every unit, then ``count_part`` in numpy on the whole
residues x units matrix) count the same proteins' activations of the same units; the benchmark checks
they agree, and prints both times, their ratio and the reference's activation memory, which the
streamed counts never hold. Random-weight ESM-2 shapes (no weights are downloaded); synthetic
proteins with planted motifs as concepts (and their two controls each):

    .venv/bin/python benchmarks/bench_concepts.py --model custom:4:64:4 --proteins 72
    .venv/bin/python benchmarks/bench_concepts.py --model esm2_t6_8M_UR50D --proteins 200 --device cuda

On a GPU the counts run on the device (bf16 autocast off here, so both paths see the same numbers).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kneurons.ablation.masks import layout_of
from kneurons.characterise.activations import residue_activations
from kneurons.concepts.activations import concept_counts, unit_maxima
from kneurons.concepts.catalogue import build_catalogue
from kneurons.concepts.metric import count_part
from kneurons.data.synthetic import generate_synthetic
from kneurons.model.architectures import ESM2_ARCHITECTURES
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone
from kneurons.model.runtime import resolve_device

THRESHOLDS = [0, 0.15, 0.5, 0.6, 0.8]
HEADER = ["model", "device", "units", "residues", "concepts", "streamed s", "reference s", "ratio"]
HEADER += ["reference activations GB", "equal"]


def model_of(name: str) -> EsmClassifier:
    """A random-weight classifier of a fair-esm ESM-2 name, or ``custom:layers:dim:heads``."""
    if name.startswith("custom:"):
        layers, dim, heads = (int(x) for x in name.split(":")[1:])
        spec = BackboneSpec("custom", layers, dim, heads)
    else:
        layers, dim, heads = ESM2_ARCHITECTURES[name]
        spec = BackboneSpec(name, layers, dim, heads)
    torch.manual_seed(0)
    return EsmClassifier(build_backbone(spec), 4).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="custom:4:64:4")
    ap.add_argument("--proteins", type=int, default=72, help="test proteins (as many for validation)")
    ap.add_argument("--length", type=int, default=300, help="longest protein")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--token-budget", type=int, default=8192)
    args = ap.parse_args()
    device = resolve_device(args.device)
    model = model_of(args.model).to(device)
    per_class = max(2, args.proteins // 2)
    prot, _ = generate_synthetic(
        n_classes=4, n_per_class=per_class, length_min=60, length_max=args.length, seed=0
    )
    val, test = prot.iloc[::2].head(args.proteins), prot.iloc[1::2].head(args.proteins)
    cat = build_catalogue({"val": val, "test": test}, min_proteins=2, seed=0)
    units = layout_of(model).keys(np.arange(layout_of(model).total))
    seqs = test["sequence"].tolist()
    maxima = unit_maxima(model, val["sequence"].tolist(), units, args.token_budget, device, bf16=False)

    start = time.perf_counter()
    streamed = concept_counts(
        model, seqs, units, maxima, THRESHOLDS, cat.tracks["test"], args.token_budget, device, bf16=False
    )
    t_stream = time.perf_counter() - start
    start = time.perf_counter()
    acts = np.concatenate(residue_activations(model, seqs, units, args.token_budget, device, bf16=False))
    reference = count_part(acts, maxima, THRESHOLDS, cat.tracks["test"])
    t_ref = time.perf_counter() - start
    same = all(np.array_equal(getattr(streamed, k), getattr(reference, k)) for k in ("active", "tp", "hits"))
    cells = [args.model, device, len(units), acts.shape[0], len(cat.concepts), f"{t_stream:.2f}"]
    cells += [f"{t_ref:.2f}", f"{t_ref / t_stream:.2f}", f"{acts.nbytes / 1e9:.3f}", same]
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
