"""Per-residue activations of chosen neurons, through the one batched inference loop."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from kneurons.model.classifier import EsmClassifier
from kneurons.model.inference import Batch, run_batches


def residue_activations(
    model: EsmClassifier,
    sequences: Sequence[str],
    neurons: pd.DataFrame,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> list[np.ndarray]:
    """Per protein an ``(L, N)`` array: each listed neuron's activation at each residue.

    Columns follow the row order of ``neurons``; BOS/EOS/padding are dropped, so row ``i`` is
    residue ``i + 1`` (1-based). Only layers up to the deepest listed one are run. A unit may be
    a neuron or an SAE feature (module ``"sae"``, an SAE attached to the model).
    """
    device = torch.device(device)
    model = model.to(device).eval()
    neurons = neurons.reset_index(drop=True)
    groups = {
        (int(layer), str(module)): (
            g.index.to_numpy().copy(),
            torch.as_tensor(g["neuron"].astype(int).to_numpy().copy()),
        )
        for (layer, module), g in neurons.groupby(["layer", "module"], sort=True)
    }
    captured: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for key, (_, idx) in groups.items():

        def hook(_mod, _inp, out, key=key, idx=idx):
            captured[key] = out[..., idx.to(out.device)].float()

        handles.append(model.module(*key).register_forward_hook(hook))
    deepest = int(neurons["layer"].max())

    def step(batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            x, pm = model.embed(batch.tokens)
            # run_through: the final norm too when an SAE reads the stream after it (layer L)
            model.run_through(x, pm, deepest)
        acts = torch.empty(batch.tokens.shape[1], batch.tokens.shape[0], len(neurons))  # (T, B, N)
        for key, (cols, _) in groups.items():
            acts[:, :, torch.from_numpy(cols)] = captured[key].cpu()
        return acts

    result: list[np.ndarray | None] = [None] * len(sequences)
    try:
        for batch, acts in run_batches(
            model, sequences, step, token_budget, device, bf16, what="residue activations"
        ):
            for b, i in enumerate(batch.index):
                result[i] = acts[1 : 1 + len(sequences[i]), b].numpy().copy()
    finally:
        for h in handles:
            h.remove()
    return result  # type: ignore[return-value]
