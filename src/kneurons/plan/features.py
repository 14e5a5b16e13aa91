"""The cost of the SAE feature stages (``units.features``; docs/features.md), per replicate: training
the workflow's own SAEs, their reconstruction report, and scoring and ablating their features.
Torch-free; the formulas are in the package docstring.

Reading the stream entering layer ``l`` runs layers ``0..l`` (``EsmClassifier.run_through``, which
computes every unit of layer ``l``; ``stream_layers``), all ``L`` layers for the final stream.

An SAE file the workflow does not train is not read (the plan reads the config only, and such a
file may be large): it is assumed to have ``F = 8 d`` features (``DEFAULT_EXPANSION``, the
workflow's own default; InterPLM's and InterProt's files are wider). ``F`` enters only the
number of distinct ablation masks (``round(f F)`` per fraction), which it changes only for tiny
SAEs; a trained SAE's ``F`` (``sae.n_features``, null = 8 d) also sets its optimisation FLOPs.
Only an ESM C folder's small ``config.json`` is read: an SAE on each block's update
(``use_residual_update_instead_of_states``) at layer ``l > 0`` runs its passes from ``l - 1``.

The SAE report reads, per SAE, its input at every stream point (all ``L`` layers), at the plain
point too where its input point differs (InterPLM: residues only; InterProt: the unrescaled run;
layers ``0..l``), and runs the model three times for the loss recovered (clean, reconstruction,
zero). IG counts the steps the run's score tables record (``kneurons.plan.recorded``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kneurons.features.sizes import DEFAULT_EXPANSION, default_sizes, direction_counts
from kneurons.plan.passes import (
    BACKWARD_FACTOR,
    DataSize,
    StageCost,
    ablation_job_forward,
    attempts_cost,
    distinct_masks,
    fill_counts,
    score_job_cost,
)
from kneurons.plan.recorded import recorded_attempts
from kneurons.ranking import NeuronLayout, top_k_count
from kneurons.scatter import TRAIN_SAE, trained_sae_layers
from kneurons.vocabulary import BASES_MODE, FEATURE_MODULE

#: Formats whose input point is not the plain one (every token of the model's own run): the report
#: reads their layer once more there (``kneurons.features.published``).
NOT_PLAIN_FORMATS = ("interplm", "interprot")


def reads_update(entry: dict[str, Any]) -> bool:
    """True for an ESM C SAE folder whose ``config.json`` says it reads each block's update."""
    if entry.get("format") != "esmc" or entry["sae"] == TRAIN_SAE:
        return False
    try:
        cfg = json.loads((Path(entry["sae"]).expanduser() / "config.json").read_text())
    except (OSError, ValueError):
        return False  # the job refuses it, naming the file; the plan counts it as a stream SAE
    return cfg.get("use_residual_update_instead_of_states") is True


def pass_start(entry: dict[str, Any]) -> int:
    """The layer an SAE's scoring and ablation passes start from (``EsmClassifier.unit_start``)."""
    layer = int(entry["layer"])
    return layer - 1 if layer > 0 and reads_update(entry) else layer


def stream_layers(layer: int, layers: int) -> int:
    """Transformer layers run to read the stream entering ``layer`` of an ``layers``-layer model."""
    return min(layer + 1, layers)


def trained_width(cfg: dict[str, Any], dim: int) -> int:
    """Features ``F`` of the workflow's own SAEs: ``sae.n_features``, null = ``8 d``."""
    return int(cfg["sae"]["n_features"] or default_sizes(dim)[0])


def feature_layout(cfg: dict[str, Any], dim: int) -> NeuronLayout:
    """The features of ``units.features`` as the plan sees them: one block ``(layer, "sae")`` per SAE,
    ``sae.n_features`` (null: ``8 d``) for a trained SAE, ``8 d`` assumed for a given file."""
    entries = sorted(cfg["units"]["features"], key=lambda e: int(e["layer"]))
    trained = trained_width(cfg, dim)
    return NeuronLayout(
        tuple((int(e["layer"]), FEATURE_MODULE) for e in entries),
        tuple(trained if e["sae"] == TRAIN_SAE else DEFAULT_EXPANSION * dim for e in entries),
    )


def sae_training_flops(dim: int, n_features: int, tokens: float, epochs: int) -> float:
    """FLOPs of one SAE's optimisation: per epoch and token, encoding (``d x F``) and decoding
    (``F x d``) at 2 FLOPs per multiply-add, ``4 d F`` forward, ``BACKWARD_FACTOR`` times that backward."""
    return epochs * tokens * 4.0 * dim * n_features * (1.0 + BACKWARD_FACTOR)


def sae_training_tokens(cfg: dict[str, Any], data: DataSize) -> tuple[float, float]:
    """``(fitted, held out)`` tokens of one SAE's training: the held-out share of the training split,
    and the rest capped at ``sae.max_tokens`` (``kneurons.features.train.train_sae``)."""
    sae, t_train = cfg["sae"], data.tokens("train")
    return min((1.0 - sae["heldout"]) * t_train, float(sae["max_tokens"])), sae["heldout"] * t_train


def feature_costs(cfg: dict[str, Any], data: DataSize, layers: int, dim: int) -> list[StageCost]:
    """The feature stages of ``cfg`` (validated), all replicates: none without ``units.features``.

    ``train SAEs`` (one job per trained layer), ``SAE report`` (one job), ``SAE quality`` (one job
    for all replicates, no pass), ``score features`` and
    ``ablate features`` (one job per method, every SAE in it; the ablation in the global scope,
    the random baseline's seeds in its method's job), and with the characterisation stage
    ``characterise features`` (the main run's one job, a pass over the held-out proteins, as the
    neurons' characterisation).
    """
    if not cfg["units"]["features"]:
        return []
    reps = cfg["train"]["replicates"]
    rep_cap = "; train.replicates" if reps > 1 else ""
    sae, sc, ab = cfg["sae"], cfg["score"], cfg["ablate"]
    layout = feature_layout(cfg, dim)
    sae_layers = [block[0] for block in layout.blocks]
    out = []
    trained = trained_sae_layers(cfg["units"]["features"])
    if trained:
        fitted, held = sae_training_tokens(cfg, data)
        fwd = sum((fitted + held) * stream_layers(layer, layers) for layer in trained)
        optimise = len(trained) * sae_training_flops(dim, trained_width(cfg, dim), fitted, sae["epochs"])
        cap = "sae.max_tokens; sae.epochs; sae.n_features" + rep_cap
        out.append(StageCost("train SAEs", reps * len(trained), reps * fwd, 0.0, cap, reps * optimise))
    # the report, per SAE: its input at every stream point, at the plain point where its own
    # differs (through its layer), and three runs of the model for the loss recovered
    t_val = min(data.tokens("val"), float(sae["max_tokens"]))
    report = 0.0
    for e in cfg["units"]["features"]:
        plain = stream_layers(int(e["layer"]), layers) if e["format"] in NOT_PLAIN_FORMATS else 0
        report += t_val * (layers + plain + 3 * layers)
    out.append(StageCost("SAE report", reps, reps * report, 0.0, "sae.max_tokens" + rep_cap))
    # the quality rule on every replicate's report: one torch-free job, no model pass
    out.append(StageCost("SAE quality", 1, 0.0, 0.0, ""))
    t_score, steps = data.tokens(sc["split"], sc["max_sequences"]), sc["ig"]["steps"]
    starts = {int(e["layer"]): pass_start(e) for e in cfg["units"]["features"]}
    fwd = bwd = 0.0
    for method in sc["methods"]:
        # random features are drawn among those active on the scoring set: a read of the stream
        as_method = "activation" if method == "random" else method
        for r in range(reps):
            recorded = (
                recorded_attempts(cfg, method, r, features=True) if method in ("ig", "gradxact") else {}
            )
            for layer in sae_layers:
                if layer in recorded:
                    f, b = attempts_cost(as_method, recorded[layer], layers, layer, starts[layer])
                else:
                    f, b = score_job_cost(as_method, steps, layers, layer, t_score, 1, 1, starts[layer])
                fwd, bwd = fwd + f, bwd + b
    cap = (
        ("score.ig.steps; score.ig.max_steps; " if "ig" in sc["methods"] else "")
        + "score.max_sequences"
        + rep_cap
    )
    out.append(StageCost("score features", reps * len(sc["methods"]), fwd, bwd, cap))
    # one job per method: its intact pass once, every seed's masks of the random baseline, under
    # every feature fill
    t_eval = data.tokens("test", ab["max_sequences"])
    fills, resample = fill_counts(cfg, features=True)
    fwd = sum(
        ablation_job_forward(
            layers,
            [
                starts.get(s, s)  # an SAE on a block's update starts its masks at that block
                for s in distinct_masks(
                    layout,
                    "global",
                    ab["fractions"],
                    ab["modes"],
                    len(ab["random_seeds"]) if m == "random" else 1,
                )
            ],
            t_eval,
            fills,
            resample,
        )
        for m in sc["methods"]
    )
    cap = "ablate.max_sequences; ablate.fractions" + rep_cap
    out.append(StageCost("ablate features", reps * len(sc["methods"]), reps * fwd, 0.0, cap))
    if cfg["units"]["bases"]:
        out.append(same_site_cost(cfg, data, layers, dim, layout))
    ch = cfg["characterise"]
    if ch["enabled"]:
        # where the top IG features fire, in the main run: one pass over the held-out proteins
        t_held = data.tokens(ch["split"], ch["max_proteins"])
        out.append(StageCost("characterise features", 1, t_held * layers, 0.0, "characterise.max_proteins"))
    return out


def same_site_cost(
    cfg: dict[str, Any], data: DataSize, layers: int, dim: int, layout: NeuronLayout
) -> StageCost:
    """The same-site bases of claim 6 (``kneurons.features.same_site``), one job per replicate and
    SAE: the scoring set's stream read once (the PCA), every linear basis scored by every method as
    the features are, and every basis (the SAE's features too) ablated in one evaluation per basis:
    its intact pass (and the donors' pass with ``resample``) once, then every method's and random
    seed's preserve masks on the fraction grid and the grid of directions kept, the mask that fills
    every direction shared, under every feature fill. An upper bound where two methods select the
    same directions (the engine runs a mask they share once)."""
    reps, sc, ab = cfg["train"]["replicates"], cfg["score"], cfg["ablate"]
    counts = direction_counts(dim, cfg["units"]["directions"])
    fills, resample = fill_counts(cfg, features=True)
    t_score, steps = data.tokens(sc["split"], sc["max_sequences"]), sc["ig"]["steps"]
    t_eval = data.tokens("test", ab["max_sequences"])
    fwd = bwd = 0.0
    for (layer, _), n_features in zip(layout.blocks, layout.sizes, strict=True):
        fwd += t_score * stream_layers(layer, layers)
        for _basis in cfg["units"]["bases"]:
            for method in sc["methods"]:
                as_method = "activation" if method == "random" else method
                f, b = score_job_cost(as_method, steps, layers, layer, t_score, 1, 1)
                fwd, bwd = fwd + f, bwd + b
        for n in (n_features, *[dim] * len(cfg["units"]["bases"])):
            basis = NeuronLayout(((layer, FEATURE_MODULE),), (n,))
            grid = [*ab["fractions"], 0.0, *(k / n for k in counts if k <= n)]
            masks, shared = 0, False
            for method in sc["methods"]:
                seeds = len(ab["random_seeds"]) if method == "random" else 1
                starts = distinct_masks(basis, "global", grid, [BASES_MODE], seeds)
                # the mask that fills every direction is one for all methods and seeds
                filled_all = any(top_k_count(float(f), n) == 0 for f in grid)
                masks += len(starts) - filled_all
                shared |= filled_all
            fwd += t_eval * (layers * (1 + resample) + fills * (masks + shared) * (layers - layer))
    cap = "units.bases; units.directions; ablate.fractions" + ("; train.replicates" if reps > 1 else "")
    return StageCost("same-site bases", reps * len(layout.blocks), reps * fwd, reps * bwd, cap)


def feature_note(cfg: dict[str, Any]) -> str | None:
    """The plan's printed note on the feature stages (None without ``units.features``)."""
    if not cfg["units"]["features"]:
        return None
    given = [e for e in cfg["units"]["features"] if e["sae"] != TRAIN_SAE]
    return "SAE features: train SAEs' hours add the optimisation (epochs x tokens x 12 d F FLOPs)" + (
        "; SAE files not trained here are assumed to have F = 8 d features" if given else ""
    )
