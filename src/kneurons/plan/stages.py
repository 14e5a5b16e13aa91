"""The stages of a run and their cost (``plan_costs``): fine-tuning, scoring, ablation, the
external sets, class characterisation and the SAE feature stages, per replicate. Torch-free."""

from __future__ import annotations

from typing import Any

from kneurons.config import model_shape
from kneurons.plan.explain import explain_cost
from kneurons.plan.features import feature_costs
from kneurons.plan.passes import (
    DataSize,
    StageCost,
    ablation_job_forward,
    data_size,
    distinct_mask_starts,
    external_tokens,
    scoring_cost,
)
from kneurons.scatter import random_seed_chunks, score_layer_chunks


def plan_costs(cfg: dict[str, Any]) -> tuple[list[StageCost], DataSize]:
    """The cost of every stage of ``cfg`` (validated) and the data size it assumed.

    Fine-tuning, scoring, ablation and class characterisation run once per replicate
    (``train.replicates``); each external set adds the global scope's ablation per replicate;
    ``units.features`` adds the feature stages (``kneurons.plan.features.feature_costs``), per replicate;
    ``explain.proteins`` the explain job (``kneurons.plan.explain.explain_cost``).
    """
    layers, dim, _ = model_shape(cfg)
    data = data_size(cfg)
    tr, sc, ab = cfg["train"], cfg["score"], cfg["ablate"]
    reps = tr["replicates"]
    rep_cap = "; train.replicates" if reps > 1 else ""
    t_train, t_val, t_test = (data.tokens(s) for s in ("train", "val", "test"))
    train_fwd = layers * (tr["epochs"] * (t_train + t_val) + t_test)
    train_bwd = layers * tr["epochs"] * t_train
    out = [
        StageCost(
            "finetune",
            reps,
            reps * train_fwd,
            reps * train_bwd,
            "train.epochs; data.uniprot.max_entries" + rep_cap,
        )
    ]
    t_score = data.tokens(sc["split"], sc["max_sequences"])
    score_jobs = len(score_layer_chunks(cfg))
    for method in sc["methods"]:
        fwd, bwd = scoring_cost(method, cfg, layers, t_score)
        cap = ("score.ig.steps; score.max_sequences" if method == "ig" else "score.max_sequences") + rep_cap
        out.append(StageCost(f"score {method}", reps * score_jobs, reps * fwd, reps * bwd, cap))
    # The passes count one evaluation of the grid per method and per random seed; the jobs column
    # counts Snakemake jobs (the random baseline's seeds chunked, an external set's all in one).
    evaluations = reps * sum(len(ab["random_seeds"]) if m == "random" else 1 for m in sc["methods"])
    random_jobs = len(random_seed_chunks(cfg)) if "random" in sc["methods"] else 0
    test_jobs = reps * (len([m for m in sc["methods"] if m != "random"]) + random_jobs)

    def ablation(stage: str, scope: str, tokens: float, cap: str, jobs: int) -> StageCost:
        fwd = ablation_job_forward(
            layers, distinct_mask_starts(layers, dim, scope, ab["fractions"], ab["modes"]), tokens
        )
        return StageCost(stage, jobs, evaluations * fwd, 0.0, cap + rep_cap)

    t_eval = data.tokens("test", ab["max_sequences"])
    for scope in ab["scopes"]:
        cap = "ablate.max_sequences; ablate.fractions" + (
            "; ablate.scopes" if scope == "layer_module" else ""
        )
        out.append(ablation(f"ablate {scope}", scope, t_eval, cap, test_jobs))
    for name in cfg["evaluate"]["external"]:
        tokens = external_tokens(cfg, name)
        out.append(
            ablation(
                f"external {name}",
                "global",
                tokens,
                "evaluate.external; ablate.fractions",
                reps * len(sc["methods"]),
            )
        )
    ch = cfg["characterise"]
    if ch["enabled"]:
        t_held = data.tokens(ch["split"], ch["max_proteins"])
        sets = 1 + data.n_classes * (1 + ch["random_sets"])
        # class suppression in every replicate; the neurons' residue activations in the main run
        out.append(
            StageCost(
                "characterise",
                reps + 1,
                t_held * layers * (reps * sets + 1),
                0.0,
                "characterise.max_proteins; characterise.random_sets" + rep_cap,
            )
        )
    out += feature_costs(cfg, data, layers, dim)
    explained = explain_cost(cfg, layers)
    if explained is not None:
        out.append(explained)
    return out, data
