"""The cost of the ``explain`` stage (``explain.proteins``; docs/explain.md): every protein explained
with every replicate. Torch-free; the formula is in the package docstring.

Per protein of ``t`` tokens (its residues, cropped at ``labels.max_length``, and BOS/EOS) and per
replicate, with ``S = score.ig.steps``: the prediction (``L`` token-layers per token); the neurons'
IG towards the predicted class, as one protein scored by IG (``score_job_cost`` over the ``L``
layers, an upper bound: only the layers holding knowledge neurons run); each SAE's features as a
feature layer (one leaf); the per-residue track, IG to the input embeddings
(``explain.track_steps`` passes of all ``L`` layers, forward and backward); the causal check,
``2 + R`` copies of the protein through the ``L`` layers for the neurons and again for the features
(``R = len(explain.random_seeds)``), with one more pass to see which features fire; and the two
passes the track's completeness is read from (the protein, its baseline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kneurons.plan.passes import StageCost, score_job_cost

#: The repository root: a relative ``explain.proteins`` that is not in the working directory is the
#: workflow's own example (as the rule reads it, ``workflow/rules/functions/explain.smk``).
WORKFLOW_DIR = Path(__file__).resolve().parents[3]


def proteins_path(path: str) -> Path:
    """``explain.proteins`` as the rule finds it: the working directory's, else the workflow's."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return given
    shipped = WORKFLOW_DIR / given
    return shipped if shipped.exists() else given


def explain_tokens(cfg: dict[str, Any]) -> list[int]:
    """Tokens of each protein of ``explain.proteins`` as the model reads it (cropped at
    ``labels.max_length``, BOS/EOS included); the file is read (torch-free)."""
    from kneurons.data.local import read_sequences

    proteins = read_sequences(proteins_path(cfg["explain"]["proteins"]))
    limit = cfg["labels"]["max_length"]
    return [min(len(s), limit) + 2 for s in proteins["sequence"]]


def explain_cost(cfg: dict[str, Any], layers: int) -> StageCost | None:
    """The ``explain`` stage's cost (one job), None when ``explain.proteins`` is null."""
    if cfg["explain"]["proteins"] is None:
        return None
    steps = cfg["score"]["ig"]["steps"]
    copies = 2 + len(cfg["explain"]["random_seeds"])
    sae_layers = [int(e["layer"]) for e in cfg["units"]["features"]]
    per_token_fwd = per_token_bwd = 0.0
    for layer in range(layers):
        fwd, bwd = score_job_cost("ig", steps, layers, layer, 1.0)
        per_token_fwd, per_token_bwd = per_token_fwd + fwd, per_token_bwd + bwd
    for layer in sae_layers:
        fwd, bwd = score_job_cost("ig", steps, layers, layer, 1.0, passes=1)
        per_token_fwd, per_token_bwd = per_token_fwd + fwd, per_token_bwd + bwd
    checks = copies * (1 + (1 if sae_layers else 0)) + (1 if sae_layers else 0)
    track = cfg["explain"]["track_steps"]
    per_token_fwd += layers * (1 + track + checks + 2)  # prediction, track, causal checks, completeness
    per_token_bwd += layers * track  # the track's backward passes
    tokens = float(sum(explain_tokens(cfg)))
    reps = cfg["train"]["replicates"]
    return StageCost(
        "explain",
        1,
        reps * tokens * per_token_fwd,
        reps * tokens * per_token_bwd,
        "explain.proteins; score.ig.steps; explain.track_steps" + ("; train.replicates" if reps > 1 else ""),
    )
