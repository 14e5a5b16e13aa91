"""The ``resample`` fill: a masked unit takes the activation it has on another protein of the scoring set.

Resample ablation (MIB, ICML 2025, "interchange" / resample ablation; Chan et al. 2022, causal
scrubbing) replaces a unit's value by the value it takes on another input, so the filled value is
one the model really produces, with that input's variation. For a protein language model the other
input is another protein, of another length; here:

* **the donor** of an evaluated protein is a protein of the scoring set drawn with
  ``numpy.random.default_rng`` seeded by the run's seed and a hash of the evaluated sequence
  (``donor_index``): the same protein gets the same donor in every batch, job and order, and a donor
  with the very same sequence is skipped (the next one in the scoring set's order is taken), so the
  donor is always *another* protein;
* **positions are aligned from the start**: token ``t`` of the evaluated protein (BOS at 0) takes
  the donor's value at token ``t``; where the evaluated protein is longer than the donor (tokens
  ``t >=`` the donor's BOS + residues + EOS), it takes the donor's mean over its residues (BOS and
  EOS excluded), a value of the donor at no particular position;
* every unit of a block gets its value from the same donor (one donor per evaluated protein).

The donors' activations are computed per evaluated batch (``donor_activations``): one intact
forward pass over the batch's donors, recording only the blocks the masks touch, aligned to the
batch's tokens. Nothing is held beyond the batch: the memory is ``4 bytes x batch tokens x units of
the touched blocks`` (an ESM-2 650M ablation of the global scope touches 33 x 11,520 neurons:
1.5 MB per token, 12 GB at ``ablate.token_budget`` 8192; lower the budget for resample there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from kneurons.errors import InputError
from kneurons.model.classifier import EsmClassifier
from kneurons.model.hooks import OutputRecorder
from kneurons.ranking import Block


def donor_index(sequence: str, donors: Sequence[str], seed: int) -> int:
    """Index in ``donors`` of the donor of the evaluated ``sequence`` (module docstring): a draw of
    ``default_rng([seed, hash])``, ``hash`` the first 8 bytes of the sequence's BLAKE2b digest, moved
    on to the next donor (cyclically) while the donor's sequence is the evaluated one."""
    n = len(donors)
    if n == 0:
        raise InputError("resample fill: the scoring set has no proteins to take activations from")
    digest = int.from_bytes(hashlib.blake2b(sequence.encode(), digest_size=8).digest(), "little")
    first = int(np.random.default_rng([int(seed), digest]).integers(n))
    for step in range(n):
        i = (first + step) % n
        if donors[i] != sequence:
            return i
    raise InputError(
        "resample fill: every protein of the scoring set is the evaluated protein itself; "
        "there is no other protein to take activations from"
    )


def donor_sequences(sequences: Sequence[str], donors: Sequence[str], seed: int) -> list[str]:
    """The donor of each of ``sequences`` (``donor_index``)."""
    return [donors[donor_index(s, donors, seed)] for s in sequences]


def align_to(values: torch.Tensor, lengths: torch.Tensor, means: torch.Tensor, width: int) -> torch.Tensor:
    """Donors' values ``(T_d, B, n)`` aligned to a batch of ``width`` tokens: ``(width, B, n)``.

    Token ``t`` of column ``b`` is ``values[t, b]`` while ``t < lengths[b]`` (the donor's tokens,
    BOS and EOS included), else ``means[b]`` (the donor's mean over its residues, ``(B, n)``).
    """
    t_d = values.shape[0]
    values = F.pad(values, (0, 0, 0, 0, 0, width - t_d)) if t_d < width else values[:width]
    inside = torch.arange(width, device=values.device)[:, None] < lengths.to(values.device)[None, :]
    return torch.where(inside[..., None], values, means[None].to(values.dtype))


@torch.no_grad()
def donor_activations(
    model: EsmClassifier,
    donors: Sequence[str],
    seed: int,
    sequences: Sequence[str],
    width: int,
    blocks: Sequence[Block],
) -> dict[Block, torch.Tensor]:
    """The resample fill's values for one evaluated batch: per block, ``(width, B, n)`` time-first,
    column ``b`` from the donor of ``sequences[b]`` (module docstring).

    One intact forward pass over the batch's donors, on the model's device (inside the caller's
    autocast), recording the outputs of ``blocks`` only; ``width``: the evaluated batch's tokens.
    """
    if not blocks:
        return {}
    chosen = donor_sequences(sequences, donors, seed)
    device = next(model.parameters()).device
    tokens = model.tokenize(chosen).to(device)
    names = {f"{layer}:{m}": model.module(layer, m) for layer, m in blocks}
    with OutputRecorder(names) as rec:
        model(tokens)
    lengths = tokens.ne(model.padding_idx).sum(1)  # (B,)
    residues = model.residue_mask(tokens).T.unsqueeze(-1)  # (T_d, B, 1)
    out = {}
    for (layer, m), name in zip(blocks, names, strict=True):
        values = rec.outputs[name][0]  # (T_d, B, n)
        weights = residues.to(values.dtype)
        means = (values * weights).sum(0) / weights.sum(0).clamp_min(1.0)  # (B, n)
        out[(layer, m)] = align_to(values, lengths, means, width)
    return out
