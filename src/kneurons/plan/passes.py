"""The pass counts of the cost plan (``kneurons.plan``): the data size, the throughput table, a
stage's cost (``StageCost``) and the token-layers of one scoring or ablation job.

Torch-free; the formulas are listed in the package docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kneurons.ranking import NeuronLayout, scope_members, top_k_count
from kneurons.settings import scope_fills
from kneurons.vocabulary import FEATURE_FILLS, MODULE_TYPES

#: machine: 3.5e10-4.3e10 at the demo's 4 x 64 shape, 7.6e10-9.8e10 at 6 x 320). GPUs:
#: 35% of the dense bf16 peak, the utilisation an eager PyTorch transformer of this size reaches.
THROUGHPUT: dict[str, tuple[float, str]] = {
    "cpu": (5.0e10, "this CPU, one thread (measured)"),
    "a100": (0.35 * 312e12, "NVIDIA A100, 35% of the bf16 peak"),
    "h100": (0.35 * 989e12, "NVIDIA H100 SXM, 35% of the bf16 peak"),
}
#: UniProtKB/Swiss-Prot reviewed entries with an EC number (query ``(reviewed:true) AND (ec:*)``),
#: about 270,000 (2024 releases), and their mean length after cropping at 1022 residues (the shared
#: Swiss-Prot sample: median 407). An estimate: the download's ``X-Total-Results`` is the count.
SWISSPROT_ENZYMES = 270_000
SWISSPROT_MEAN_LENGTH = 420
#: Classes per EC level for the estimate when the data are not there yet (level 1: the seven).
CLASSES_PER_LEVEL = {1: 7, 2: 70, 3: 250, 4: 5000}
#: Passes per layer of an IG job: six modules, q_proj and k_proj sharing theirs.
IG_PASSES_PER_LAYER = 5
BACKWARD_FACTOR = 2.0
#: Seconds every job spends before and after its passes: interpreter, torch import, checkpoint
#: load, tables (measured: a one-layer activation or random scoring job took 2.2-2.5 s in all,
#: an ablation job 2.7 s more than its engine; docs/performance.md). Dominates a small model's run.
JOB_STARTUP_S = 2.5


@dataclass
class DataSize:
    """Proteins per split, mean tokens per protein (BOS/EOS included), classes, and where they came from."""

    n: dict[str, int]
    mean_tokens: float
    n_classes: int
    source: str
    exact: bool

    def tokens(self, split: str, cap: int | None = None) -> float:
        """Tokens of ``split``, of at most ``cap`` proteins."""
        n = self.n[split] if cap is None else min(cap, self.n[split])
        return n * self.mean_tokens


@dataclass
class StageCost:
    """The passes of one stage: jobs, forward and backward token-layers, and the setting that caps it."""

    stage: str
    jobs: int
    forward: float
    backward: float
    cap: str
    #: Operations beside the transformer's passes (an SAE's optimisation), in FLOPs.
    other_flops: float = 0.0

    def flops(self, dim: int, mean_tokens: float) -> float:
        """Floating-point operations of the stage: its passes (``24 d^2 + 4 d t`` per forward
        token-layer, backward twice that) and ``other_flops``."""
        per = 24.0 * dim * dim + 4.0 * dim * mean_tokens
        return per * (self.forward + BACKWARD_FACTOR * self.backward) + self.other_flops

    def hours(self, flop_rate: float, dim: int, mean_tokens: float) -> float:
        """Hours at ``flop_rate`` FLOP/s, with every job's start-up (``JOB_STARTUP_S``)."""
        return (self.flops(dim, mean_tokens) / flop_rate + self.jobs * JOB_STARTUP_S) / 3600


def neuron_layout(layers: int, dim: int) -> NeuronLayout:
    """Every module of every layer of an ESM-2 of this shape (fc1 has ``4 * dim`` units)."""
    return NeuronLayout.from_sizes(layers, {t: 4 * dim if t == "fc1" else dim for t in MODULE_TYPES})


def data_size(cfg: dict[str, Any]) -> DataSize:
    """Proteins per split: from ``{results}/data/split.tsv`` when a run made it, else estimated."""
    split_path = Path(cfg["results"]) / "data" / "split.tsv"
    if split_path.exists():
        from kneurons.tables import read_split

        split = read_split(split_path)
        tokens = split["sequence"].str.len().clip(upper=cfg["labels"]["max_length"]).mean() + 2
        n = {s: int((split["split"] == s).sum()) for s in ("train", "val", "test")}
        return DataSize(n, float(tokens), int(split["label"].nunique()), str(split_path), True)
    d = cfg["data"]
    if d["source"] == "synthetic":
        s = d["synthetic"]
        total, mean_len, classes = (
            s["n_classes"] * s["n_per_class"],
            (s["length_min"] + s["length_max"]) / 2,
            s["n_classes"],
        )
        where, exact = "data.synthetic", False
    else:
        cap = d["uniprot"]["max_entries"] if d["source"] == "uniprot" else None
        total = min(cap, SWISSPROT_ENZYMES) if cap else SWISSPROT_ENZYMES
        mean_len, classes = SWISSPROT_MEAN_LENGTH, CLASSES_PER_LEVEL[cfg["labels"]["level"]]
        where, exact = f"{total:,} Swiss-Prot enzymes of ~{mean_len} residues", False
    fr = cfg["split"]["fractions"]
    n = {s: round(total * fr[s]) for s in ("train", "val", "test")}
    return DataSize(n, mean_len + 2, classes, where, exact)


def distinct_masks(
    layout: NeuronLayout, scope: str, fractions: Sequence[float], modes: Sequence[str], seeds: int = 1
) -> list[int]:
    """Start layer of every distinct non-intact mask of one ablation job over the units of
    ``layout`` (neurons or SAE features; see the package docstring).

    Masks are distinct per (scope name, mode, number of units ``k``); preserve all = suppress
    none = the intact model (not counted: the job's shared pass), preserve none = suppress all.
    A scope name's masks start at its first block's layer: exact for one module
    (``layer_module``, one SAE), an upper bound for several (``global``, ``module_type``: their top
    and bottom units may lie in later layers). ``seeds``: random selections evaluated in one job,
    each with its own partial masks; the mask that fills the whole scope is the same for all.
    """
    sizes = dict(zip(layout.blocks, layout.sizes, strict=True))
    starts = []
    for blocks in scope_members(layout, scope).values():
        n = sum(sizes[b] for b in blocks)
        start = min(b[0] for b in blocks)
        filled = set()  # numbers of filled units, the same set of them for preserve and suppress ends
        for mode in modes:
            for f in fractions:
                k = top_k_count(float(f), n)
                key = (mode, k) if 0 < k < n else ("all" if (k == 0) == (mode == "preserve") else "none")
                filled.add(key)
        partial = sum(1 for key in filled if key not in ("all", "none"))
        starts += [start] * (seeds * partial + ("all" in filled))
    return starts


def distinct_mask_starts(
    layers: int, dim: int, scope: str, fractions: Sequence[float], modes: Sequence[str]
) -> list[int]:
    """``distinct_masks`` of a neuron ablation job of an ESM-2 of this shape (``neuron_layout``)."""
    return distinct_masks(neuron_layout(layers, dim), scope, fractions, modes)


def ablation_job_forward(
    layers: int, starts: Sequence[int], tokens: float, fills: int = 1, resample: bool = False
) -> float:
    """Forward token-layers of one ablation job: the shared (intact) pass plus each mask's tail from
    its start layer (a mask starting at ``layers``, an SAE's on the final stream, runs no layer),
    once per fill (``ablate.fills``: the fills share the intact pass), and with ``resample`` one
    more full pass for the donors' activations."""
    return tokens * (layers * (1 + resample) + fills * sum(layers - s for s in starts))


def fill_counts(cfg: dict[str, Any], features: bool = False, scope: str | None = None) -> tuple[int, bool]:
    """``(fills, resample)`` of an ablation job: how many fills of ``ablate.fills`` it evaluates
    (``features``: those that apply to SAE features; ``scope``: a neuron job of that scope, whose
    fills ``ablate.fill_scopes`` sets) and whether one is ``resample``."""
    fills = list(cfg["ablate"]["fills"])
    if features:
        fills = [f for f in fills if f in FEATURE_FILLS]
    elif scope is not None:
        fills = scope_fills(cfg["ablate"], scope)
    return len(fills), "resample" in fills


def score_job_cost(
    method: str,
    steps: int,
    layers: int,
    layer: int,
    tokens: float,
    passes: int = IG_PASSES_PER_LAYER,
    modules: int = len(MODULE_TYPES),
    start: int | None = None,
) -> tuple[float, float]:
    """``(forward, backward)`` token-layers of scoring ``layer`` (in any job): the prefix to ``start``
    (``layer``; ``layer - 1`` for an SAE on that block's update) without grad, then per pass
    (``passes`` x ``steps``) layers ``start..L-1``, and for the attributions the completeness
    check's forward tails: the intact target and one per module (``modules``) with its units zeroed.

    Activation and delta run layers ``0..layer`` (``EsmClassifier.run_through``; all ``layers`` for the
    final stream's SAE at ``layer = layers``). ``passes``: gradient passes per step and layer,
    ``IG_PASSES_PER_LAYER`` for the neuron modules, 1 for an SAE's features (one leaf).
    """
    if method == "random":
        return 0.0, 0.0
    if method in ("activation", "delta"):  # one pass to the layer (delta: its modules' inputs)
        return tokens * min(layer + 1, layers), 0.0
    first = layer if start is None else start
    tail = tokens * passes * (steps if method == "ig" else 1) * (layers - first)
    check = tokens * (1 + modules) * (layers - first)
    return tokens * first + tail + check, tail


def attempts_cost(
    method: str,
    attempts: dict[str, list[tuple[int, int]]],
    layers: int,
    layer: int,
    start: int | None = None,
) -> tuple[float, float]:
    """``(forward, backward)`` of scoring ``layer`` by its recorded attempts (``{module: [(steps,
    tokens) of each try]}``, as a run's completeness records give them): each try rescores the
    modules still above the tolerance on the tokens of its proteins, ``q_proj`` and ``k_proj``
    sharing their passes when both are in it."""
    fwd = bwd = 0.0
    for k in range(max((len(v) for v in attempts.values()), default=0)):
        todo = [m for m, tried in attempts.items() if len(tried) > k]
        steps, tokens = attempts[todo[0]][k]
        passes = len(todo) - (1 if {"q_proj", "k_proj"} <= set(todo) else 0)
        f, b = score_job_cost(method, steps, layers, layer, tokens, passes, len(todo), start)
        fwd, bwd = fwd + f, bwd + b
    return fwd, bwd


def scoring_cost(
    method: str,
    cfg: dict[str, Any],
    layers: int,
    tokens: float,
    recorded: dict[int, dict[str, list[tuple[int, int]]]] | None = None,
) -> tuple[float, float]:
    """``(forward, backward)`` token-layers of scoring one method's ``layers`` layers: the steps a
    run recorded for a layer (``recorded``: ``kneurons.plan.recorded.recorded_attempts``), else
    ``score.ig.steps``."""
    steps = cfg["score"]["ig"]["steps"]
    fwd = bwd = 0.0
    for lay in range(layers):
        if recorded and lay in recorded:
            f, b = attempts_cost(method, recorded[lay], layers, lay)
        else:
            f, b = score_job_cost(method, steps, layers, lay, tokens)
        fwd, bwd = fwd + f, bwd + b
    return fwd, bwd


def external_tokens(cfg: dict[str, Any], name: str) -> float:
    """Tokens of external set ``name`` evaluated by its ablation: its file read (torch-free), or the
    generated set's size, at most ``ablate.max_sequences`` proteins of its mean length (the cap draws
    a label-stratified subset; the label policies, which the plan does not run, may leave fewer)."""
    path = cfg["evaluate"]["external"][name]
    cap = cfg["ablate"]["max_sequences"]
    if path == "synthetic":
        s, ev = cfg["data"]["synthetic"], cfg["evaluate"]["synthetic"]
        n, mean = s["n_classes"] * ev["n_per_class"], (s["length_min"] + s["length_max"]) / 2 + 2
    else:
        from kneurons.data.external import read_external

        proteins = read_external(name, path)
        n = len(proteins)
        mean = float((proteins["sequence"].str.len().clip(upper=cfg["labels"]["max_length"]) + 2).mean())
    return float((n if cap is None else min(cap, n)) * mean)
