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
  ``T_s * L(L+1)/2``; IG with ``S`` steps ``T_s * (L(L-1)/2 + P * S * L(L+1)/2)`` forward and
  ``T_s * P * S * L(L+1)/2`` backward, ``P = 5`` passes per layer (q_proj and k_proj share one);
  grad x activation the same with ``S = 1``; random none;
- ablate, per job on the evaluated test proteins ``T_e``: ``T_e * (L + sum over its distinct
  masks m of (L - start_m))``, ``start_m`` the layer of the first masked module. Masks are distinct
  per (scope name, mode, number of neurons ``k``); preserve all = suppress none = the intact model,
  preserve none = suppress all. A ``layer_module`` mask starts at its layer; ``global`` and
  ``module_type`` masks are counted from layer 0 (an upper bound, exact when layer 0 holds both the
  top and the bottom of the ranking). The random baseline evaluates every mask once per seed, in
  one job per chunk of ``ablate.seeds_per_job`` seeds; an external set's job per method carries
  every seed;
- characterise: class suppression ``T_h * L * (1 + C * (1 + random_sets))`` (every set starts at
  layer 0), the neurons' activations ``T_h * L``, ``T_h`` the held-out proteins (``max_proteins``).

Time: ``flops = token_layers * (24 d^2 + 4 d t)`` forward (``t`` the mean tokens per sequence),
backward twice that, divided by the device's effective FLOP/s, plus ``JOB_STARTUP_S`` per job.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kneurons.config import model_shape
from kneurons.ranking import NeuronLayout, scope_members, top_k_count
from kneurons.scatter import random_seed_chunks, score_layer_chunks
from kneurons.vocabulary import MODULE_TYPES

#: Effective FLOP/s of one token-layer pass (fp32 on CPU, bf16 autocast on GPU) by device. CPU:
#: measured here on an idle machine (benchmarks/bench_plan.py; one thread of the 2-core development
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
#: A run this many times over its budget gets the one setting that brings it under.
FAR_OVER_BUDGET = 10.0
#: Single settings that shrink a run, in the order the plan suggests them: the ablation's evaluated
#: test proteins first (every analysis is kept, only its intervals widen), then fewer ablation
#: scopes, the other samples, training epochs, and the data themselves.
SHRINKING_SETTINGS = (
    "ablate.max_sequences",
    "ablate.scopes",
    "characterise.max_proteins",
    "score.max_sequences",
    "train.epochs",
    "data.uniprot.max_entries",
)


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

    def flops(self, dim: int, mean_tokens: float) -> float:
        """Floating-point operations of the stage's passes (``24 d^2 + 4 d t`` per forward token-layer)."""
        per = 24.0 * dim * dim + 4.0 * dim * mean_tokens
        return per * (self.forward + BACKWARD_FACTOR * self.backward)

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


def distinct_mask_starts(
    layers: int, dim: int, scope: str, fractions: Sequence[float], modes: Sequence[str]
) -> list[int]:
    """Start layer of every distinct non-intact mask of one ablation job (see the module docstring)."""
    starts = []
    for blocks in scope_members(neuron_layout(layers, dim), scope).values():
        n = sum(4 * dim if b[1] == "fc1" else dim for b in blocks)
        start = blocks[0][0] if scope == "layer_module" else 0
        filled = set()  # numbers of filled neurons, the same set of them for preserve and suppress ends
        for mode in modes:
            for f in fractions:
                k = top_k_count(float(f), n)
                key = (mode, k) if 0 < k < n else ("all" if (k == 0) == (mode == "preserve") else "none")
                filled.add(key)
        starts += [start] * len(filled - {"none"})
    return starts


def ablation_job_forward(layers: int, starts: Sequence[int], tokens: float) -> float:
    """Forward token-layers of one ablation job: the shared prefix plus each mask's tail."""
    return tokens * (layers + sum(layers - s for s in starts))


def score_job_cost(method: str, steps: int, layers: int, layer: int, tokens: float) -> tuple[float, float]:
    """``(forward, backward)`` token-layers of scoring ``layer`` (in any job): the prefix to ``layer``
    without grad, then per pass (``IG_PASSES_PER_LAYER`` x ``steps``) layers ``layer..L-1``."""
    if method == "random":
        return 0.0, 0.0
    if method == "activation":
        return tokens * (layer + 1), 0.0
    tail = tokens * IG_PASSES_PER_LAYER * (steps if method == "ig" else 1) * (layers - layer)
    return tokens * layer + tail, tail


def scoring_cost(method: str, cfg: dict[str, Any], layers: int, tokens: float) -> tuple[float, float]:
    """``(forward, backward)`` token-layers of scoring one method's ``layers`` layers."""
    per = [score_job_cost(method, cfg["score"]["ig"]["steps"], layers, lay, tokens) for lay in range(layers)]
    return sum(p[0] for p in per), sum(p[1] for p in per)


def external_tokens(cfg: dict[str, Any], name: str) -> float:
    """Tokens of external set ``name``: its file read (torch-free), or the generated set's size."""
    path = cfg["evaluate"]["external"][name]
    if path == "synthetic":
        s, ev = cfg["data"]["synthetic"], cfg["evaluate"]["synthetic"]
        return s["n_classes"] * ev["n_per_class"] * ((s["length_min"] + s["length_max"]) / 2 + 2)
    from kneurons.data.external import read_external

    proteins = read_external(name, path)
    return float((proteins["sequence"].str.len().clip(upper=cfg["labels"]["max_length"]) + 2).sum())


def plan_costs(cfg: dict[str, Any]) -> tuple[list[StageCost], DataSize]:
    """The cost of every stage of ``cfg`` (validated) and the data size it assumed.

    Fine-tuning, scoring, ablation and class characterisation run once per replicate
    (``train.replicates``); each external set adds the global scope's ablation per replicate.
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
    return out, data


def total_hours(cfg: dict[str, Any], flop_rate: float) -> float:
    """Hours of every stage of ``cfg`` at ``flop_rate`` FLOP/s (``StageCost.hours`` summed)."""
    costs, data = plan_costs(cfg)
    dim = model_shape(cfg)[1]
    return sum(c.hours(flop_rate, dim, data.mean_tokens) for c in costs)


def with_setting(cfg: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``cfg`` with the dotted ``key`` set to ``value``."""
    out = copy.deepcopy(cfg)
    *path, last = key.split(".")
    node = out
    for part in path:
        node = node[part]
    node[last] = value
    return out


def _largest_under(fits: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The largest integer in ``[lo, hi]`` for which ``fits`` (true up to some value, false above) holds."""
    if not fits(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def one_setting_under_budget(
    cfg: dict[str, Any], flop_rate: float, budget_hours: float
) -> tuple[str, Any] | None:
    """The first of ``SHRINKING_SETTINGS`` that alone brings ``cfg``'s total under ``budget_hours``
    at ``flop_rate``, with its value (the largest cap that fits; for ``ablate.scopes`` the most
    scopes kept), or None when no single setting does. A sample cap keeps at least one protein
    per class, so that its stratified sample still has every class."""
    data = plan_costs(cfg)[1]

    def fits(c: dict[str, Any]) -> bool:
        return total_hours(c, flop_rate) <= budget_hours

    for key in SHRINKING_SETTINGS:
        section, name = key.split(".", 1)
        if key == "ablate.scopes":
            scopes = list(cfg["ablate"]["scopes"])
            # drop the costliest (layer_module, then module_type) while a scope remains
            for drop in range(1, len(scopes)):
                kept = [s for s in scopes if s not in ("layer_module", "module_type")[:drop]] or scopes[:1]
                if kept != scopes and fits(with_setting(cfg, key, kept)):
                    return key, kept
            continue
        if key == "data.uniprot.max_entries" and cfg["data"]["source"] != "uniprot":
            continue
        if key == "train.epochs":
            now, lo = cfg["train"]["epochs"], 1
        elif key == "data.uniprot.max_entries":
            now, lo = cfg["data"]["uniprot"]["max_entries"] or SWISSPROT_ENZYMES, data.n_classes
        else:
            split = {"ablate": "test"}.get(section) or cfg[section]["split"]
            now, lo = cfg[section][name] or data.n[split], data.n_classes
        best = _largest_under(lambda v, key=key: fits(with_setting(cfg, key, v)), lo, int(now))
        if best is not None and best < now:
            return key, best
    return None
