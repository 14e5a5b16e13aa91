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
"""

from __future__ import annotations

from typing import Any

from kneurons.features.sizes import DEFAULT_EXPANSION, default_sizes
from kneurons.plan.passes import (
    BACKWARD_FACTOR,
    DataSize,
    StageCost,
    ablation_job_forward,
    distinct_masks,
    score_job_cost,
)
from kneurons.ranking import NeuronLayout
from kneurons.scatter import TRAIN_SAE, trained_sae_layers
from kneurons.vocabulary import FEATURE_MODULE


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

    ``train SAEs`` (one job per trained layer), ``SAE report`` (one job), ``score features`` and
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
    # the report reads the stream at each SAE's layer and its neighbours (through layer l + 1)
    # once: its errors and dead-feature share come from the same tokens
    t_val = min(data.tokens("val"), float(sae["max_tokens"]))
    report = sum(t_val * stream_layers(min(layer + 1, layers), layers) for layer in sae_layers)
    out.append(StageCost("SAE report", reps, reps * report, 0.0, "sae.max_tokens" + rep_cap))
    t_score, steps = data.tokens(sc["split"], sc["max_sequences"]), sc["ig"]["steps"]
    fwd = bwd = 0.0
    for method in sc["methods"]:
        # random features are drawn among those active on the scoring set: a read of the stream
        as_method = "activation" if method == "random" else method
        for layer in sae_layers:
            f, b = score_job_cost(as_method, steps, layers, layer, t_score, passes=1)
            fwd, bwd = fwd + f, bwd + b
    cap = ("score.ig.steps; " if "ig" in sc["methods"] else "") + "score.max_sequences" + rep_cap
    out.append(StageCost("score features", reps * len(sc["methods"]), reps * fwd, reps * bwd, cap))
    # one job per method: its intact pass once, every seed's masks of the random baseline
    t_eval = data.tokens("test", ab["max_sequences"])
    fwd = sum(
        ablation_job_forward(
            layers,
            distinct_masks(
                layout,
                "global",
                ab["fractions"],
                ab["modes"],
                len(ab["random_seeds"]) if m == "random" else 1,
            ),
            t_eval,
        )
        for m in sc["methods"]
    )
    cap = "ablate.max_sequences; ablate.fractions" + rep_cap
    out.append(StageCost("ablate features", reps * len(sc["methods"]), reps * fwd, 0.0, cap))
    ch = cfg["characterise"]
    if ch["enabled"]:
        # where the top IG features fire, in the main run: one pass over the held-out proteins
        t_held = data.tokens(ch["split"], ch["max_proteins"])
        out.append(StageCost("characterise features", 1, t_held * layers, 0.0, "characterise.max_proteins"))
    return out


def feature_note(cfg: dict[str, Any]) -> str | None:
    """The plan's printed note on the feature stages (None without ``units.features``)."""
    if not cfg["units"]["features"]:
        return None
    given = [e for e in cfg["units"]["features"] if e["sae"] != TRAIN_SAE]
    return "SAE features: train SAEs' hours add the optimisation (epochs x tokens x 12 d F FLOPs)" + (
        "; SAE files not trained here are assumed to have F = 8 d features" if given else ""
    )
