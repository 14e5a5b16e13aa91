"""The optimisation pieces of fine-tuning: freezing, AdamW groups, LR schedule, one step, class weights.

The training loop (``kneurons.training.loop``) and the throughput benchmark
(``benchmarks/bench_train.py``) use the same ``forward_backward`` and ``optimizer_step``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from kneurons.model.classifier import EsmClassifier
from kneurons.model.runtime import autocast


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 over the classes present (0 for absent ones)."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    w = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    present = counts > 0
    w[present] *= present.sum() / w[present].sum()
    return torch.tensor(w, dtype=torch.float32)


def apply_freezing(model: EsmClassifier, freeze_layers: int, head_only: bool) -> None:
    """Freeze what is not trained; the LM and contact heads are never used by the classifier."""
    for p in model.esm.parameters():
        p.requires_grad_(not head_only)
    for p in model.backend.unused_parameters():
        p.requires_grad_(False)
    if head_only:
        return
    if freeze_layers > 0:
        for p in model.backend.bottom_parameters(freeze_layers):
            p.requires_grad_(False)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay on the weight matrices only."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Biases and layer-norm scales are not decayed (the usual AdamW practice).
        (no_decay if p.ndim < 2 or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def warmup_linear_decay(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """LR multiplier: linear warmup over ``warmup_fraction`` of the steps, then linear decay to 0."""
    warmup = round(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def forward_backward(
    model: EsmClassifier,
    tokens: torch.Tensor,
    target: torch.Tensor,
    loss_fn: nn.Module,
    device: torch.device,
    bf16: bool,
    scale: float = 1.0,
) -> torch.Tensor:
    """Loss of one batch (returned detached); its gradient times ``scale`` is added to ``.grad``."""
    with autocast(device, bf16):
        logits = model(tokens)
    loss = loss_fn(logits.float(), target)
    (loss * scale).backward()
    return loss.detach()


def optimizer_step(
    params: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    grad_clip: float | None,
) -> None:
    """Clip the gradient norm of ``params``, step optimiser and scheduler, clear the gradients."""
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
