"""Model files for tests, in their real formats: EvolutionaryScale's official ESM C state dict.

Torch only (no transformers): the layout is the ``esm`` package's, its sizes those of a tiny model.
"""

from __future__ import annotations

import torch

from kneurons.model.backends.esmc.architecture import swiglu_hidden

#: The tiny ESM C of the tests: 2 layers, 64 dims (one 64-dim head per 64 dims, as every ESM C).
LAYERS, DIM = 2, 64


def official_state_dict(layers: int = LAYERS, d: int = DIM, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the names and shapes of EvolutionaryScale's ``esmc_*.pth`` (bias-free linears)."""
    g = torch.Generator().manual_seed(seed)
    h = swiglu_hidden(d)

    def r(*shape: int, scale: float = 0.1, mean: float = 0.0) -> torch.Tensor:
        return mean + scale * torch.randn(*shape, generator=g)

    sd = {"embed.weight": r(64, d, scale=1.0), "transformer.norm.weight": r(d, mean=1.0)}
    for i in range(layers):
        p = f"transformer.blocks.{i}."
        sd |= {
            p + "attn.layernorm_qkv.0.weight": r(d, mean=1.0),
            p + "attn.layernorm_qkv.0.bias": r(d),
            p + "attn.layernorm_qkv.1.weight": r(3 * d, d),
            p + "attn.out_proj.weight": r(d, d),
            p + "attn.q_ln.weight": r(d, mean=1.0),
            p + "attn.k_ln.weight": r(d, mean=1.0),
            p + "ffn.0.weight": r(d, mean=1.0),
            p + "ffn.0.bias": r(d),
            p + "ffn.1.weight": r(2 * h, d),
            p + "ffn.3.weight": r(d, h),
        }
    sd |= {"sequence_head.0.weight": r(d, d), "sequence_head.0.bias": r(d)}  # the LM head: dropped
    return sd
