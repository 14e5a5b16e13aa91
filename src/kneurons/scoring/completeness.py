"""Completeness of path attributions, checked at run time, and IG raised to the steps it needs.

Integrated gradients are complete: over a module's units (a layer's SAE features, or one neuron
module of a layer), the attributions of a sequence sum to ``F(1) - F(0)``, the target of the intact
model minus the target with every unit zeroed (the error term of an SAE kept). A quadrature rule
gets there only with enough points: the SAE features of the embedded default's layer 2 were off
by a median 74% of that effect at 8 Gauss-Legendre points, 1.4e-4 at 64, while the neurons were
within 3e-9 at 8 (zeroing an SAE's features removes most of the stream, a far steeper path).

The **completeness gap** of a layer's module (or SAE) over the scoring set's ``n`` sequences::

    gap = sum_s |sum_i attr_si - (F_s(1) - F_s(0))|  /  sum_s |F_s(1) - F_s(0)|

(the attributions' error in units of the effect they distribute). It passes ``tolerance``
(``score.ig.tolerance``) when ``gap <= tolerance`` or the error is within the rounding of the
target itself: ``n x PRECISION[dtype]`` in all (a module whose zeroing changes the target by less
than its float rounding has no effect to distribute). IG rescored with twice the steps until its
module passes, up to ``score.ig.max_steps``; still above it there, the job fails naming both
settings. Grad x activation has one point by definition: its gap is recorded, never raised.

Every ig and gradxact score table records, per layer and module, the steps tried and their gaps
(``COMPLETENESS_KEY`` in its metadata; ``kneurons.jobs.score``).
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
    """``method``'s attributions of ``layer``'s ``module_types`` and one completeness record per module:
    ``{"layer", "module", "steps", "gap", "median_gap", "error", "effect", "passed", "tried"}``
    (``tried``: ``[steps, gap]`` of every attempt). IG (``method.raises_steps``) doubles the steps
    of a module above ``method.tolerance`` up to ``method.max_steps``; ConfigError naming both
    settings when a module is still above it there. Without a tolerance (None) nothing is raised
    and ``passed`` is None."""
    device = torch.device(device)
    bf16 = method.bf16 and device.type == "cuda"
    floor = len(sequences) * PRECISION["bfloat16" if bf16 else "float32"]
    out: dict[str, np.ndarray] = {}
    records: dict[str, dict[str, Any]] = {}
    current, todo = method, list(module_types)
    while todo:
        alphas, _ = current.points()
        effects: dict[str, np.ndarray] = {}
        per = current.attribute(model, sequences, gold, layer, todo, device=device, effects=effects)
        failed = []
        for t in todo:
            check = completeness_gap(per[t], effects[t], floor)
            passed = (
                None
                if current.tolerance is None
                else bool(check["gap"] <= current.tolerance or check["within_rounding"])
            )
            tried = [*records.get(t, {}).get("tried", []), [len(alphas), check["gap"]]]
            records[t] = {"layer": int(layer), "module": t, "steps": len(alphas), **check}
            records[t].update({"passed": passed, "tried": tried})
            if passed is not False or not method.raises_steps:
                out[t] = per[t]
            else:
                failed.append(t)
        if not failed:
            break
        if current.steps >= method.max_steps:
            worst = ", ".join(f"{t}: {records[t]['gap']:.3g}" for t in failed)
            raise ConfigError(
                f"{method.name} layer {layer}: the completeness gap stays above score.ig.tolerance = "
                f"{method.tolerance:g} at score.ig.max_steps = {method.max_steps} ({worst}): raise "
                f"score.ig.max_steps, or loosen score.ig.tolerance"
            )
        steps = min(2 * current.steps, method.max_steps)
        log.info(
            "%s layer %d: completeness gap %s above %g at %d steps: rescoring with %d steps",
            *(method.name, layer, {t: round(records[t]["gap"], 5) for t in failed}),
            *(method.tolerance, current.steps, steps),
        )
        current, todo = dataclasses.replace(current, steps=steps), failed
    for t in module_types:
        r = records[t]
        log.info(
            "%s layer %d %s: %d steps, completeness gap %.3g (median per protein %.3g)",
            *(method.name, layer, t, r["steps"], r["gap"], r["median_gap"]),
        )
    return {t: out[t] for t in module_types}, [records[t] for t in module_types]
