"""The cost of the planted-knowledge benchmark (``planted``; ``kneurons.planted``), counted when
``planted.enabled`` puts it in the default target. Torch-free.

``V`` variants (``spread``, and ``concentrated`` unless ``planted.concentrated`` is null), ``R =
planted.replicates`` plantings each, ``M`` methods (the run's, with ``delta`` and ``random``
always), ``T_x`` the tokens of split ``x`` of the planted task (``2 x planted.task.n_per_class``
proteins of mean length ``(length_min + length_max) / 2``, plus BOS/EOS, split by
``split.fractions``), ``L`` layers:

- planted train (``V R`` plantings and ``R`` head-alone controls; the base model is built, never
  trained, and not counted): per job ``planted.epochs * (T_train + T_val) * L + T_test * L``
  forward and, for a planting, ``planted.epochs * T_train * L`` backward (an upper bound: S's
  lowest layer may lie above layer 0); the head alone back-propagates into no layer;
- planted score, per method, one job per planting: the method's scoring cost on the task's scoring
  set (``score.max_sequences`` of its ``score.split``), all layers in the job;
- planted ablate, one job per planting and method: every scope of ``ablate.scopes``, as the run's
  ablation jobs count them, on the task's test split (``ablate.max_sequences``), the random
  baseline's seeds (``ablate.random_seeds``) in the one job;
- planted ground truth, one job per planting: on the test split, the planted model, the base, S
  and the rest rolled back, and per method its intact pass and its top-|S| preserved and suppressed
  (random: per seed), every evaluation counted from layer 0 (an upper bound).
"""

from __future__ import annotations

from typing import Any

from kneurons.plan.passes import StageCost, ablation_job_forward, distinct_mask_starts, scoring_cost
from kneurons.planted.design import planted_methods, planted_variants


def planted_tokens(cfg: dict[str, Any]) -> dict[str, float]:
    """Tokens of the planted task's train, val, test split and scoring set (BOS/EOS included)."""
    task, fr = cfg["planted"]["task"], cfg["split"]["fractions"]
    n_total = 2 * task["n_per_class"]
    per = (task["length_min"] + task["length_max"]) / 2 + 2
    n = {s: round(n_total * fr[s]) for s in ("train", "val", "test")}
    cap = cfg["score"]["max_sequences"]
    n_score = n[cfg["score"]["split"]] if cap is None else min(cap, n[cfg["score"]["split"]])
    n_test = (
        n["test"]
        if cfg["ablate"]["max_sequences"] is None
        else min(cfg["ablate"]["max_sequences"], n["test"])
    )
    return {"train": n["train"] * per, "val": n["val"] * per, "test": n_test * per, "score": n_score * per}


def planted_costs(cfg: dict[str, Any], layers: int, dim: int) -> list[StageCost]:
    """The benchmark's model stages (module docstring); none unless ``planted.enabled``."""
    pl = cfg["planted"]
    if not pl["enabled"]:
        return []
    plantings = len(planted_variants(cfg)) * pl["replicates"]
    methods = planted_methods(cfg)
    t = planted_tokens(cfg)
    epochs, seeds = pl["epochs"], len(cfg["ablate"]["random_seeds"])
    fwd_job = layers * (epochs * (t["train"] + t["val"]) + t["test"])
    out = [
        StageCost(
            "planted train",
            plantings + pl["replicates"],
            (plantings + pl["replicates"]) * fwd_job,
            plantings * layers * epochs * t["train"],
            "planted.epochs; planted.task.n_per_class; planted.replicates",
        )
    ]
    for method in methods:
        fwd, bwd = scoring_cost(method, cfg, layers, t["score"])
        out.append(
            StageCost(
                f"planted score {method}", plantings, plantings * fwd, plantings * bwd, "score.max_sequences"
            )
        )
    ab = cfg["ablate"]
    evaluations = sum(seeds if m == "random" else 1 for m in methods)
    per_grid = sum(
        ablation_job_forward(
            layers, distinct_mask_starts(layers, dim, scope, ab["fractions"], ab["modes"]), t["test"]
        )
        for scope in ab["scopes"]
    )
    out.append(
        StageCost(
            "planted ablate",
            plantings * len(methods),
            plantings * evaluations * per_grid,
            0.0,
            "ablate.fractions; ablate.scopes; planted.task.n_per_class",
        )
    )
    # planted, base, S rolled back, the rest rolled back; per method its intact pass and each
    # selection preserved and suppressed
    passes = 4 + len(methods) + 2 * evaluations
    out.append(
        StageCost(
            "planted ground truth",
            plantings,
            plantings * passes * layers * t["test"],
            0.0,
            "planted.replicates",
        )
    )
    return out
