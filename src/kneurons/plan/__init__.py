"""The cost plan of a configuration, before anything runs (``kneurons plan --configfile paper.yaml``,
printed by ``kneurons.cli``).

Per stage it counts the model passes as **token-layers** (one token through one transformer
layer, forward or backward) from the model shape, the data size, the scoring subset and the
ablation grid, and turns them into time with the throughput figures of ``THROUGHPUT`` (one
table). Torch-free: it reads the validated config only (and ``data/split.tsv`` where a run has
already made it).

The counts (``T_x``: tokens of split x, ``L`` layers, BOS/EOS included, no padding):

- finetune: ``epochs * T_train * L`` forward and as many backward, plus ``epochs * T_val * L``
  and ``T_test * L`` forward (an upper bound: early stopping ends sooner);
- score, per method, summed over its ``L`` layers on the scoring subset ``T_s`` (one job per
  chunk of ``score.layers_per_job`` layers, each layer scored on its own): activation
  ``T_s * L(L+1)/2``; IG with ``S`` steps ``T_s * (L(L-1)/2 + (P * S + 7) * L(L+1)/2)`` forward
  and ``T_s * P * S * L(L+1)/2`` backward, ``P = 5`` passes per layer (q_proj and k_proj share
  one), 7 the completeness check's forward tails (the intact target and each of the six modules
  zeroed); grad x activation the same with ``S = 1``; random none. ``S`` is what a run's score
  tables record per layer and module where they exist (IG doubles the steps of a module whose
  completeness gap exceeds ``score.ig.tolerance``: ``kneurons.plan.recorded``), else ``score.ig.steps``;
- ablate, per job on the evaluated test proteins ``T_e``: ``T_e * (L + sum over its distinct
  masks m of (L - start_m))``, ``start_m`` the layer of the first masked module. Masks are distinct
  per (scope name, mode, number of neurons ``k``); preserve all = suppress none = the intact model,
  preserve none = suppress all. A ``layer_module`` mask starts at its layer; ``global`` and
  ``module_type`` masks are counted from layer 0 (an upper bound, exact when layer 0 holds both the
  top and the bottom of the ranking). The random baseline evaluates every mask once per seed, in
  one job per chunk of ``ablate.seeds_per_job`` seeds; an external set's job per method carries
  every seed. Every fill of ``ablate.fills`` runs each mask's tail again (the intact pass is shared),
  and ``resample`` adds one full pass per job for the donors' activations;
- characterise: class suppression ``T_h * L * (1 + C * (1 + random_sets))`` (every set starts at
  layer 0), the neurons' activations ``T_h * L``, ``T_h`` the held-out proteins (``max_proteins``);
- SAE features (``units.features``, ``kneurons.plan.features``; per SAE at stream layer ``l``,
  reading the stream entering ``l`` runs ``r(l) = min(l + 1, L)`` layers, ``F`` its features,
  assumed ``8 d`` for a file the workflow does not train): train SAEs, per trained layer,
  ``(T_fit + T_held) * r(l)`` forward (``T_held`` the ``sae.heldout`` share of ``T_train``,
  ``T_fit`` the rest capped at ``sae.max_tokens``) and the optimisation
  ``epochs * T_fit * 4 d F * (1 + 2)`` FLOPs; SAE report ``T_v * (4 L + p(l))`` per SAE (its input
  at every stream point, three runs for the loss recovered, ``p(l) = r(l)`` where its input point
  is not the plain one, else 0), the SAE quality rule one job without passes
  (``T_v``: validation tokens capped at ``sae.max_tokens``); score features, per method and SAE,
  as a neuron layer with ``P = 1`` (one leaf), random as activation (it reads which features are
  active); ablate features, one job per method: the global scope over all SAEs' features as an
  ablation job whose masks start at the lowest SAE layer (upper bound with several SAEs), the
  random baseline's seeds in its one job (the intact pass and the mask filling every feature
  once, each seed's other masks); with the characterisation stage, characterise features: one
  pass over the held-out proteins ``T_h * L`` (the main run's one job).

Which workflow rules each stage's jobs are (``STAGE_RULES``) and which rules the plan leaves out
(``UNCOSTED_RULES``: no model passes) is one table; tests/test_shipped_configs.py checks the jobs
against ``snakemake -n`` for every shipped configuration.

- the planted-knowledge benchmark (``planted.enabled``; ``kneurons.plan.planted``): its plantings
  and controls, their scoring, ablation and ground truth on the planted task's own proteins.

- concepts (``concepts.enabled``, the main run, one job): ``L * (T_tr + T_va + 2 T_te)`` forward,
  each part capped at ``concepts.max_proteins`` (the units' maxima on the training sample, the
  counts on the validation and test parts, the nulls' pass over the test part), and counting
  ``4 * (T_va + T_te) * U * n_thresholds`` FLOPs, ``U`` the units scored (``concepts.max_units``
  per kind).

- explain (``explain.proteins``, ``kneurons.plan.explain``), one job: per protein of ``t`` tokens
  and per replicate, IG towards the predicted class as one protein scored by IG over all ``L``
  layers (and each SAE's features with ``P = 1``), the per-residue track ``S_t * L`` forward and
  backward (``S_t = explain.track_steps``), and ``L * (1 + 2 + (2 + R) * k + f)`` more forward
  (prediction, the track's two completeness passes, the causal checks of ``k`` kinds of unit with
  ``R`` random draws each, and ``f = 1`` feature-activity pass with SAE features).

Time: ``flops = token_layers * (24 d^2 + 4 d t)`` forward (``t`` the mean tokens per sequence),
backward twice that, plus a stage's other FLOPs (an SAE's optimisation), divided by the device's
effective FLOP/s, plus ``JOB_STARTUP_S`` per job.
"""

from kneurons.config import model_shape
from kneurons.plan.budget import (
    FAR_OVER_BUDGET,
    SHRINKING_SETTINGS,
    one_setting_under_budget,
    total_hours,
    with_setting,
)
from kneurons.plan.features import feature_costs, feature_layout, feature_note
from kneurons.plan.passes import (
    BACKWARD_FACTOR,
    CLASSES_PER_LEVEL,
    IG_PASSES_PER_LAYER,
    JOB_STARTUP_S,
    SWISSPROT_ENZYMES,
    SWISSPROT_MEAN_LENGTH,
    THROUGHPUT,
    DataSize,
    StageCost,
    ablation_job_forward,
    attempts_cost,
    data_size,
    distinct_mask_starts,
    distinct_masks,
    external_tokens,
    neuron_layout,
    score_job_cost,
    scoring_cost,
)
from kneurons.plan.planted import planted_costs, planted_tokens
from kneurons.plan.recorded import ig_note, recorded_attempts
from kneurons.plan.stages import (
    STAGE_RULES,
    UNCOSTED_PREFIXES,
    UNCOSTED_RULES,
    is_costed,
    plan_costs,
    rule_jobs,
    stage_kind,
)

__all__ = [
    "BACKWARD_FACTOR",
    "CLASSES_PER_LEVEL",
    "FAR_OVER_BUDGET",
    "IG_PASSES_PER_LAYER",
    "JOB_STARTUP_S",
    "SHRINKING_SETTINGS",
    "STAGE_RULES",
    "SWISSPROT_ENZYMES",
    "SWISSPROT_MEAN_LENGTH",
    "THROUGHPUT",
    "UNCOSTED_PREFIXES",
    "UNCOSTED_RULES",
    "DataSize",
    "StageCost",
    "ablation_job_forward",
    "attempts_cost",
    "data_size",
    "distinct_mask_starts",
    "distinct_masks",
    "external_tokens",
    "feature_costs",
    "feature_layout",
    "feature_note",
    "ig_note",
    "is_costed",
    "model_shape",
    "neuron_layout",
    "one_setting_under_budget",
    "plan_costs",
    "planted_costs",
    "planted_tokens",
    "recorded_attempts",
    "rule_jobs",
    "score_job_cost",
    "stage_kind",
    "scoring_cost",
    "total_hours",
    "with_setting",
]
