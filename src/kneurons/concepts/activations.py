"""Every chosen unit's activations over a part's proteins, streamed into what the concept metric needs.

The model runs once over the training sample (each unit's maximum, ``unit_maxima``) and once over
each of the validation and test parts (``concept_counts``): a forward hook on every module (or SAE)
with chosen units reduces that module's output to counts as soon as it is computed, so no more than
one module's activations of one batch are held at a time, whatever the model's size. The counts are
``kneurons.concepts.metric.Counts``, equal to ``count_part`` on the same activations (a test).

A step's results are returned, not accumulated inside it: the batch loop halves a batch that runs
out of memory and reruns its halves, and a half-counted batch must not count twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from kneurons.concepts.catalogue import PartTracks
from kneurons.concepts.metric import Counts
from kneurons.model.classifier import EsmClassifier
from kneurons.model.inference import Batch, run_batches

log = logging.getLogger(__name__)

Block = tuple[int, str]
#: ``hook(block, rows of the units table, residues x units activations of the batch)`` -> result.
Reducer = Callable[[Block, np.ndarray, torch.Tensor], object]


def _groups(units: pd.DataFrame) -> dict[Block, tuple[np.ndarray, torch.Tensor]]:
    """Per (layer, module): the rows of ``units`` it holds and their unit indices in the module."""
    return {
        (int(layer), str(module)): (
            g.index.to_numpy().copy(),
            torch.as_tensor(g["neuron"].astype(int).to_numpy().copy()),
        )
        for (layer, module), g in units.groupby(["layer", "module"], sort=True)
    }


def _residue_positions(batch: Batch, lengths: np.ndarray) -> torch.Tensor:
    """Row of every residue of the batch in a hooked output ``(T, B, n)`` flattened to ``(T * B, n)``,
    protein by protein in batch order (residue ``i`` of protein ``b`` is token ``i + 1``: BOS, EOS
    and padding left out)."""
    n = lengths[batch.index]
    tokens = np.concatenate([np.arange(1, k + 1) for k in n])
    cols = np.repeat(np.arange(len(n)), n)
    return torch.as_tensor(tokens * len(n) + cols, device=batch.tokens.device)


def _stream(
    model: EsmClassifier,
    sequences: Sequence[str],
    units: pd.DataFrame,
    reduce: Reducer,
    token_budget: int,
    device: torch.device | str,
    bf16: bool,
    what: str,
    before: Callable[[Batch], None] | None = None,
):
    """Run the model over ``sequences`` with a hook per module of ``units`` that hands ``reduce``
    the module's residue activations (float32, residues x its chosen units); yields ``(batch,
    [results of reduce])`` per batch that ran. ``before(batch)`` prepares what ``reduce`` reads."""
    units = units.reset_index(drop=True)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    groups = _groups(units)
    results: list[object] = []
    where: dict[str, torch.Tensor] = {}
    handles = []
    for block, (rows, idx) in groups.items():
        size = model.module(*block).out_features
        every = size == len(idx) and bool((idx == torch.arange(size)).all())

        def hook(_mod, _inp, out, block=block, rows=rows, idx=idx, every=every):
            acts = out.reshape(-1, out.shape[-1]).index_select(0, where["residues"])
            if not every:  # a sample of the module's units
                acts = acts.index_select(1, idx.to(out.device))
            results.append(reduce(block, rows, acts.float()))

        handles.append(model.module(*block).register_forward_hook(hook))
    deepest = int(units["layer"].max())

    def step(batch: Batch) -> list[object]:
        results.clear()
        where["residues"] = _residue_positions(batch, lengths)
        if before is not None:
            before(batch)
        with torch.no_grad():
            x, pm = model.embed(batch.tokens)
            # run_through: the final norm too when an SAE reads the stream after it
            model.run_through(x, pm, deepest)
        return list(results)

    model = model.to(torch.device(device)).eval()
    try:
        yield from run_batches(model, sequences, step, token_budget, device, bf16, what=what)
    finally:
        for h in handles:
            h.remove()


def unit_maxima(
    model: EsmClassifier,
    sequences: Sequence[str],
    units: pd.DataFrame,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> np.ndarray:
    """Each unit's (row of ``units``: ``layer, module, neuron``) largest activation over every
    residue of ``sequences`` (float32 values as the metric scales by them)."""
    out = np.full(len(units), -np.inf, dtype=np.float32)

    def reduce(_block: Block, rows: np.ndarray, acts: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        return rows, acts.max(dim=0).values.cpu().numpy()

    for _batch, parts in _stream(model, sequences, units, reduce, token_budget, device, bf16, "unit maxima"):
        for rows, values in parts:
            out[rows] = np.maximum(out[rows], values)
    return out


class _BatchConcepts:
    """The concept pairs of one batch's proteins as 0/1 matrices over the batch's residues."""

    def __init__(self, tracks: PartTracks, device: torch.device):
        self.tracks, self.device = tracks, device
        offsets = tracks.offsets
        parts = []
        inst_base = 0
        for c, pairs in enumerate(tracks.pairs):
            protein = tracks.protein_of(pairs[:, 0])
            within = pairs[:, 0] - offsets[protein]
            parts.append(np.stack([protein, within, pairs[:, 1] + inst_base, np.full(len(pairs), c)], axis=1))
            inst_base += int(pairs[:, 1].max()) + 1 if len(pairs) else 0
        table = np.concatenate(parts) if parts else np.zeros((0, 4), np.int64)
        order = np.argsort(table[:, 0], kind="stable")
        self.table = table[order]  # protein, position in protein, global instance, concept
        self.starts = np.searchsorted(self.table[:, 0], np.arange(len(tracks.lengths) + 1))

    def prepare(self, batch: Batch) -> None:
        """The batch's concept matrices over its residues (``_residue_positions``' order), sparse:
        ``inside`` (concepts x residues: the residue is in the concept), ``instances`` (instances x
        residues: the residue is in the instance) and ``owner`` (concepts x instances)."""
        lengths = self.tracks.lengths[batch.index]
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        chunks = [self.table[self.starts[p] : self.starts[p + 1]] for p in batch.index]
        rows = np.concatenate(chunks) if chunks else np.zeros((0, 4), np.int64)
        local = np.repeat(first, [len(c) for c in chunks]) + rows[:, 1]
        inst, inst_local = np.unique(rows[:, 2], return_inverse=True)
        inst_local = inst_local.reshape(-1)
        n_res, n_con = int(lengths.sum()), len(self.tracks.pairs)
        self.inside = self._matrix(rows[:, 3], local, (n_con, n_res))
        self.instances = self._matrix(inst_local, local, (len(inst), n_res))
        self.owner = self._matrix(rows[:, 3], inst_local, (n_con, len(inst)))

    def _matrix(self, i: np.ndarray, j: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
        """A sparse (COO) 0/1 matrix with ones at (i, j), duplicates once: ``np.unique`` sorts the
        pairs row-major, the coalesced order, and keeps them in range by construction."""
        ij = np.unique(np.stack([i, j]), axis=1) if len(i) else np.zeros((2, 0), np.int64)
        ones = torch.ones(ij.shape[1], device=self.device)
        index = torch.as_tensor(ij, device=self.device)
        return torch.sparse_coo_tensor(index, ones, shape, is_coalesced=True, check_invariants=False)


def concept_counts(
    model: EsmClassifier,
    sequences: Sequence[str],
    units: pd.DataFrame,
    maxima: np.ndarray,
    thresholds: Sequence[float],
    tracks: PartTracks,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    what: str = "concept counts",
) -> Counts:
    """The ``Counts`` of every unit of ``units`` (rows: ``layer, module, neuron``) on the proteins
    ``sequences`` whose concepts are ``tracks``, each unit's activation scaled by its ``maxima``."""
    device = torch.device(device)
    total = Counts.zeros(len(units), len(thresholds), len(tracks.pairs))
    scale = torch.as_tensor(np.where(maxima > 0, maxima, np.inf).astype(np.float32), device=device)
    cuts = torch.tensor(list(thresholds), dtype=torch.float32, device=device)
    batch_concepts = _BatchConcepts(tracks, device)

    def reduce(_block: Block, rows: np.ndarray, acts: torch.Tensor) -> tuple[np.ndarray, Counts]:
        bc = batch_concepts
        scaled = acts / scale[torch.as_tensor(rows, device=acts.device)]
        n_thr, n = len(thresholds), scaled.shape[1]
        # residues x (thresholds, units): one sparse product per concept matrix for every threshold
        active = (scaled.unsqueeze(1) > cuts[None, :, None]).float().reshape(scaled.shape[0], n_thr * n)
        # products of 0/1 matrices: counts, exact in float32 (fewer than 2**24 residues per batch)
        tp = torch.sparse.mm(bc.inside, active).reshape(-1, n_thr, n)  # (concepts, thresholds, units)
        hit = (torch.sparse.mm(bc.instances, active) > 0).float()  # (instances, thresholds x units)
        hits = torch.sparse.mm(bc.owner, hit).reshape(-1, n_thr, n)
        active = active.reshape(-1, n_thr, n)

        def counts(x: torch.Tensor) -> np.ndarray:
            return x.round().long().cpu().numpy()

        part = Counts(counts(active.sum(dim=0).T), counts(tp.permute(2, 1, 0)), counts(hits.permute(2, 1, 0)))
        return rows, part

    for _batch, parts in _stream(
        model, sequences, units, reduce, token_budget, device, bf16, what, before=batch_concepts.prepare
    ):
        for rows, part in parts:
            total.add(part, rows)
    return total
