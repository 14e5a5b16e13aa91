"""The benchmark's design from the configuration, and the planted units S (torch-free).

A **variant** says where S is drawn from: ``spread`` draws it uniformly from every neuron of every
module of every layer; ``concentrated`` draws it from one module type only (``planted.concentrated``,
e.g. ``k_proj``, across layers), so claim 3's density statistic has a known answer. Both draw the
same number of neurons, ``round(planted.fraction x N)`` of the model's ``N`` neurons, with a seed of
their own per replicate (``unit_seed``).

The benchmark scores every method of the run, and always ``delta`` (the oracle-like upper bound:
it measures where fine-tuning wrote, which is S by construction) and ``random`` (the baseline of
every verdict), whether or not the run scores them (``planted_methods``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from kneurons.errors import ConfigError
from kneurons.ranking import NeuronLayout

#: The variants of the benchmark: S across every module, or concentrated in one module type.
VARIANTS: tuple[str, ...] = ("spread", "concentrated")
#: Methods the benchmark always scores: the oracle-like upper bound and the random baseline.
ALWAYS: tuple[str, ...] = ("delta", "random")


def planted_variants(cfg: Mapping[str, Any]) -> list[str]:
    """The variants of ``cfg``: ``spread``, and ``concentrated`` unless ``planted.concentrated`` is null."""
    return [v for v in VARIANTS if v == "spread" or cfg["planted"]["concentrated"] is not None]


def planted_methods(cfg: Mapping[str, Any]) -> list[str]:
    """The run's scoring methods (``score.methods``), then those of ``ALWAYS`` it lacks."""
    methods = list(cfg["score"]["methods"])
    return methods + [m for m in ALWAYS if m not in methods]


def unit_seed(seed: int, variant: str, replicate: int) -> list[int]:
    """The seed S is drawn with, per (run seed, variant, replicate): independent draws everywhere."""
    return [int(seed), VARIANTS.index(variant), int(replicate)]


def planted_count(layout: NeuronLayout, fraction: float) -> int:
    """``|S|``: ``round(fraction x N)`` of the layout's ``N`` neurons, at least one."""
    return max(1, int(round(fraction * layout.total)))


def draw_units(
    layout: NeuronLayout, fraction: float, seed: int | Sequence[int], module: str | None = None
) -> pd.DataFrame:
    """S as ``layer, module, neuron`` rows in layout order: ``planted_count`` neurons drawn without
    replacement with ``default_rng(seed)``, from every neuron (``module`` None) or from the neurons
    of one module type. Refused (ConfigError) when that module type has fewer neurons than ``|S|``."""
    n = planted_count(layout, fraction)
    pool = np.arange(layout.total)
    if module is not None:
        block_modules = np.array([m for _, m in layout.blocks])[layout.block_ids()]
        pool = pool[block_modules == module]
        if len(pool) < n:
            raise ConfigError(
                f"planted.concentrated: {module} has {len(pool)} neurons, fewer than |S| = {n} "
                f"(planted.fraction {fraction:g} of {layout.total}); lower planted.fraction"
            )
    chosen = np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))
    return layout.keys(chosen)


def variant_module(variant: str, concentrated: str | None) -> str | None:
    """The module type S is drawn from in ``variant`` (None: every module)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown planted variant {variant!r}; one of {', '.join(VARIANTS)}")
    return concentrated if variant == "concentrated" else None


def membership(units: pd.DataFrame, layout: NeuronLayout, source: str = "planted units") -> np.ndarray:
    """Flat boolean vector over ``layout``: True at the neurons of S."""
    member = np.zeros(layout.total, dtype=bool)
    member[layout.flat_of(units, source)] = True
    return member
