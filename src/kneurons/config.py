"""Configuration: JSON-schema validation with defaults, plus the checks a schema cannot express.

``validate_config`` is the one validation function: the Snakefile, the scripts and the tests
all call it, so a bad configuration is rejected at parse time with a message naming the key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from kneurons.errors import ConfigError, ModelError
from kneurons.model.architectures import ESM2_ARCHITECTURES
from kneurons.model.backends import BACKENDS, resolve_backend
from kneurons.model.backends.snapshot import (
    HF_ORG,
    fair_esm_name,
    is_snapshot_dir,
    snapshot_dir_problem,
    snapshot_shape,
)
from kneurons.schema import defaults_filling, load_schema, with_defaults
from kneurons.vocabulary import FEATURE_FILLS, FILLS


def _key(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate_config(
    config: dict[str, Any], schema: dict | None = None, given: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return a validated copy of ``config`` with every default filled in.

    Raises ConfigError naming the offending key for schema violations (wrong types, unknown
    keys, out-of-range values) and for impossible combinations. ``given``: what the user wrote,
    when ``config`` already has defaults filled in (``model.custom`` sizes the user did not give
    yield to a pretrained checkpoint's architecture); by default ``config`` itself.
    """
    cfg = copy.deepcopy(config) if config is not None else {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"configuration must be a mapping, got {type(cfg).__name__}")
    _normalise_fills(cfg)
    schema = schema or load_schema()
    validator = defaults_filling(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {_key(e)}: {e.message}" for e in errors[:10]]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    # An external set whose file is null is removed: Snakemake merges every --configfile over the
    # embedded default key by key, so removing a set the default defines takes a value, not a
    # missing key (and an empty mapping merges into the default's sets, removing none).
    external = cfg["evaluate"]["external"]
    cfg["evaluate"]["external"] = {name: path for name, path in external.items() if path is not None}
    fills = cfg["ablate"]["fills"]
    cfg["ablate"]["fills"] = [fills] if isinstance(fills, str) else list(fills)
    # The sizes the user gave, before defaults: a checkpoint's architecture replaces the others.
    given_custom = set((((config if given is None else given) or {}).get("model") or {}).get("custom") or {})
    _check_semantics(cfg, _checkpoint_problems(cfg, given_custom))
    return cfg


def _normalise_fills(cfg: dict[str, Any]) -> None:
    """Read the old key ``ablate.fill`` (one value) as ``ablate.fills: [value]``, in place; refuse a
    configuration that gives both (``prefer_user_fill`` settles the merge of a user's file with the
    embedded default before this), and a fill list with an unknown or repeated fill (the schema's
    message for them would not name the fill)."""
    ablate = cfg.get("ablate")
    if not isinstance(ablate, dict):
        return
    if "fill" in ablate:
        if "fills" in ablate:
            raise ConfigError(
                "invalid configuration:\n  ablate.fill and ablate.fills are both given: give ablate.fills "
                f"(a list; ablate.fill is its old one-value form), got fill {ablate['fill']!r} and "
                f"fills {ablate['fills']!r}"
            )
        fill = ablate.pop("fill")
        ablate["fills"] = fill if isinstance(fill, list) else [fill]
    fills = ablate.get("fills")
    if isinstance(fills, list):
        unknown = [f for f in fills if f not in FILLS]
        repeated = sorted({str(f) for f in fills if fills.count(f) > 1})
        if unknown or repeated:
            known = ", ".join(FILLS)
            why = f"unknown fill(s) {unknown} (one of {known})" if unknown else f"{repeated} repeated"
            raise ConfigError(f"invalid configuration:\n  ablate.fills: {why}, got {fills}")


def prefer_user_fill(config: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a user's files merged over the embedded default, as Snakemake merges them) with the
    default's ``ablate.fills`` dropped where the user's ``overrides`` (their config files and
    ``--config`` values) set the old key ``ablate.fill`` and not ``ablate.fills``: the user's one
    fill wins, as it did before fills were a list. A copy; ``config`` itself is not changed."""
    given = (overrides or {}).get("ablate")
    ablate = config.get("ablate")
    if not (isinstance(given, Mapping) and isinstance(ablate, dict)):
        return config
    if "fill" in given and "fills" not in given and "fills" in ablate:
        return {**config, "ablate": {k: v for k, v in ablate.items() if k != "fills"}}
    return config


def sections_with_defaults(given: dict[str, dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """The named sections with their defaults filled in, validated together by ``validate_config``.

    For a library function that takes only some sections (``{"model": ..., "train": ...}``):
    the sections are checked together, so a cross-section problem (``train.freeze_layers``
    beyond the model's depth) is caught; the other sections take their defaults for the check.
    """
    filled = {section: with_defaults(section, cfg) for section, cfg in given.items()}
    validated = validate_config(filled, given=given)
    if "model" in filled:  # the architecture a pretrained checkpoint sets (``_checkpoint_problems``)
        filled["model"]["custom"] = validated["model"]["custom"]
    return filled


def _split_problems(cfg: dict[str, Any]) -> list[str]:
    fr = cfg["split"]["fractions"]
    total = fr["train"] + fr["val"] + fr["test"]
    if abs(total - 1.0) > 1e-6:
        return [f"split.fractions: train + val + test must be 1, got {total:g}"]
    return []


def _data_problems(cfg: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    data = cfg["data"]
    src = data["source"]
    if src == "tsv" and not data.get("tsv"):
        problems.append("data.tsv: required when data.source is 'tsv'")
    if src == "fasta" and not data.get("fasta"):
        problems.append("data.fasta: required when data.source is 'fasta'")
    if src == "expasy" and not data["expasy"].get("enzyme_dat"):
        problems.append("data.expasy.enzyme_dat: required when data.source is 'expasy'")
    if src == "brenda" and not data["brenda"].get("path"):
        problems.append("data.brenda.path: required when data.source is 'brenda'")
    if src in ("expasy", "brenda") and not data.get("sequences"):
        problems.append(
            f"data.sequences: required when data.source is '{src}' (a TSV or FASTA with the sequences)"
        )
    if src == "uniprot":
        lacking = [f for f in ("accession", "ec", "sequence") if f not in data["uniprot"]["fields"]]
        if lacking:
            problems.append(
                f"data.uniprot.fields: must include {', '.join(lacking)} (the proteins table needs them)"
            )
    syn = data["synthetic"]
    if syn["length_min"] > syn["length_max"]:
        problems.append("data.synthetic: length_min must not exceed length_max")
    if syn["motif_length"] * syn["motifs_per_sequence"] > syn["length_min"] // 2:
        problems.append("data.synthetic: motifs take more than half of the shortest sequence")
    return problems


def _evaluate_problems(cfg: dict[str, Any]) -> list[str]:
    from kneurons.data.external import external_set_problems

    return external_set_problems(cfg["evaluate"]["external"], cfg["data"]["source"])


def _model_problems(cfg: dict[str, Any]) -> list[str]:
    """Problems of ``model``, and of ``train.freeze_layers`` (which depends on the model's depth)."""
    problems: list[str] = []
    model = cfg["model"]
    name = model["name"]
    if name != "custom" and fair_esm_name(name) not in ESM2_ARCHITECTURES:
        known = ", ".join(["custom", *ESM2_ARCHITECTURES, *(f"{HF_ORG}/{n}" for n in ESM2_ARCHITECTURES)])
        problems.append(f"model.name: unknown model {name!r}; known: {known}")
    problems += _backend_problems(model)
    if name == "custom":
        if model["pretrained"] and not model["checkpoint"]:
            problems.append(
                "model.pretrained: a custom-size model has pretrained weights only from model.checkpoint "
                "(set it to the weights file, or use an official model.name)"
            )
        c = model["custom"]
        if c["embed_dim"] % c["attention_heads"]:
            problems.append("model.custom: embed_dim must be divisible by attention_heads")
    if model["checkpoint"] and not model["pretrained"]:
        problems.append(
            "model.checkpoint: only used with model.pretrained: true (set it, or remove the checkpoint)"
        )
    n_layers = num_layers(cfg)
    if cfg["train"]["freeze_layers"] > n_layers:
        problems.append(f"train.freeze_layers: the model has only {n_layers} layers")
    return problems


def _checkpoint_problems(cfg: dict[str, Any], given_custom: set[str]) -> list[str]:
    """A missing ``model.checkpoint``, and a checkpoint whose architecture is not the configured one.

    With ``name: custom`` the architecture comes from the checkpoint: it is written into
    ``model.custom`` (the sizes the user gave, ``given_custom``, must match it), so that
    ``model_shape``, the layer scatter and a re-validation of this config all see it. The shape
    of a weights file is read cheaply, without torch, by the backend's reader where it has one
    (fair-esm: ``kneurons.model.backends.fair_esm.checkpoint_shape``), that of a Hugging Face
    snapshot directory from its config.json; other formats are checked when the model is loaded.
    """
    model = cfg["model"]
    ckpt = model["checkpoint"]
    if not ckpt:
        return []
    path = Path(ckpt).expanduser()
    if not path.exists():
        return [f"model.checkpoint: {path} does not exist (the weights file or directory to fine-tune from)"]
    if not model["pretrained"]:
        return []
    # A folder is a snapshot (for every backend that reads folders; _backend_problems refuses a
    # folder for the others): without config.json, say what it lacks rather than leave the loader
    # to call it missing (weights are looked for when the model is loaded).
    named = BACKENDS.get(model["backend"])
    if path.is_dir() and not is_snapshot_dir(path) and (named is None or "dir" in named.checkpoints):
        return [f"model.checkpoint: {snapshot_dir_problem(path)}"]
    if is_snapshot_dir(path):
        try:
            shape = snapshot_shape(path)
        except ModelError as exc:  # an unreadable config.json
            return [f"model.checkpoint: {exc}"]
    elif path.is_file():
        # the backend's torch-free reader of a weights file (none: its shape is read on loading)
        try:
            shape = BACKENDS[resolve_backend(model)].read_file_shape(path)
        except ValueError as exc:  # CheckpointShapeError: an unreadable or foreign file
            return [f"model.checkpoint: {exc}"]
    else:
        return []
    if shape is None:
        return []
    name = model["name"]
    official = ESM2_ARCHITECTURES.get(fair_esm_name(name))
    if official is not None and shape != official:
        return [
            f"model.checkpoint: {path} holds an ESM-2 with (layers, embed_dim, heads) = {shape}, "
            f"but model.name {name} has {official}"
        ]
    if name != "custom":
        return []
    keys = ("num_layers", "embed_dim", "attention_heads")
    custom = model["custom"]
    given = {k: custom[k] for k in keys if k in given_custom}
    wrong = {k: v for k, v in given.items() if v != shape[keys.index(k)]}
    if wrong:
        return [
            f"model.custom: {', '.join(f'{k}: {v}' for k, v in wrong.items())} disagree(s) with "
            f"model.checkpoint {path}, which holds (num_layers, embed_dim, attention_heads) = {shape}; "
            f"remove model.custom (the checkpoint sets the architecture) or correct it"
        ]
    custom.update(zip(keys, shape, strict=True))
    return []


def _backend_problems(model: dict[str, Any]) -> list[str]:
    """``model.backend`` against the name and an existing ``model.checkpoint`` (a missing one: the loader)."""
    backend, name = model["backend"], model["name"]
    info = BACKENDS.get(backend)  # None for auto: inferred from the name and checkpoint
    if info is None:
        return []
    problems: list[str] = []
    if not info.hub_names and name.startswith(f"{HF_ORG}/"):
        problems.append(
            f"model.name: {name} is a Hugging Face repository; with model.backend {backend} "
            f"use {fair_esm_name(name)}"
        )
    checkpoint = Path(model["checkpoint"]).expanduser() if model["checkpoint"] else None
    if checkpoint is not None and "file" not in info.checkpoints and checkpoint.is_file():
        problems.append(
            f"model.checkpoint: {checkpoint} is a file, but model.backend {backend} reads {info.reads}"
        )
    if checkpoint is not None and "dir" not in info.checkpoints and checkpoint.is_dir():
        problems.append(
            f"model.checkpoint: {checkpoint} is a directory, but model.backend {backend} reads "
            f"{info.reads} (use model.backend hf or auto for a Hugging Face snapshot)"
        )
    return problems


def _ablate_problems(cfg: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    ablate = cfg["ablate"]
    if "pretrained" in ablate["fills"] and not cfg["model"]["pretrained"]:
        problems.append(
            "ablate.fills: 'pretrained' needs pretrained weights (model.pretrained: true); "
            "a random-init model has no pre-fine-tuning output to fill with"
        )
    if "random" in cfg["score"]["methods"]:
        extra = sorted(set(ablate["random_seeds"]) - set(cfg["score"]["random"]["seeds"]))
        if extra:
            problems.append(
                f"ablate.random_seeds: seed(s) {extra} are not in score.random.seeds "
                f"{cfg['score']['random']['seeds']} (random selections come from the random score tables)"
            )
    fractions = ablate["fractions"]
    if len(fractions) < 2 or len(set(fractions)) != len(fractions):
        problems.append(
            "ablate.fractions: give at least two distinct fractions (an area under the curve needs two)"
        )
    if not ablate["modes"]:
        problems.append("ablate.modes: give at least one of preserve, suppress")
    if not ablate["scopes"]:
        problems.append("ablate.scopes: give at least one of global, module_type, layer_module")
    return problems


def _score_problems(cfg: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    score = cfg["score"]
    if "random" in score["methods"] and not score["random"]["seeds"]:
        problems.append("score.random.seeds: at least one seed is needed for the random method")
    if "delta" in score["methods"] and not cfg["model"]["pretrained"]:
        problems.append(
            "score.methods: delta scores how fine-tuning changed each neuron from the pretrained weights, "
            "but model.pretrained is false (a random-init model has none); remove delta (the planted "
            "benchmark, `snakemake planted`, scores it against its base model regardless)"
        )
    if "delta" in score["methods"] and cfg["units"]["features"]:
        problems.append(
            "score.methods: delta scores neurons by their weight change; SAE features (units.features) have "
            "none (an SAE is not fine-tuned): remove delta or units.features"
        )
    if score["ig"]["method"] == "riemann_trapezoid" and score["ig"]["steps"] < 2:
        problems.append("score.ig.steps: riemann_trapezoid needs at least 2 steps")
    ig = score["ig"]
    if ig["max_steps"] < ig["steps"]:
        problems.append(
            f"score.ig.max_steps: {ig['max_steps']} is below score.ig.steps = {ig['steps']} "
            "(the steps IG starts from and may raise up to max_steps)"
        )
    return problems


def _characterise_problems(cfg: dict[str, Any]) -> list[str]:
    if not cfg["characterise"]["enabled"]:
        return []
    problems: list[str] = []
    if "ig" not in cfg["score"]["methods"]:
        problems.append(
            "characterise.enabled: the characterisation ranks neurons by IG; add `ig` to score.methods"
        )
    if not cfg["score"]["ig"]["class_conditional"]:
        problems.append(
            "characterise.enabled: class-specific neurons need score.ig.class_conditional: true "
            "(or set characterise.enabled: false)"
        )
    return problems


def _units_problems(cfg: dict[str, Any]) -> list[str]:
    features = cfg["units"]["features"]
    if not features:
        return []
    problems: list[str] = []
    n_layers = num_layers(cfg)
    layers = [int(entry["layer"]) for entry in features]
    for i, entry in enumerate(features):
        where = f"units.features[{i}]"
        if entry["layer"] > n_layers:
            problems.append(
                f"{where}.layer: {entry['layer']} is not a stream of this {n_layers}-layer model "
                f"(0..{n_layers}; {n_layers} = after the final layer norm)"
            )
        if entry["sae"] == "train":
            if entry["format"] != "kneurons":
                problems.append(f"{where}.format: a trained SAE (sae: train) is written in format kneurons")
        elif not Path(entry["sae"]).exists():
            problems.append(
                f"{where}.sae: {entry['sae']} does not exist (SAEs are local files, never downloaded)"
            )
    unrescaled = [e["layer"] for e in features if e["format"] == "interprot"]
    if unrescaled and len(unrescaled) < len(features):
        problems.append(
            f"units.features: the interprot SAE(s) at layer(s) {unrescaled} read ESM-2 run without the "
            "token-dropout rescale of its embeddings, the other SAEs the model's own run: one run cannot "
            "serve both; study them in separate runs"
        )
    repeated = sorted({layer for layer in layers if layers.count(layer) > 1})
    if repeated:
        problems.append(f"units.features: one SAE per layer; layer(s) {repeated} have more than one")
    if "random" not in cfg["score"]["methods"]:
        problems.append(
            "units.features: features are judged against random features; add `random` to score.methods"
        )
    if not any(fill in FEATURE_FILLS for fill in cfg["ablate"]["fills"]):
        problems.append(
            f"units.features: SAE features are ablated with {', '.join(FEATURE_FILLS)} (a feature has no "
            f"weights to roll back to); ablate.fills {cfg['ablate']['fills']} has none of them"
        )
    if "global" not in cfg["ablate"]["scopes"] or "preserve" not in cfg["ablate"]["modes"]:
        problems.append(
            "units.features: features are read, as the neurons' claims are, on the global scope's preserve "
            "curves; keep `global` in ablate.scopes and `preserve` in ablate.modes"
        )
    return problems


def _planted_problems(cfg: dict[str, Any]) -> list[str]:
    """The planted benchmark's task must fit its proteins, and it always runs the random baseline."""
    task = cfg["planted"]["task"]
    problems: list[str] = []
    if task["length_min"] > task["length_max"]:
        problems.append("planted.task: length_min must not exceed length_max")
    if task["motif_length"] * task["motifs"] * task["copies"] > task["length_min"] // 2:
        problems.append(
            "planted.task: motif_length x motifs x copies must fit in half of length_min "
            f"({task['motif_length']} x {task['motifs']} x {task['copies']} > {task['length_min']} // 2)"
        )
    seeds = cfg["score"]["random"]["seeds"]
    extra = sorted(set(cfg["ablate"]["random_seeds"]) - set(seeds))
    if extra and "random" not in cfg["score"]["methods"]:  # the run's own check names them otherwise
        problems.append(
            f"ablate.random_seeds: seed(s) {extra} are not in score.random.seeds {seeds} (the planted "
            "benchmark always scores and ablates the random baseline)"
        )
    if not seeds:
        problems.append("score.random.seeds: the planted benchmark's random baseline needs at least one seed")
    return problems


def _explain_problems(cfg: dict[str, Any]) -> list[str]:
    if cfg["explain"]["proteins"] is None or "ig" in cfg["score"]["methods"]:
        return []
    return [
        "explain.proteins: an explanation names the run's knowledge units by their IG ranking; add `ig` "
        "to score.methods (or set explain.proteins: null)"
    ]


#: The checks a schema cannot express, per section; their problems are reported in this order.
_SEMANTIC_CHECKS = (
    _split_problems,
    _data_problems,
    _evaluate_problems,
    _model_problems,
    _ablate_problems,
    _score_problems,
    _characterise_problems,
    _units_problems,
    _planted_problems,
    _explain_problems,
)


def _check_semantics(cfg: dict[str, Any], first: list[str] | None = None) -> None:
    problems = [*(first or []), *(p for check in _SEMANTIC_CHECKS for p in check(cfg))]
    if problems:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    with open(path, encoding="utf-8-sig") as fh:
        try:
            raw = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:  # its text gives the line and column
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return validate_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def model_shape(cfg: dict[str, Any]) -> tuple[int, int, int]:
    """``(layers, embed_dim, heads)`` of the configured model: an official name's, else ``model.custom``'s.

    A validated config's pretrained checkpoint has that shape: ``validate_config`` refuses a
    checkpoint of another shape, and for ``name: custom`` writes the checkpoint's into ``model.custom``.
    """
    model = cfg["model"]
    if fair_esm_name(model["name"]) in ESM2_ARCHITECTURES:
        return ESM2_ARCHITECTURES[fair_esm_name(model["name"])]
    c = model["custom"]
    return int(c["num_layers"]), int(c["embed_dim"]), int(c["attention_heads"])


def num_layers(cfg: dict[str, Any]) -> int:
    """Number of transformer layers of the configured model (sets the scoring scatter width)."""
    return model_shape(cfg)[0]
