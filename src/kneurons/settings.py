"""The settings seam: what each workflow rule passes to its job, built from the validated config.

Every rule declares ``params: **rule_params("<rule>", config)``, and its script reads only
``snakemake.params``, never the global config. The params are then exactly the settings the
job reads, so Snakemake's params rerun-trigger reruns a job when, and only when, one of them
changes. Each slice keeps the config's nesting (``{"score": {...}, "seed": 0, ...}``), so the
job code reads ``settings["score"]["token_budget"]`` as it would read the config.

A value may be a function of the job's wildcards (the scoring settings depend on the method);
``job_settings`` evaluates those for one job. Torch-free: the Snakefile imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from kneurons.captions import run_description
from kneurons.planted.design import planted_methods, planted_variants
from kneurons.scatter import seed_chunk_seeds
from kneurons.scoring.registry import needs_reference
from kneurons.vocabulary import FEATURE_FILLS

Config = Mapping[str, Any]

#: The subsections of ``score`` that each method reads (gradxact shares IG's target settings).
SCORE_METHOD_SECTIONS = {
    "activation": "activation",
    "ig": "ig",
    "gradxact": "ig",
    "delta": "delta",
    "random": "random",
}


def _pick(section: Config, *keys: str) -> dict[str, Any]:
    return {k: section[k] for k in keys}


def score_settings(score: Config, method: str) -> dict[str, Any]:
    """The ``score`` keys one method's job reads: its own subsection, the scoring subset's
    ``split`` and ``max_sequences`` (recorded in the table's provenance), ``bf16`` and, for the
    methods that run the model, ``token_budget``."""
    keys = ["split", "max_sequences", "bf16"]
    if method != "random":  # random scores never run the model
        keys.append("token_budget")
    section = SCORE_METHOD_SECTIONS[method]
    sub = score[section]
    if method == "gradxact":  # one step at alpha = 1: IG's integration rule plays no part
        sub = _pick(sub, "target", "class_conditional")
    return {**_pick(score, *keys), section: sub}


def _download_synthetic(cfg: Config) -> dict[str, Any]:
    return {"synthetic": cfg["data"]["synthetic"], "seed": cfg["seed"]}


def _download_uniprot(cfg: Config) -> dict[str, Any]:
    return {"uniprot": cfg["data"]["uniprot"]}


def _proteins(cfg: Config) -> dict[str, Any]:
    return {"source": cfg["data"]["source"]}


def _labels(cfg: Config) -> dict[str, Any]:
    return {"labels": cfg["labels"]}


def _split(cfg: Config) -> dict[str, Any]:
    # split.identity only concerns the leakage report: leaving it out spares a new split (and
    # everything after it) when only the report's identity search is switched.
    return {"split": _pick(cfg["split"], "method", "fractions", "mmseqs"), "seed": cfg["seed"]}


def _leakage(cfg: Config) -> dict[str, Any]:
    return {"split": _pick(cfg["split"], "method", "mmseqs", "identity")}


def replicate_index(wildcards: Any) -> int:
    """The replicate a job belongs to, from its ``rep`` wildcard: ``""`` (replicate 0, the main run's
    paths) or ``replicates/<r>/``."""
    rep = str(getattr(wildcards, "rep", "") or "")
    return int(rep.strip("/").split("/")[-1]) if rep else 0


def _finetune(cfg: Config) -> dict[str, Any]:
    # Replicate r fine-tunes with seed + r from one backbone initialisation (init_seed, resolved
    # here so that every replicate names the same one); the replicate count itself is not a
    # setting of any one fine-tuning run, so adding replicates reruns none of the existing ones.
    init_seed = cfg["model"]["init_seed"]
    model = {**cfg["model"], "init_seed": cfg["seed"] if init_seed is None else init_seed}
    train = {k: v for k, v in cfg["train"].items() if k != "replicates"}
    seed = cfg["seed"]
    return {
        "model": model,
        "train": train,
        "seed": lambda wildcards: seed + replicate_index(wildcards),
        "device": cfg["device"],
    }


def _scoring_set(cfg: Config) -> dict[str, Any]:
    score = cfg["score"]
    return {"split": score["split"], "max_sequences": score["max_sequences"], "seed": cfg["seed"]}


def _score_layers(cfg: Config) -> dict[str, Any]:
    score = cfg["score"]
    attention = _pick(cfg["model"], "attention")
    # checkpoint and download: the pretrained weights that `delta` compares the model with
    reference = _pick(cfg["model"], "attention", "checkpoint", "download")
    return {
        "score": lambda wildcards: score_settings(score, wildcards.method),
        "model": lambda wildcards: reference if needs_reference(wildcards.method) else attention,
        "seed": cfg["seed"],
        "device": cfg["device"],
    }


def _ablate(cfg: Config) -> dict[str, Any]:
    return {
        # not `scopes`: the job's scope is its wildcard; not `random_seeds`: this rule ablates the
        # scored methods, the random baseline runs in its own jobs per chunk of seeds (ablate_seed)
        "ablate": _pick(
            cfg["ablate"],
            "fills",
            "fractions",
            "modes",
            "normalise",
            "masks_per_pass",
            "bf16",
            "token_budget",
            "max_sequences",
        ),
        # attention: how the model runs; checkpoint and download: the pretrained weights of
        # the `pretrained` fill (the backbone's name comes from the fine-tuned checkpoint)
        "model": _pick(cfg["model"], "attention", "checkpoint", "download"),
        "seed": cfg["seed"],
        "device": cfg["device"],
    }


def _external_synthetic(cfg: Config) -> dict[str, Any]:
    ev = cfg["evaluate"]["synthetic"]
    return {
        "synthetic": {**cfg["data"]["synthetic"], "n_per_class": ev["n_per_class"]},
        "sequence_seed": ev["sequence_seed"],
        "seed": cfg["seed"],
    }


def _external_set(cfg: Config) -> dict[str, Any]:
    # The minimum class size belongs to a training set; an external set is labelled without it. Its
    # identity to training is searched with the split's MMseqs2 criterion (min_seq_id: clustering only).
    labels = {k: v for k, v in cfg["labels"].items() if k != "min_class_size"}
    return {
        "labels": labels,
        "max_identity": cfg["evaluate"]["max_identity"],
        "mmseqs": _pick(cfg["split"]["mmseqs"], "executable", "coverage", "cov_mode"),
    }


def _ablate_external(cfg: Config) -> dict[str, Any]:
    # ablate.max_sequences caps the set's evaluated proteins as it caps the test split's, and the
    # random baseline's seeds run in one job: external sets are small.
    params = _ablate(cfg)
    return {**params, "ablate": {**params["ablate"], "random_seeds": cfg["ablate"]["random_seeds"]}}


def _external_stats(cfg: Config) -> dict[str, Any]:
    return {
        "stats": _pick(cfg["stats"], "bootstrap", "confidence"),
        "replicates": cfg["train"]["replicates"],
        "seed": cfg["seed"],
    }


def _scoped(values: Any, chosen: list[str] | None, scope: str | None) -> list[str]:
    """``values`` for a scope of ``chosen`` (null: every scope) or a job named by no scope (``scope``
    None, e.g. one built outside the workflow), else the first value only."""
    values = list(values)
    return values if chosen is None or scope is None or scope in chosen else values[:1]


def scope_fills(ablate: Config, scope: str | None) -> list[str]:
    """The fills a neuron ablation job of ``scope`` evaluates: every fill of ``ablate.fills`` for a
    scope of ``ablate.fill_scopes`` (null: every scope), else the first fill only; ``scope`` None (a
    job named by no scope, e.g. one built outside the workflow): every fill."""
    return _scoped(ablate["fills"], ablate["fill_scopes"], scope)


def scope_modes(ablate: Config, scope: str | None) -> list[str]:
    """The modes a neuron ablation job of ``scope`` evaluates: every mode of ``ablate.modes`` for a
    scope of ``ablate.mode_scopes`` (null: every scope), else the first mode only; ``scope`` None:
    every mode (as ``scope_fills``)."""
    return _scoped(ablate["modes"], ablate["mode_scopes"], scope)


def _scope_job(ablate: Config, scope: str | None) -> dict[str, Any]:
    """The fills and modes of a neuron ablation job of ``scope`` (``scope_fills``, ``scope_modes``)."""
    return {"fills": scope_fills(ablate, scope), "modes": scope_modes(ablate, scope)}


def _ablate_scope(cfg: Config) -> dict[str, Any]:
    # The fills and modes depend on the job's scope (ablate.fill_scopes, ablate.mode_scopes): a
    # function of its wildcard.
    params = _ablate(cfg)
    ab = params["ablate"]

    def ablate(wildcards: Any) -> dict[str, Any]:
        return {**ab, **_scope_job(cfg["ablate"], getattr(wildcards, "scope", None))}

    return {**params, "ablate": ablate}


def _ablate_seed(cfg: Config) -> dict[str, Any]:
    # The job's seeds are its wildcard, so a seed added to ablate.random_seeds runs in a new job
    # and leaves the jobs of the kept chunks unchanged; its fills and modes follow its scope.
    params = _ablate(cfg)
    ab = params["ablate"]

    def ablate(wildcards: Any) -> dict[str, Any]:
        scoped = _scope_job(cfg["ablate"], getattr(wildcards, "scope", None))
        return {**ab, **scoped, "random_seeds": seed_chunk_seeds(wildcards.seeds)}

    return {**params, "ablate": ablate}


def _ablation_stats(cfg: Config) -> dict[str, Any]:
    return {
        "methods": list(cfg["score"]["methods"]),
        "replicates": cfg["train"]["replicates"],
        "stats": _pick(cfg["stats"], "bootstrap", "keep_accuracy", "top_fraction", "confidence"),
        "ablate": _pick(cfg["ablate"], "normalise"),
        "seed": cfg["seed"],
    }


def _claims(cfg: Config) -> dict[str, Any]:
    return {
        "stats": _pick(cfg["stats"], "confidence", "top_fraction", "claims"),
        "replicates": cfg["train"]["replicates"],
        "external": sorted(cfg["evaluate"]["external"]),
        # the baseline rule's note names the proteins each claim was measured on, by these caps
        "ablate": _pick(cfg["ablate"], "max_sequences"),
        "characterise": _pick(cfg["characterise"], "split", "max_proteins"),
    }


def _characterise_classes(cfg: Config) -> dict[str, Any]:
    c = cfg["characterise"]
    return {
        "characterise": _pick(
            c,
            "split",
            "max_proteins",
            "class_selection",
            "class_fraction",
            "class_threshold",
            "random_sets",
            "token_budget",
        ),
        "ablate": _pick(cfg["ablate"], "fills", "normalise"),
        # checkpoint and download: the pretrained weights of the `pretrained` fill
        "model": _pick(cfg["model"], "attention", "checkpoint", "download"),
        "train": _pick(cfg["train"], "bf16"),
        "seed": cfg["seed"],
        "device": cfg["device"],
    }


def _characterise_neurons(cfg: Config) -> dict[str, Any]:
    return {
        "characterise": _pick(
            cfg["characterise"],
            "split",
            "max_proteins",
            "top_n",
            "token_budget",
            "response",
            "site_columns",
            "site_flank",
            "window",
            "n_windows",
            "windows_per_protein",
            "windows_from",
            "consensus_min_frequency",
            "permutations",
            "alpha",
        ),
        "ablate": _pick(cfg["ablate"], "normalise"),
        "model": _pick(cfg["model"], "attention"),
        "train": _pick(cfg["train"], "bf16"),
        "seed": cfg["seed"],
        "device": cfg["device"],
    }


def _characterise_figures(cfg: Config) -> dict[str, Any]:
    c = cfg["characterise"]
    return {"logos": c["logos"], "dpi": cfg["figures"]["dpi"], "alpha": c["alpha"]}


def _atlas(cfg: Config) -> dict[str, Any]:
    # The ranking settings make the atlas's ranks and top flags those of the ablation and density.
    return {
        "atlas": cfg["atlas"],
        "methods": list(cfg["score"]["methods"]),
        "ablate": _pick(cfg["ablate"], "normalise"),
        "stats": _pick(cfg["stats"], "top_fraction"),
        "characterise": _pick(cfg["characterise"], "alpha"),
    }


def _units(cfg: Config) -> list[dict[str, Any]]:
    # The SAE entries as the jobs read them (trained entries resolve to the rule's input files).
    return [dict(entry) for entry in cfg["units"]["features"]]


def _train_sae(cfg: Config) -> dict[str, Any]:
    return {
        # the quality rule judges every SAE after training: not a training setting
        "sae": {k: v for k, v in cfg["sae"].items() if k != "quality"},
        "token_budget": cfg["score"]["token_budget"],
        "model": _pick(cfg["model"], "attention"),
        "seed": cfg["seed"],
        "device": cfg["device"],
    }


def _sae_report(cfg: Config) -> dict[str, Any]:
    return {
        "units": _units(cfg),
        "token_budget": cfg["score"]["token_budget"],
        "max_tokens": cfg["sae"]["max_tokens"],
        # max_fvu: where an SAE fits another layer (the wrong-layer check)
        "quality": cfg["sae"]["quality"],
        "model": _pick(cfg["model"], "attention"),
        "device": cfg["device"],
    }


def _sae_quality(cfg: Config) -> dict[str, Any]:
    return {"quality": cfg["sae"]["quality"]}


def _score_features(cfg: Config) -> dict[str, Any]:
    score = cfg["score"]

    def settings(wildcards: Any) -> dict[str, Any]:
        # random features are drawn among those active on the scoring set: random runs the model here
        return {**score_settings(score, wildcards.method), "token_budget": score["token_budget"]}

    return {**_score_layers(cfg), "score": settings, "units": _units(cfg)}


def feature_fills(fills: list[str]) -> list[str]:
    """The fills of ``ablate.fills`` that apply to SAE features, in their order (``pretrained`` is
    skipped: a feature has no weights to roll back)."""
    return [f for f in fills if f in FEATURE_FILLS]


def _ablate_features(cfg: Config) -> dict[str, Any]:
    # Features take the fills that apply to them (not `pretrained`), and the random baseline's seeds
    # run in the method's one job: a feature layout is one SAE per layer, far smaller than the neurons'.
    params = _ablate(cfg)
    fills = feature_fills(cfg["ablate"]["fills"])
    return {
        **params,
        "ablate": {**params["ablate"], "fills": fills, "random_seeds": cfg["ablate"]["random_seeds"]},
        # no pretrained fill for features, so no pretrained weights to read: only how the model runs
        "model": _pick(cfg["model"], "attention"),
        "units": _units(cfg),
    }


def _same_site_bases(cfg: Config) -> dict[str, Any]:
    # Every method scores the stream's linear bases in this one job (not the layer chunks: one
    # stream), and the bases are ablated in preserve mode only (claim 6 reads the kept sets), under
    # the feature fills, the random baseline's seeds in the job.
    ab = {k: v for k, v in _ablate(cfg)["ablate"].items() if k != "modes"}
    ab |= {"fills": feature_fills(cfg["ablate"]["fills"]), "random_seeds": cfg["ablate"]["random_seeds"]}
    units, score = cfg["units"], cfg["score"]
    # the run's methods and their sections only (score_settings' keys; token_budget: the PCA's read)
    methods = list(score["methods"])
    sections = {SCORE_METHOD_SECTIONS[m] for m in methods}
    picked = _pick(score, "methods", "split", "max_sequences", "bf16", "token_budget", *sorted(sections))
    return {
        "score": picked,
        "ablate": ab,
        "units": {"features": _units(cfg), "bases": list(units["bases"]), "directions": units["directions"]},
        "model": _pick(cfg["model"], "attention"),
        "seed": cfg["seed"],
        "device": cfg["device"],
    }


def _feature_stats(cfg: Config) -> dict[str, Any]:
    return {
        "methods": list(cfg["score"]["methods"]),
        "replicates": cfg["train"]["replicates"],
        "stats": _pick(cfg["stats"], "bootstrap", "keep_accuracy", "confidence"),
        "seed": cfg["seed"],
    }


def _characterise_features(cfg: Config) -> dict[str, Any]:
    return {**_characterise_neurons(cfg), "units": _units(cfg)}


def _figure_feature_logos(cfg: Config) -> dict[str, Any]:
    return {**_figure(cfg), "logos": cfg["characterise"]["logos"]}


def _concepts(cfg: Config) -> dict[str, Any]:
    # the knowledge units are ranked as the ablation ranks them; the SAE entries say which features
    return {
        "concepts": {k: v for k, v in cfg["concepts"].items() if k != "enabled"},
        "stats": _pick(cfg["stats"], "top_fraction", "bootstrap", "confidence"),
        "ablate": _pick(cfg["ablate"], "normalise"),
        "model": _pick(cfg["model"], "attention"),
        "train": _pick(cfg["train"], "bf16"),
        "units": _units(cfg),
        "seed": cfg["seed"],
        "device": cfg["device"],
    }


def _planted_model(cfg: Config) -> dict[str, Any]:
    """The base model's ``model`` section: ``init_seed`` resolved as fine-tuning resolves it."""
    return _finetune(cfg)["model"]


def _planted_data(cfg: Config) -> dict[str, Any]:
    return {
        "planted": _pick(cfg["planted"], "task"),
        "split": _pick(cfg["split"], "fractions"),
        "score": _pick(cfg["score"], "split", "max_sequences"),
        "seed": cfg["seed"],
    }


def _planted_base(cfg: Config) -> dict[str, Any]:
    return {"model": _planted_model(cfg), "seed": cfg["seed"], "device": cfg["device"]}


def _planted_head_only(cfg: Config) -> dict[str, Any]:
    # the control trains the head alone: where S would be drawn plays no part
    return {
        **_planted_base(cfg),
        "train": _finetune(cfg)["train"],
        "planted": _pick(cfg["planted"], "lr", "epochs", "patience"),
    }


def _planted_plant(cfg: Config) -> dict[str, Any]:
    params = _planted_head_only(cfg)
    return {
        **params,
        "planted": {**params["planted"], **_pick(cfg["planted"], "fraction", "concentrated")},
    }


def _planted_score(cfg: Config) -> dict[str, Any]:
    # delta's reference is the base checkpoint (an input), never the pretrained weights
    return {**_score_layers(cfg), "model": _pick(cfg["model"], "attention")}


def _planted_ablate(cfg: Config) -> dict[str, Any]:
    # Always the pretrained fill, with the base as the reference, whatever ablate.fills says; every
    # scope and the random baseline's seeds in one job per (planting, method).
    params = _ablate(cfg)
    ab = {**params["ablate"], "fills": ["pretrained"]}
    ab.update(_pick(cfg["ablate"], "scopes", "random_seeds"))
    return {**params, "ablate": ab, "model": _pick(cfg["model"], "attention")}


def _planted_ground_truth(cfg: Config) -> dict[str, Any]:
    return {
        "methods": planted_methods(cfg),
        "ablate": _pick(cfg["ablate"], "normalise", "token_budget", "masks_per_pass", "bf16", "random_seeds"),
        "model": _pick(cfg["model"], "attention"),
        "seed": cfg["seed"],
        "device": cfg["device"],
    }


def _planted_curves(cfg: Config) -> dict[str, Any]:
    return {
        "replicates": cfg["planted"]["replicates"],
        "stats": _pick(cfg["stats"], "bootstrap", "keep_accuracy", "confidence"),
        "seed": cfg["seed"],
    }


def _planted_stats(cfg: Config) -> dict[str, Any]:
    return {
        "variants": planted_variants(cfg),
        "methods": planted_methods(cfg),
        "planted": _pick(cfg["planted"], "replicates", "concentrated", "auprc_margin"),
        "stats": _pick(cfg["stats"], "bootstrap", "confidence", "keep_accuracy", "top_fraction", "claims"),
        "ablate": _pick(cfg["ablate"], "normalise"),
        "seed": cfg["seed"],
    }


def _figure(cfg: Config) -> dict[str, Any]:
    return {
        "run": run_description(cfg),
        "formats": list(cfg["figures"]["formats"]),
        "dpi": cfg["figures"]["dpi"],
    }


def _explain(cfg: Config) -> dict[str, Any]:
    # The proteins file is the rule's input, not a setting; what the run decided (label policy,
    # fill, ranking, IG settings) is read from the run's files, which are inputs too.
    return {"explain": {k: v for k, v in cfg["explain"].items() if k != "proteins"}, "device": cfg["device"]}


def _nothing(cfg: Config) -> dict[str, Any]:
    return {}


#: rule name -> its params. The figure rules share `_figure` (their `kind` is the rule's own).
RULES: dict[str, Callable[[Config], dict[str, Any]]] = {
    "download_synthetic": _download_synthetic,
    "download_uniprot": _download_uniprot,
    "download_expasy": _nothing,  # everything comes from its input files
    "download_brenda": _nothing,
    "proteins": _proteins,
    "labels": _labels,
    "split": _split,
    "leakage": _leakage,
    "finetune": _finetune,
    "scoring_set": _scoring_set,
    "score_layers": _score_layers,
    "gather_scores": _nothing,
    "ablate": _ablate_scope,
    "ablate_seed": _ablate_seed,
    "gather_ablation_seeds": _nothing,  # its inputs, in seed order, are all it reads
    "external_synthetic": _external_synthetic,
    "external_set": _external_set,
    "ablate_external": _ablate_external,
    "external_stats": _external_stats,
    "ablation_stats": _ablation_stats,
    "claims": _claims,
    "characterise_classes": _characterise_classes,
    "characterise_neurons": _characterise_neurons,
    "characterise_figures": _characterise_figures,
    "atlas": _atlas,
    "train_sae": _train_sae,
    "sae_report": _sae_report,
    "sae_quality": _sae_quality,
    "score_features": _score_features,
    "ablate_features": _ablate_features,
    "same_site_bases": _same_site_bases,
    "feature_stats": _feature_stats,
    "compactness": _feature_stats,
    "characterise_features": _characterise_features,
    "figure_feature_logos": _figure_feature_logos,
    "planted_data": _planted_data,
    "planted_base": _planted_base,
    "planted_plant": _planted_plant,
    "planted_head_only": _planted_head_only,
    "planted_score": _planted_score,
    "planted_ablate": _planted_ablate,
    "planted_ground_truth": _planted_ground_truth,
    "planted_curves": _planted_curves,
    "planted_stats": _planted_stats,
    "concepts": _concepts,
    "concept_figures": _figure,
    "explain": _explain,
    **{
        f"figure_{kind}": _figure
        for kind in (
            "accuracy",
            "density",
            "stability",
            "smallest_fraction",
            "layer_module_gap",
            "training_curve",
            "confusion_matrix",
            "features_accuracy",
            "compactness",
            "planted_precision_recall",
        )
    },
}


def rule_params(rule: str, config: Config) -> dict[str, Any]:
    """The ``params`` of ``rule`` (values may be functions of the job's wildcards)."""
    try:
        build = RULES[rule]
    except KeyError:
        raise KeyError(f"no settings for rule {rule!r}; known: {', '.join(sorted(RULES))}") from None
    return build(config)


def job_settings(rule: str, config: Config, **wildcards: str) -> dict[str, Any]:
    """The settings one job of ``rule`` receives: ``rule_params`` with wildcard functions evaluated."""
    wc = SimpleNamespace(**wildcards)
    return {k: v(wc) if callable(v) else v for k, v in rule_params(rule, config).items()}
