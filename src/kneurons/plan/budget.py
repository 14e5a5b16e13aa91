"""A run's total hours and the one setting that brings a run far over its budget under it. Torch-free."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kneurons.config import model_shape
from kneurons.plan.passes import SWISSPROT_ENZYMES
from kneurons.plan.stages import plan_costs

#: A run this many times over its budget gets the one setting that brings it under.
FAR_OVER_BUDGET = 10.0
#: Single settings that shrink a run, in the order the plan suggests them: the ablation's evaluated
#: test proteins first (every analysis is kept, only its intervals widen), then fewer ablation
#: scopes, the other samples, training epochs, and the data themselves.
SHRINKING_SETTINGS = (
    "ablate.max_sequences",
    "ablate.scopes",
    "characterise.max_proteins",
    "score.max_sequences",
    "train.epochs",
    "data.uniprot.max_entries",
)


def total_hours(cfg: dict[str, Any], flop_rate: float) -> float:
    """Hours of every stage of ``cfg`` at ``flop_rate`` FLOP/s (``StageCost.hours`` summed)."""
    costs, data = plan_costs(cfg)
    dim = model_shape(cfg)[1]
    return sum(c.hours(flop_rate, dim, data.mean_tokens) for c in costs)


def with_setting(cfg: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``cfg`` with the dotted ``key`` set to ``value``."""
    out = copy.deepcopy(cfg)
    *path, last = key.split(".")
    node = out
    for part in path:
        node = node[part]
    node[last] = value
    return out


def _largest_under(fits: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The largest integer in ``[lo, hi]`` for which ``fits`` (true up to some value, false above) holds."""
    if not fits(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def one_setting_under_budget(
    cfg: dict[str, Any], flop_rate: float, budget_hours: float
) -> tuple[str, Any] | None:
    """The first of ``SHRINKING_SETTINGS`` that alone brings ``cfg``'s total under ``budget_hours``
    at ``flop_rate``, with its value (the largest cap that fits; for ``ablate.scopes`` the most
    scopes kept), or None when no single setting does. A sample cap keeps at least one protein
    per class, so that its stratified sample still has every class."""
    data = plan_costs(cfg)[1]

    def fits(c: dict[str, Any]) -> bool:
        return total_hours(c, flop_rate) <= budget_hours

    for key in SHRINKING_SETTINGS:
        section, name = key.split(".", 1)
        if key == "ablate.scopes":
            scopes = list(cfg["ablate"]["scopes"])
            # drop the costliest (layer_module, then module_type) while a scope remains
            for drop in range(1, len(scopes)):
                kept = [s for s in scopes if s not in ("layer_module", "module_type")[:drop]] or scopes[:1]
                if kept != scopes and fits(with_setting(cfg, key, kept)):
                    return key, kept
            continue
        if key == "data.uniprot.max_entries" and cfg["data"]["source"] != "uniprot":
            continue
        if key == "train.epochs":
            now, lo = cfg["train"]["epochs"], 1
        elif key == "data.uniprot.max_entries":
            now, lo = cfg["data"]["uniprot"]["max_entries"] or SWISSPROT_ENZYMES, data.n_classes
        else:
            split = {"ablate": "test"}.get(section) or cfg[section]["split"]
            now, lo = cfg[section][name] or data.n[split], data.n_classes
        best = _largest_under(lambda v, key=key: fits(with_setting(cfg, key, v)), lo, int(now))
        if best is not None and best < now:
            return key, best
    return None
