"""Completeness of path attributions, checked at run time, and IG raised to the steps it needs.

Integrated gradients are complete: over a module's units (a layer's SAE features, or one neuron
module of a layer), the attributions of a sequence sum to ``F(1) - F(0)``, the target of the intact
model minus the target with every unit zeroed (the error term of an SAE kept). A quadrature rule
gets there only with enough points, and where the path is steep the error gathers in a few
proteins: the embedded default's SAE features (layer 2, replicate 0) were off by 81% of the effect
at 8 Gauss-Legendre points, 32% at 16, 13% at 32 and 2.3% at 64 (medians per protein 45%, 10%,
0.26%, 2e-5: zeroing the features leaves only the error term, and the layer norms after it turn
steep near alpha = 0), and its neurons' layer-0 attention modules 28-46% at 8 points, 0.2-0.5% at 32.

The **completeness gap** of a layer's module (or SAE) over the scoring set's ``n`` sequences::

    gap = sum_s |sum_i attr_si - (F_s(1) - F_s(0))|  /  sum_s |F_s(1) - F_s(0)|

(the attributions' error in units of the effect they distribute). It passes ``tolerance``
(``score.ig.tolerance``) when ``gap <= tolerance`` or the error is within the rounding of the
target itself: ``n x PRECISION[dtype]`` in all (a module whose zeroing changes the target by less
than its float rounding has no effect to distribute). A module above it is **refined**: the
proteins whose error exceeds their share (``tolerance x`` the mean ``|F(1) - F(0)|``) are rescored
with twice the steps, and again, until the module passes, up to ``score.ig.max_steps``; still above
it there, the job fails naming both settings. Each protein's attributions are its IG at the steps
it needed (the integral is per protein; the rule only approximates it), so the few proteins with a
steep path pay for their steps, not the whole set. Grad x activation has one point by definition:
its gap is recorded, never raised.

Every ig and gradxact score table records, per layer and module, every attempt (steps, proteins,
tokens, gap after it) and how many proteins used which steps (``COMPLETENESS_KEY`` in its
metadata; ``kneurons.jobs.score``; the cost plan counts the attempts: ``kneurons.plan.recorded``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kneurons.errors import ConfigError
from kneurons.tables import COMPLETENESS_KEY

if TYPE_CHECKING:
    from kneurons.model.classifier import EsmClassifier
    from kneurons.scoring.ig import IntegratedGradients

log = logging.getLogger(__name__)

__all__ = ["COMPLETENESS_KEY", "PRECISION", "completeness_gap", "converged_attributions"]

#: Per sequence, the rounding of the target ``F`` in the pass's precision: float32 (2^-23 of a
#: probability or logit of order 1, with room for the sums over tokens and steps) and bfloat16
#: autocast (8 significand bits: 2^-8 of ``F``).
PRECISION = {"float32": 1e-6, "bfloat16": 4e-3}


def completeness_gap(attributions: np.ndarray, effects: np.ndarray, floor: float) -> dict[str, float]:
    """The completeness of one module's attributions ``(n_seq, n_units)`` against its effects
    ``(n_seq,)``: ``gap`` (module docstring), ``median_gap`` (per sequence, over sequences with an
    effect), ``error`` and ``effect`` (the sums over sequences), and whether ``error <= floor``."""
    attributions = np.asarray(attributions, dtype=np.float64)
    effects = np.asarray(effects, dtype=np.float64)
    per_error = np.abs(attributions.sum(1) - effects)
    error, effect = float(per_error.sum()), float(np.abs(effects).sum())
    has = np.abs(effects) > 0
    return {
        "gap": error / effect if effect > 0 else (0.0 if error == 0 else float("inf")),
        "median_gap": float(np.median(per_error[has] / np.abs(effects[has]))) if has.any() else 0.0,
        "error": error,
        "effect": effect,
        "within_rounding": error <= floor,
    }


def converged_attributions(
    method: IntegratedGradients,
    model: EsmClassifier,
    sequences: Sequence[str],
    gold: Sequence[int],
    layer: int,
    module_types: Sequence[str],
    device: torch.device | str = "cpu",
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """``method``'s attributions of ``layer``'s ``module_types`` and one completeness record per module
    (module docstring): ``{"layer", "module", "steps" (the most any protein used), "gap",
    "median_gap", "error", "effect", "within_rounding", "passed", "proteins_by_steps", "tried"}``,
    ``tried`` one ``[steps, proteins, tokens, gap after]`` per attempt.

    IG (``method.raises_steps``) refines a module above ``method.tolerance``: the proteins whose
    error exceeds their share of it (``tolerance x mean |effect|``) are rescored with twice the
    steps, until the module's gap is within it; ConfigError naming the settings when it is not at
    ``method.max_steps``. Without a tolerance (None) nothing is raised and ``passed`` is None.
    """
    device = torch.device(device)
    bf16 = method.bf16 and device.type == "cuda"
    floor = len(sequences) * PRECISION["bfloat16" if bf16 else "float32"]
    tokens = np.array([len(s) + 2 for s in sequences], dtype=np.int64)
    effects: dict[str, np.ndarray] = {}
    attr = method.attribute(model, sequences, gold, layer, module_types, device=device, effects=effects)
    points = len(method.points()[0])  # IG's steps; grad x activation's one point
    steps_of = {t: np.full(len(sequences), points, dtype=np.int64) for t in module_types}
    tried: dict[str, list[list[float]]] = {t: [] for t in module_types}
    checks: dict[str, dict[str, Any]] = {}

    def check(t: str, steps: int, rows: np.ndarray) -> bool | None:
        checks[t] = completeness_gap(attr[t], effects[t], floor)
        tried[t].append([steps, len(rows), int(tokens[rows].sum()), checks[t]["gap"]])
        if method.tolerance is None:
            return None
        return bool(checks[t]["gap"] <= method.tolerance or checks[t]["within_rounding"])

    everyone = np.arange(len(sequences))
    passed = {t: check(t, points, everyone) for t in module_types}
    current = method
    while method.raises_steps and (failed := [t for t in module_types if passed[t] is False]):
        if current.steps >= method.max_steps:
            worst = ", ".join(f"{t}: {checks[t]['gap']:.3g}" for t in failed)
            raise ConfigError(
                f"{method.name} layer {layer}: the completeness gap stays above score.ig.tolerance = "
                f"{method.tolerance:g} at score.ig.max_steps = {method.max_steps} ({worst}): raise "
                f"score.ig.max_steps, or loosen score.ig.tolerance"
            )
        current = dataclasses.replace(current, steps=min(2 * current.steps, method.max_steps))
        # the proteins above their share of the tolerance, of any failing module, are rescored
        share = {t: method.tolerance * np.abs(effects[t]).mean() for t in failed}
        errors = {t: np.abs(attr[t].sum(1) - effects[t]) for t in failed}
        rows = np.flatnonzero(np.any([errors[t] > share[t] for t in failed], axis=0))
        log.info(
            "%s layer %d: completeness gap %s above %g: rescoring %d of %d proteins with %d steps",
            *(method.name, layer, {t: round(checks[t]["gap"], 5) for t in failed}, method.tolerance),
            *(len(rows), len(sequences), current.steps),
        )
        fresh: dict[str, np.ndarray] = {}
        redone = current.attribute(
            model,
            [sequences[i] for i in rows],
            [gold[i] for i in rows],
            layer,
            failed,
            device=device,
            effects=fresh,
        )
        for t in failed:
            attr[t][rows], effects[t][rows], steps_of[t][rows] = redone[t], fresh[t], current.steps
            passed[t] = check(t, current.steps, rows)
    records = []
    for t in module_types:
        used, counts = np.unique(steps_of[t], return_counts=True)
        records.append(
            {
                "layer": int(layer),
                "module": t,
                "steps": int(used.max()),
                **checks[t],
                "passed": passed[t],
                "proteins_by_steps": {str(int(u)): int(c) for u, c in zip(used, counts, strict=True)},
                "tried": tried[t],
            }
        )
        log.info(
            "%s layer %d %s: steps %s (proteins per steps), completeness gap %.3g (median per protein %.3g)",
            *(
                method.name,
                layer,
                t,
                records[-1]["proteins_by_steps"],
                checks[t]["gap"],
                checks[t]["median_gap"],
            ),
        )
    return attr, records
