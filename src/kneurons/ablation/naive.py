"""The reference ablation loop: one full forward pass per mask and batch, kept beside the fast engine.

Tests and ``benchmarks/bench_ablation.py`` check that ``kneurons.ablation.engine.evaluate_masks``
gives its predictions; the engine also calls it to settle near-tied predictions (``_certify``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kneurons.ablation.fill import Fill, fill_hooks
from kneurons.ablation.masks import Mask, active, block_order, chunk_tensors, unit_sizes
from kneurons.ablation.resample import donor_activations
from kneurons.model.classifier import EsmClassifier
from kneurons.model.inference import Batch, run_batches


@torch.no_grad()
def evaluate_masks_naive(
    model: EsmClassifier,
    sequences: Sequence[str],
    masks: Sequence[Mask],
    fill: Fill | None = None,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> np.ndarray:
    """Predicted class of every sequence under every mask: ``(len(masks), len(sequences))``.

    One full forward pass (``model(tokens)`` with the mask's hooks) per mask and token-budget batch;
    a ``resample`` fill's donor activations are computed once per batch, as the engine does.
    """
    device = torch.device(device)
    fill = (fill or Fill()).to(device)
    model = model.to(device).eval()
    sizes = unit_sizes(model)
    filled = [chunk_tensors([active(mask)], sizes, device) for mask in masks]
    blocks = sorted({b for f in filled for b in f}, key=block_order)

    def step(batch: Batch) -> np.ndarray:
        part = np.zeros((len(masks), len(batch.index)), dtype=np.int64)
        values = None
        if fill.per_batch:
            seqs = [sequences[i] for i in batch.index]
            values = donor_activations(model, fill.donors, fill.seed, seqs, batch.tokens.shape[1], blocks)
        for mi in range(len(masks)):
            with fill_hooks(model, filled[mi], fill, values):
                logits = model(batch.tokens)
            part[mi] = logits.float().argmax(-1).cpu().numpy()
        return part

    preds = np.zeros((len(masks), len(sequences)), dtype=np.int64)
    for batch, part in run_batches(model, sequences, step, token_budget, device, bf16, what="ablation"):
        preds[:, batch.index] = part
    return preds
