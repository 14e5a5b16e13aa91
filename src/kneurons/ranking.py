"""Ranking neurons from score tables: the neuron layout, per-module normalisation, scopes, top-k.

Torch-free on purpose, and at the bottom of the package: the ablation (torch), the statistics and
figures (the plots environment, no torch), the atlas, characterisation and the cost plan must
rank neurons identically, so all of them use these functions.

Ranking rules (documented once, used everywhere):

* **Global rows only.** A score table may hold class-conditional rows (column ``label`` not
  null); selections use the rows whose ``label`` is null. Random tables hold one set of rows
  per ``seed``.
* **Per-module normalisation** (``ablate.normalise``), applied before neurons of different
  modules are ranked together (scopes ``global`` and ``module_type``); it is a positive
  scaling per module, so it never changes the order inside one module (scope
  ``layer_module``):

  - ``auto`` (default): ``none`` for the attribution methods (``ig``, ``gradxact``) and
    ``mean_abs`` for ``activation`` and ``random``. Attributions already share one unit
    across modules (IG's completeness: a module's attributions sum to the change of the
    target it causes), so rescaling them would throw that comparison away; activation
    magnitudes do not share a unit (a q_proj and an fc1 output live on different scales).

  - ``mean_abs`` (default): ``score / mean(|score|)`` over the module's neurons. A neuron
    ranks high when it stands out within its own module, whatever the module's scale or
    size (fc1 has 4x the neurons of k_proj). Modules whose attribution is concentrated in
    a few neurons contribute most of a global top-f: this is what "knowledge neurons are
    dense in k_proj" asks about.
  - ``max_abs``: ``score / max(|score|)``; every module's best neuron scores 1, so one
    outlier neuron squashes the rest of its module.
  - ``none``: raw scores (only meaningful when every module's scores share a scale).

  Rank-percentile normalisation is deliberately not offered: it gives every module the same
  share of any global top-f, so the density enrichment would be 1 by construction.
* **Top-k.** ``k = floor(f * n + 0.5)`` of the ``n`` neurons in scope (round half up), the
  ``k`` largest normalised scores (signed: a negative attribution ranks low). Ties are broken
  by neuron order (layer, then module in ``UNIT_MODULES`` order, then neuron index), so a
  selection is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kneurons.errors import InputError
from kneurons.scoring.registry import is_attribution
from kneurons.vocabulary import MODULE_TYPES, SCOPES, UNIT_MODULES

NORMALISATIONS: tuple[str, ...] = ("auto", "mean_abs", "max_abs", "none")

Block = tuple[int, str]


@dataclass(frozen=True)
class NeuronLayout:
    """Every neuron of a model, as consecutive blocks ``(layer, module)`` of ``size`` neurons.

    The flat index of neuron ``i`` of block ``b`` is ``offset(b) + i``; blocks are ordered by
    layer, then module in ``UNIT_MODULES`` order (a layer's SAE features, then its neuron modules).
    """

    blocks: tuple[Block, ...]
    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.blocks) != len(self.sizes):
            raise ValueError("blocks and sizes differ in length")
        order = sorted(self.blocks, key=block_key)
        if list(order) != list(self.blocks) or len(set(self.blocks)) != len(self.blocks):
            raise ValueError("blocks must be unique and ordered by (layer, module)")

    @classmethod
    def from_sizes(cls, num_layers: int, sizes: dict[str, int]) -> NeuronLayout:
        """All modules of ``num_layers`` layers; ``sizes`` maps module type to its neuron count."""
        blocks = [(layer, m) for layer in range(num_layers) for m in MODULE_TYPES]
        return cls(tuple(blocks), tuple(int(sizes[m]) for _, m in blocks))

    @classmethod
    def from_scores(cls, scores: pd.DataFrame, source: str = "score table") -> NeuronLayout:
        """The layout a score table covers: each (layer, module) present, ``max(neuron) + 1`` neurons."""
        _require_columns(scores, ("layer", "module", "neuron"), source)
        bad = sorted(set(scores["module"]) - set(UNIT_MODULES))
        if bad:
            raise InputError(f"{source}: unknown module(s) {bad}; expected {', '.join(UNIT_MODULES)}")
        sizes = scores.groupby(["layer", "module"], sort=False)["neuron"].max() + 1
        blocks = sorted(((int(lay), str(m)) for lay, m in sizes.index), key=block_key)
        return cls(tuple(blocks), tuple(int(sizes[b]) for b in blocks))

    @property
    def total(self) -> int:
        return int(sum(self.sizes))

    @property
    def num_layers(self) -> int:
        return 1 + max(layer for layer, _ in self.blocks)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    def index(self, block: Block) -> int:
        """Position of ``block`` among the blocks."""
        return self.blocks.index(block)

    def slice(self, block: Block) -> slice:
        """Flat-index slice of ``block``'s neurons."""
        i = self.index(block)
        start = int(self.offsets[i])
        return slice(start, start + self.sizes[i])

    def block_ids(self) -> np.ndarray:
        """Block position of every flat neuron index."""
        return np.repeat(np.arange(len(self.blocks)), self.sizes)

    def keys(self, flat: np.ndarray) -> pd.DataFrame:
        """``layer, module, neuron`` of the flat indices ``flat``, in their order."""
        flat = np.asarray(flat, dtype=np.int64)
        block = self.block_ids()[flat]
        return pd.DataFrame(
            {
                "layer": [self.blocks[b][0] for b in block],
                "module": [self.blocks[b][1] for b in block],
                "neuron": (flat - self.offsets[block]).astype(np.int64),
            }
        )

    def flat_of(self, keys: pd.DataFrame, source: str = "table") -> np.ndarray:
        """Flat indices of the neurons in ``keys`` (columns ``layer, module, neuron``), in row order.

        Raises InputError naming ``source`` and the row of a neuron that is not part of the layout.
        """
        offsets = {b: int(o) for b, o in zip(self.blocks, self.offsets, strict=True)}
        sizes = dict(zip(self.blocks, self.sizes, strict=True))
        layer = keys["layer"].to_numpy(dtype=np.int64)
        module = keys["module"].astype(str).to_numpy()
        neuron = keys["neuron"].to_numpy(dtype=np.int64)
        flat = np.empty(len(keys), dtype=np.int64)
        for i, (lay, m, n) in enumerate(zip(layer, module, neuron, strict=True)):
            b = (int(lay), m)
            if b not in offsets or not 0 <= n < sizes[b]:
                raise InputError(f"{source}: row {i}: neuron ({lay}, {m}, {n}) is not part of the model")
            flat[i] = offsets[b] + n
        return flat

    def flat_index(self, blocks: Iterable[Block]) -> np.ndarray:
        """Flat indices of all neurons of ``blocks``, in layout order."""
        wanted = set(blocks)
        parts = [np.arange(s.start, s.stop) for b in self.blocks if b in wanted for s in [self.slice(b)]]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def block_key(block: Block) -> tuple[int, int]:
    """Sort key of a block: layer, then module in ``UNIT_MODULES`` order (a layer's SAE features first)."""
    return (int(block[0]), UNIT_MODULES.index(block[1]))


def _require_columns(df: pd.DataFrame, cols: Sequence[str], source: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; has {list(df.columns)}")


def global_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows of a score table that rank neurons over all classes (``label`` null or absent)."""
    if "label" not in scores.columns:
        return scores
    return scores[scores["label"].isna()]


def score_seeds(scores: pd.DataFrame) -> list[int | None]:
    """Seeds present in a score table (``[None]`` when it has no ``seed`` column or only nulls)."""
    if "seed" not in scores.columns or scores["seed"].isna().all():
        return [None]
    return sorted(int(s) for s in scores["seed"].dropna().unique())


def score_vector(
    scores: pd.DataFrame,
    layout: NeuronLayout,
    seed: int | None = None,
    source: str = "score table",
) -> np.ndarray:
    """Flat score vector over ``layout`` from the global rows of a score table (one seed for random).

    Raises InputError naming ``source`` when a neuron is missing, duplicated, outside the
    layout or has a non-finite score.
    """
    _require_columns(scores, ("layer", "module", "neuron", "score"), source)
    rows = global_rows(scores)
    if seed is not None:
        if "seed" not in rows.columns:
            raise InputError(f"{source}: no column 'seed', but seed {seed} was asked for")
        rows = rows[rows["seed"] == seed]
    elif "seed" in rows.columns and rows["seed"].notna().any():
        seeds = score_seeds(rows)
        if len(seeds) > 1:
            raise InputError(f"{source}: holds seeds {seeds}; say which one to use")
    if rows.empty:
        what = f" for seed {seed}" if seed is not None else ""
        raise InputError(f"{source}: no global (label-free) score rows{what}")
    flat = layout.flat_of(rows, source)
    counts = np.bincount(flat, minlength=layout.total)
    if (counts > 1).any():
        j = int(np.flatnonzero(counts > 1)[0])
        raise InputError(f"{source}: neuron {_describe(layout, j)} has {counts[j]} global score rows")
    if (counts == 0).any():
        j = int(np.flatnonzero(counts == 0)[0])
        raise InputError(
            f"{source}: {int((counts == 0).sum())} neuron(s) have no score, e.g. {_describe(layout, j)}"
        )
    values = rows["score"].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InputError(f"{source}: row {i}: score {values[i]} is not finite")
    out = np.empty(layout.total, dtype=np.float64)
    out[flat] = values
    return out


def _describe(layout: NeuronLayout, flat: int) -> str:
    b = int(layout.block_ids()[flat])
    layer, m = layout.blocks[b]
    return f"(layer {layer}, {m}, neuron {flat - int(layout.offsets[b])})"


def resolve_normalisation(how: str, method: str) -> str:
    """The normalisation ``how`` means for ``method`` (``auto``: none for attributions, mean_abs otherwise).

    Attributions (``MethodSpec.attribution`` in the scoring registry) share a unit across modules.
    """
    if how not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {how!r}; one of {', '.join(NORMALISATIONS)}")
    if how != "auto":
        return how
    return "none" if is_attribution(method) else "mean_abs"


def normalise_per_module(
    scores: np.ndarray, layout: NeuronLayout, how: str = "mean_abs", method: str | None = None
) -> np.ndarray:
    """Divide each module's scores by its mean (``mean_abs``) or max (``max_abs``) absolute score.

    A module whose scores are all zero is left at zero. ``none`` returns a copy. ``auto`` is
    resolved for ``method`` (``resolve_normalisation``); without a method the scores are taken
    to be attributions (IG), i.e. left unnormalised.
    """
    how = resolve_normalisation(how, method or "ig")
    out = np.array(scores, dtype=np.float64, copy=True)
    if how == "none":
        return out
    for b in layout.blocks:
        s = layout.slice(b)
        mag = np.abs(out[s])
        scale = mag.mean() if how == "mean_abs" else mag.max()
        if scale > 0:
            out[s] /= scale
    return out


def scope_members(layout: NeuronLayout, scope: str) -> dict[str, list[Block]]:
    """The scope names of ``scope`` and the blocks each covers.

    ``global`` -> ``{"global": all blocks}``; ``module_type`` -> ``{"k_proj": [(0, "k_proj"), ...]}``;
    ``layer_module`` -> ``{"L0.k_proj": [(0, "k_proj")], ...}``.
    """
    if scope == "global":
        return {"global": list(layout.blocks)}
    if scope == "module_type":
        types = [m for m in UNIT_MODULES if any(bm == m for _, bm in layout.blocks)]
        return {m: [b for b in layout.blocks if b[1] == m] for m in types}
    if scope == "layer_module":
        return {layer_module_name(b): [b] for b in layout.blocks}
    raise ValueError(f"unknown scope {scope!r}; one of {', '.join(SCOPES)}")


def layer_module_name(block: Block) -> str:
    """Scope name of one module of one layer, e.g. ``L2.k_proj``."""
    return f"L{block[0]}.{block[1]}"


def top_k_count(f: float, n: int) -> int:
    """Number of neurons in the top fraction ``f`` of ``n`` (round half up, within 0..n)."""
    return int(min(n, max(0, math.floor(f * n + 0.5))))


def rank_order(values: np.ndarray) -> np.ndarray:
    """Indices of ``values`` from largest to smallest; ties keep index order."""
    return np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")


def top_mask(values: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` largest ``values`` (ties by index order)."""
    mask = np.zeros(len(values), dtype=bool)
    mask[rank_order(values)[:k]] = True
    return mask


def global_top(
    scores: np.ndarray, layout: NeuronLayout, fraction: float, normalise: str
) -> tuple[np.ndarray, int]:
    """Flat boolean mask of the global top ``ceil(fraction * total)`` neurons, normalised per module."""
    n_top = max(1, math.ceil(fraction * layout.total - 1e-9))
    return top_mask(normalise_per_module(scores, layout, normalise), n_top), n_top
