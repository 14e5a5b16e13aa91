"""The stages of a run and their cost (``plan_costs``): fine-tuning, scoring, ablation, the
external sets, class characterisation and the SAE feature stages, per replicate, and the concept
alignment of the main run. Torch-free."""

from __future__ import annotations

from typing import Any

from kneurons.config import model_shape
from kneurons.plan.explain import explain_cost
from kneurons.plan.features import feature_costs, feature_layout
from kneurons.plan.passes import (
    DataSize,
    StageCost,
    ablation_job_forward,
    data_size,
    distinct_mask_starts,
    external_tokens,
    fill_counts,
    neuron_layout,
    scoring_cost,
)
from kneurons.plan.planted import planted_costs
from kneurons.plan.recorded import recorded_attempts
from kneurons.scatter import random_seed_chunks, score_layer_chunks
from kneurons.settings import scope_modes

#: FLOPs of counting one residue of one unit at one threshold (``kneurons.concepts.activations``: a
#: comparison, the concept index-add, the instance scatter and its index-add).
COUNT_FLOPS = 4.0


#: The workflow rules whose jobs each kind of stage counts (a stage's kind: its name when listed,
#: else its first word: ``score ig`` is a ``score`` stage). The plan's jobs of a kind equal the
#: jobs Snakemake schedules for its rules (tests/test_shipped_configs.py, every shipped config).
STAGE_RULES: dict[str, tuple[str, ...]] = {
    "finetune": ("finetune",),
    "score": ("score_layers",),
    "ablate": ("ablate", "ablate_seed"),
    "external": ("ablate_external",),
    "characterise": ("characterise_classes", "characterise_neurons"),
    "train SAEs": ("train_sae",),
    "SAE report": ("sae_report",),
    "score features": ("score_features",),
    "ablate features": ("ablate_features",),
    "characterise features": ("characterise_features",),
    "SAE quality": ("sae_quality",),
    "same-site bases": ("same_site_bases",),
    # the planted benchmark (planted.enabled): its stages by their first two words
    "planted train": ("planted_plant", "planted_head_only"),
    "planted score": ("planted_score",),
    "planted ablate": ("planted_ablate",),
    "planted ground truth": ("planted_ground_truth",),
    "concepts": ("concepts",),
    "explain": ("explain",),
}
#: The rules the plan does not cost: they run no model (downloads, labels, the split and its MMseqs2
#: searches, gathering, statistics, claims, figures, the atlas) and take seconds to minutes. A rule
#: in neither table fails tests/test_shipped_configs.py: cost it in a stage, or name it here.
UNCOSTED_RULES: frozenset[str] = frozenset(
    {
        "all",
        "download_synthetic",
        "download_uniprot",
        "download_expasy",
        "download_brenda",
        "proteins",
        "labels",
        "split",
        "leakage",
        "scoring_set",
        "gather_scores",
        "gather_ablation_seeds",
        "external_synthetic",
        "external_set",
        "external_stats",
        "ablation_stats",
        "claims",
        "feature_stats",
        "compactness",
        "characterise_figures",
        "atlas",
        # the planted benchmark: its data and base model are built, not trained; its statistics
        "planted_data",
        "planted_base",
        "planted_curves",
        "planted_stats",
        "concept_figures",
    }
)


#: Rule-name prefixes the plan does not cost either: every ``figure_*`` rule draws from tables.
UNCOSTED_PREFIXES: tuple[str, ...] = ("figure_",)


def is_costed(rule: str) -> bool | None:
    """Whether the plan costs ``rule``'s jobs (True), does not (False), or does not know it (None)."""
    if any(rule in rules for rules in STAGE_RULES.values()):
        return True
    if rule in UNCOSTED_RULES or rule.startswith(UNCOSTED_PREFIXES):
        return False
    return None


def stage_kind(stage: str) -> str:
    """The kind of a plan stage (a key of ``STAGE_RULES``): its name, or its first two words
    (``planted score ig``), or its first word (``score ig``)."""
    if stage in STAGE_RULES:
        return stage
    two = " ".join(stage.split()[:2])
    return two if two in STAGE_RULES else stage.split()[0]


def rule_jobs(costs: list[StageCost]) -> dict[str, int]:
    """Jobs per kind of stage (``STAGE_RULES``), summed over the stages of each kind."""
    out: dict[str, int] = {}
    for c in costs:
        kind = stage_kind(c.stage)
        if kind not in STAGE_RULES:
            raise KeyError(f"plan stage {c.stage!r} has no entry in kneurons.plan.STAGE_RULES")
        out[kind] = out.get(kind, 0) + c.jobs
    return out


def plan_costs(cfg: dict[str, Any]) -> tuple[list[StageCost], DataSize]:
    """The cost of every stage of ``cfg`` (validated) and the data size it assumed.

    Fine-tuning, scoring, ablation and class characterisation run once per replicate
    (``train.replicates``); each external set adds the global scope's ablation per replicate;
    ``units.features`` adds the feature stages (``kneurons.plan.features.feature_costs``), per replicate;
    ``planted.enabled`` the planted-knowledge benchmark's (``kneurons.plan.planted.planted_costs``);
    ``concepts.enabled`` the concept stage (``concept_costs``); ``explain.proteins`` the explain job
    (``kneurons.plan.explain.explain_cost``).
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
        # per replicate: the steps its score tables record, where it has scored (IG's completeness)
        costs = [
            scoring_cost(method, cfg, layers, t_score, recorded_attempts(cfg, method, r)) for r in range(reps)
        ]
        fwd, bwd = sum(c[0] for c in costs), sum(c[1] for c in costs)
        steps = "score.ig.steps; score.ig.max_steps; " if method == "ig" else ""
        cap = steps + "score.max_sequences" + rep_cap
        out.append(StageCost(f"score {method}", reps * score_jobs, fwd, bwd, cap))
    # The passes count one evaluation of the grid per method and per random seed; the jobs column
    # counts Snakemake jobs (the random baseline's seeds chunked, an external set's all in one).
    evaluations = reps * sum(len(ab["random_seeds"]) if m == "random" else 1 for m in sc["methods"])
    random_jobs = len(random_seed_chunks(cfg)) if "random" in sc["methods"] else 0
    test_jobs = reps * (len([m for m in sc["methods"] if m != "random"]) + random_jobs)

    def ablation(
        stage: str, scope: str, tokens: float, cap: str, jobs: int, scoped: bool = True
    ) -> StageCost:
        # scoped: a neuron job of the test split, whose fills and modes follow its scope
        # (ablate.fill_scopes, ablate.mode_scopes); an external set's job takes every one
        fills, resample = fill_counts(cfg, scope=scope if scoped else None)
        modes = scope_modes(ab, scope if scoped else None)
        fwd = ablation_job_forward(
            layers,
            distinct_mask_starts(layers, dim, scope, ab["fractions"], modes),
            tokens,
            fills,
            resample,
        )
        return StageCost(stage, jobs, evaluations * fwd, 0.0, cap + rep_cap)

    t_eval = data.tokens("test", ab["max_sequences"])
    for scope in ab["scopes"]:
        cap = (
            "ablate.max_sequences; ablate.fractions"
            + ("; ablate.scopes" if scope == "layer_module" else "")
            + ("; ablate.mode_scopes" if scope != "global" else "")
        )
        out.append(ablation(f"ablate {scope}", scope, t_eval, cap, test_jobs))
    for name in cfg["evaluate"]["external"]:
        tokens = external_tokens(cfg, name)
        out.append(
            ablation(
                f"external {name}",
                "global",
                tokens,
                "ablate.max_sequences; evaluate.external; ablate.fractions",
                reps * len(sc["methods"]),
                scoped=False,
            )
        )
    ch = cfg["characterise"]
    if ch["enabled"]:
        t_held = data.tokens(ch["split"], ch["max_proteins"])
        sets = 1 + data.n_classes * (1 + ch["random_sets"])
        # class suppression in every replicate, every set under every fill (the intact pass and the
        # donors' once); the neurons' residue activations in the main run
        fills, resample = fill_counts(cfg)
        per_rep = 1 + resample + fills * (sets - 1)
        out.append(
            StageCost(
                "characterise",
                reps + 1,
                t_held * layers * (reps * per_rep + 1),
                0.0,
                "characterise.max_proteins; characterise.random_sets" + rep_cap,
            )
        )
    out += feature_costs(cfg, data, layers, dim)
    out += planted_costs(cfg, layers, dim)
    out += concept_costs(cfg, data, layers, dim)
    explained = explain_cost(cfg, layers)
    if explained is not None:
        out.append(explained)
    return out, data


def concept_costs(cfg: dict[str, Any], data: DataSize, layers: int, dim: int) -> list[StageCost]:
    """The concept stage (``concepts.enabled``; ``kneurons.concepts``), the main run only: one job.

    Its passes run every layer (the neurons of the last one are units): the training sample for the
    units' maxima, the validation and test parts for the counts, and the test part once more for the
    nulls of the pairs above the floor (one pass when their activations fit one chunk). Each part is
    at most ``concepts.max_proteins`` proteins. Counting adds, per residue of the validation and test
    parts, unit and threshold, a comparison and three scatter-adds (``COUNT_FLOPS``).
    """
    c = cfg["concepts"]
    if not c["enabled"]:
        return []
    cap = c["max_proteins"]
    t_train, t_val, t_test = (data.tokens(s, cap) for s in ("train", "val", "test"))
    units = neuron_layout(layers, dim).total
    if cfg["units"]["features"]:
        units_f = feature_layout(cfg, dim).total
        units = min(units, c["max_units"] or units) + min(units_f, c["max_units"] or units_f)
    else:
        units = min(units, c["max_units"] or units)
    counting = COUNT_FLOPS * (t_val + t_test) * units * len(c["thresholds"])
    return [
        StageCost(
            "concepts",
            1,
            layers * (t_train + t_val + 2 * t_test),
            0.0,
            "concepts.max_proteins; concepts.max_units",
            counting,
        )
    ]
