"""The settings seam: each rule's params are exactly what its job reads, so Snakemake's params
rerun-trigger reruns a job when, and only when, a setting it uses changes.

The rerun table is generated from the schema: every leaf key must have an entry in DEPENDS
(a new key cannot be forgotten), and a changed valid value must change the params of exactly
the rules listed there.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from workflow_rules import REPO, workflow_rules

from kneurons.config import validate_config
from kneurons.schema import load_schema
from kneurons.settings import RULES, job_settings, rule_params

BASE = validate_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
METHODS = ("activation", "ig", "gradxact", "random")
SCORE = {f"score_layers[{m}]" for m in METHODS}
FEATURE_SCORE = {f"score_features[{m}]" for m in METHODS}
#: The planted benchmark scores the run's methods and always delta.
PLANTED_METHODS = (*METHODS, "delta")
PLANTED_SCORE = {f"planted_score[{m}]" for m in PLANTED_METHODS}
#: The planted benchmark's jobs that run the model, and those that read the model section whole.
PLANTED_TRAINING = {"planted_base", "planted_plant", "planted_head_only"}
PLANTED_MODEL_JOBS = {*PLANTED_TRAINING, "planted_score[*]", "planted_ablate", "planted_ground_truth"}
#: The jobs that evaluate the model under masks (ablate.token_budget, masks_per_pass, bf16).
ABLATE_EVALUATION = {
    "ablate",
    "ablate_seed",
    "ablate_external",
    "ablate_features",
    "same_site_bases",
    "planted_ablate",
    "planted_ground_truth",
}
#: The SAE feature jobs that run the model (units.features).
FEATURE_MODEL_JOBS = {
    "train_sae",
    "sae_report",
    "score_features[*]",
    "ablate_features",
    "same_site_bases",
    "characterise_features",
}
#: The feature jobs that read the statistics settings.
FEATURE_STATS_JOBS = {"feature_stats", "compactness"}
MODEL_JOBS = {
    "score_layers[*]",
    "ablate",
    "ablate_seed",
    "ablate_external",
    "characterise_classes",
    "characterise_neurons",
    *FEATURE_MODEL_JOBS,
    *PLANTED_MODEL_JOBS,
    "concepts",
}
FIGURES = {
    "figure_accuracy",
    "figure_density",
    "figure_stability",
    "figure_smallest_fraction",
    "figure_layer_module_gap",
    "figure_training_curve",
    "figure_confusion_matrix",
    "figure_features_accuracy",
    "figure_compactness",
    "figure_feature_logos",
    "figure_planted_precision_recall",
    "concept_figures",
}

#: Keys whose change alters the DAG (which jobs exist, their input or output paths) besides any
#: params: Snakemake reruns through the changed file set, not through params.
DAG_KEYS = {
    "results": "every path",
    "data.source": "the download rule that `proteins` takes its input from",
    "data.tsv": "input of `proteins` (source tsv)",
    "data.fasta": "input of `proteins` (source fasta)",
    "data.sequences": "inputs of download_expasy / download_brenda",
    "data.enzclass": "input of `labels`",
    "data.expasy.enzyme_dat": "input of download_expasy",
    "data.brenda.path": "input of download_brenda",
    "model.name": "the number of score_layers jobs (layers; `auto` chunks by the model)",
    "model.custom.num_layers": "the number of score_layers jobs (layer chunks)",
    "score.layers_per_job": "the score_layers jobs (their layer chunks) and the gather's inputs",
    "score.methods": "the score, gather and ablate jobs",
    "ablate.scopes": "the ablate jobs and the figure set",
    "ablate.modes": "the accuracy figures",
    "ablate.fills": "`mean` and `resample` add the scoring set to the ablate inputs",
    "ablate.random_seeds": "the random baseline's seed-chunk jobs (ablate_seed) and what the gather reads",
    "ablate.seeds_per_job": "how the random baseline's seeds are chunked into ablate_seed jobs",
    "evaluate.external": "one external_set, ablate_external and external_stats job set per external set",
    "train.replicates": "one fine-tuning, scoring, ablation and characterisation per replicate",
    "characterise.enabled": "the characterisation jobs in the default target",
    "units.features": "one train_sae job per trained SAE and replicate, and every feature job's inputs",
    "units.bases": "[] turns the same-site bases jobs, compactness and claim 6 off",
    "concepts.enabled": "the concept jobs in the default target, and the claims' input of claim 7",
    "figures.formats": "the figure outputs",
    "planted.enabled": "the planted benchmark's outputs in the default target",
    "planted.replicates": "one planting (and its scoring, ablation, ground truth) per replicate and variant",
    "planted.concentrated": "null drops the concentrated variant's jobs",
    "explain.proteins": "the explain job (null: none) and its input file",
}

#: Key (or section prefix; the longest prefix wins) -> the rules whose params it changes.
#: `score_layers[*]` stands for the score jobs of every method. The figure rules' `run`
#: (the captions' run description, captions.run_description) names some keys of every stage.
DEPENDS: dict[str, set[str]] = {
    "results": set(),
    "seed": {
        "download_synthetic",
        "external_synthetic",
        "split",
        "finetune",
        "scoring_set",
        "score_layers[*]",
        "ablate",
        "ablate_seed",
        "ablate_external",
        "ablation_stats",
        "external_stats",
        "characterise_classes",
        "characterise_neurons",
        "train_sae",
        "score_features[*]",
        "ablate_features",
        "same_site_bases",
        "characterise_features",
        "concepts",
        *FEATURE_STATS_JOBS,
        *FIGURES,
        "planted_data",
        *PLANTED_MODEL_JOBS,
        "planted_curves",
        "planted_stats",
    },
    "device": {"finetune", "explain", *MODEL_JOBS},
    "data.source": {"proteins", *FIGURES},
    "data.tsv": set(),  # only with source tsv (then also in the captions)
    "data.fasta": set(),
    "data.sequences": set(),
    "data.enzclass": set(),
    "data.expasy": set(),
    "data.brenda": set(),
    "data.uniprot": {"download_uniprot"},
    "data.synthetic": {"download_synthetic", "external_synthetic"},
    "data.synthetic.n_classes": {"download_synthetic", "external_synthetic", *FIGURES},
    "data.synthetic.n_per_class": {"download_synthetic", *FIGURES},
    "data.synthetic.length_min": {"download_synthetic", "external_synthetic", *FIGURES},
    "data.synthetic.length_max": {"download_synthetic", "external_synthetic", *FIGURES},
    "labels": {"labels", "external_set"},
    "labels.level": {"labels", "external_set", *FIGURES},
    "labels.min_class_size": {"labels", *FIGURES},
    "split.method": {"split", "leakage", *FIGURES},
    "split.fractions": {"split", "planted_data", *FIGURES},
    "split.identity": {"leakage"},
    "split.mmseqs": {"split", "leakage", "external_set"},
    "split.mmseqs.min_seq_id": {"split", "leakage"},  # the external identity search does not cluster
    "model": {"finetune", *PLANTED_TRAINING},
    "model.name": {"finetune", *PLANTED_TRAINING, *FIGURES},
    # the scoring, ablation and characterisation jobs read the backend from the checkpoint
    "model.backend": {"finetune", *PLANTED_TRAINING},
    "model.download": {
        "finetune",
        "ablate",
        "ablate_seed",
        "ablate_external",
        "characterise_classes",
        *PLANTED_TRAINING,
    },
    "model.pretrained": {"finetune", *PLANTED_TRAINING, *FIGURES},
    "model.checkpoint": {
        "finetune",
        "ablate",
        "ablate_seed",
        "ablate_external",
        "characterise_classes",
        *PLANTED_TRAINING,
    },
    "model.custom": {"finetune", *PLANTED_TRAINING, *FIGURES},
    "model.attention": {"finetune", *MODEL_JOBS},
    "train": {"finetune", "planted_plant", "planted_head_only"},
    # one more replicate adds jobs (DAG_KEYS), and changes no existing fine-tuning run's params
    "train.replicates": {"ablation_stats", "external_stats", "claims", *FEATURE_STATS_JOBS, *FIGURES},
    "train.bf16": {
        "finetune",
        "characterise_classes",
        "characterise_neurons",
        "characterise_features",
        "planted_plant",
        "planted_head_only",
        "concepts",
    },
    # the same-site bases job scores its linear bases by every method with every method's settings
    "score.methods": {
        "ablation_stats",
        "atlas",
        "same_site_bases",
        *FEATURE_STATS_JOBS,
        *FIGURES,
        "planted_ground_truth",
        "planted_stats",
    },
    "score.split": {
        "scoring_set",
        "score_layers[*]",
        "score_features[*]",
        "same_site_bases",
        *FIGURES,
        "planted_data",
        "planted_score[*]",
    },
    "score.max_sequences": {
        "scoring_set",
        "score_layers[*]",
        "score_features[*]",
        "same_site_bases",
        *FIGURES,
        "planted_data",
        "planted_score[*]",
    },
    # random features are drawn among those active on the scoring set, so random runs the model there
    "score.token_budget": {
        "score_layers[activation]",
        "score_layers[ig]",
        "score_layers[gradxact]",
        "score_features[*]",
        "same_site_bases",
        "train_sae",
        "sae_report",
        "planted_score[activation]",
        "planted_score[ig]",
        "planted_score[gradxact]",
        "planted_score[delta]",
    },
    "score.bf16": {"score_layers[*]", "score_features[*]", "same_site_bases", "planted_score[*]"},
    # how the layers are split into jobs, not how any layer is scored (DAG_KEYS)
    "score.layers_per_job": set(),
    "score.activation": {
        "score_layers[activation]",
        "score_features[activation]",
        "same_site_bases",
        "planted_score[activation]",
    },
    "score.ig": {
        "score_layers[ig]",
        "score_layers[gradxact]",
        "score_features[ig]",
        "score_features[gradxact]",
        "same_site_bases",
        "planted_score[ig]",
        "planted_score[gradxact]",
    },
    "score.ig.steps": {
        "score_layers[ig]",
        "score_features[ig]",
        "same_site_bases",
        "planted_score[ig]",
        *FIGURES,
    },
    "score.ig.method": {"score_layers[ig]", "score_features[ig]", "same_site_bases", "planted_score[ig]"},
    # IG raises its steps until complete (gradxact has one point: no tolerance, no cap)
    "score.ig.tolerance": {"score_layers[ig]", "score_features[ig]", "same_site_bases", "planted_score[ig]"},
    "score.ig.max_steps": {"score_layers[ig]", "score_features[ig]", "same_site_bases", "planted_score[ig]"},
    "score.ig.target": {
        "score_layers[ig]",
        "score_layers[gradxact]",
        "score_features[ig]",
        "score_features[gradxact]",
        "same_site_bases",
        "planted_score[ig]",
        "planted_score[gradxact]",
        *FIGURES,
    },
    "score.random": {
        "score_layers[random]",
        "score_features[random]",
        "same_site_bases",
        "planted_score[random]",
    },
    # delta is not a method of the default run (random init): only the planted benchmark scores it
    "score.delta": {"planted_score[delta]"},
    "ablate": {
        "ablate",
        "ablate_seed",
        "ablate_external",
        "ablate_features",
        "same_site_bases",
        "planted_ablate",
    },
    # how the model is evaluated: the ground truth's evaluations too
    "ablate.token_budget": ABLATE_EVALUATION,
    "ablate.masks_per_pass": ABLATE_EVALUATION,
    "ablate.bf16": ABLATE_EVALUATION,
    # the bases are ablated in preserve mode only (claim 6 reads the kept sets)
    "ablate.modes": {"ablate", "ablate_seed", "ablate_external", "ablate_features", "planted_ablate"},
    # only the neuron jobs of a scope take the fills of their scope
    "ablate.fill_scopes": {"ablate", "ablate_seed"},
    # and the modes of their scope
    "ablate.mode_scopes": {"ablate", "ablate_seed"},
    # the planted benchmark's ablation job runs every scope (the run's are one job each: DAG_KEYS)
    "ablate.scopes": {"planted_ablate"},
    # features take the fills that apply to them (not `pretrained`); the planted benchmark always
    # takes the pretrained fill
    "ablate.fills": {
        "ablate",
        "ablate_seed",
        "ablate_external",
        "ablate_features",
        "same_site_bases",
        "characterise_classes",
        *FIGURES,
    },
    "ablate.normalise": {
        "ablate",
        "ablate_seed",
        "ablate_external",
        "ablation_stats",
        "characterise_classes",
        "characterise_neurons",
        "ablate_features",
        "same_site_bases",
        "characterise_features",
        "atlas",
        "concepts",
        *FIGURES,
        "planted_ablate",
        "planted_ground_truth",
        "planted_stats",
    },
    "ablate.fractions": {
        "ablate",
        "ablate_seed",
        "ablate_external",
        "ablate_features",
        "same_site_bases",
        "planted_ablate",
        *FIGURES,
    },
    # ablate_seed: a job's seeds are its wildcard, so the jobs of the chunks kept are unchanged
    "ablate.random_seeds": {
        "ablate_external",
        "ablate_features",
        "same_site_bases",
        "planted_ablate",
        "planted_ground_truth",
        *FIGURES,
    },
    # only the chunking of the same seeds into jobs (the DAG), not what a job computes
    "ablate.seeds_per_job": set(),
    "stats": {"ablation_stats"},
    "stats.keep_accuracy": {"ablation_stats", *FEATURE_STATS_JOBS, "planted_curves", "planted_stats"},
    "stats.bootstrap": {
        "ablation_stats",
        "external_stats",
        "concepts",
        *FEATURE_STATS_JOBS,
        "planted_curves",
        "planted_stats",
    },
    "stats.confidence": {
        "ablation_stats",
        "external_stats",
        "claims",
        "concepts",
        *FEATURE_STATS_JOBS,
        "planted_curves",
        "planted_stats",
    },
    "stats.top_fraction": {"ablation_stats", "atlas", "claims", "concepts", "planted_stats"},
    "stats.claims": {"claims", "planted_stats"},
    # claims: the baseline rule's note names the proteins by their cap
    "ablate.max_sequences": {
        "ablate",
        "ablate_seed",
        "ablate_features",
        "same_site_bases",
        "ablate_external",
        "claims",
        "planted_ablate",
    },
    "evaluate.external": {"claims"},
    "evaluate.max_identity": {"external_set"},
    "evaluate.synthetic": {"external_synthetic"},
    "characterise": {"characterise_neurons", "characterise_features"},
    "characterise.enabled": set(),
    "characterise.split": {"characterise_classes", "characterise_neurons", "characterise_features", "claims"},
    "characterise.max_proteins": {
        "characterise_classes",
        "characterise_neurons",
        "characterise_features",
        "claims",
    },
    "characterise.token_budget": {"characterise_classes", "characterise_neurons", "characterise_features"},
    "characterise.class_selection": {"characterise_classes"},
    "characterise.class_fraction": {"characterise_classes"},
    "characterise.class_threshold": {"characterise_classes"},
    "characterise.random_sets": {"characterise_classes"},
    "characterise.alpha": {"characterise_neurons", "characterise_features", "characterise_figures", "atlas"},
    "characterise.logos": {"characterise_figures", "figure_feature_logos"},
    "figures.formats": set(FIGURES),
    "figures.dpi": {*FIGURES, "characterise_figures"},
    "atlas": {"atlas"},
    "units.features": {
        "sae_report",
        "score_features[*]",
        "ablate_features",
        "same_site_bases",
        "characterise_features",
        "concepts",
    },
    "units.bases": {"same_site_bases"},
    "units.directions": {"same_site_bases"},
    "concepts": {"concepts"},
    "concepts.enabled": set(),
    "sae": {"train_sae"},
    "sae.max_tokens": {"train_sae", "sae_report"},
    # the quality rule is every SAE's (not the training's): the report's wrong-layer check, the rule
    "sae.quality": {"sae_report", "sae_quality"},
    "planted": {"planted_plant", "planted_head_only"},  # lr, epochs, patience
    "planted.enabled": set(),  # which target builds the benchmark (DAG_KEYS)
    "planted.replicates": {"planted_curves", "planted_stats"},
    "planted.fraction": {"planted_plant"},
    "planted.concentrated": {"planted_plant", "planted_stats"},
    "planted.auprc_margin": {"planted_stats"},
    "planted.task": {"planted_data"},
    # what the run decided (label policy, fill, ranking, IG settings) is read from its files, inputs
    "explain": {"explain"},
    "explain.proteins": set(),  # the rule's input file (DAG_KEYS), not a setting
}

#: Changes for keys whose simple change would be invalid (they change a companion key too; the
#: expected rules are the union over every changed key).
CHANGES: dict[str, dict[str, object]] = {
    "ablate.seeds_per_job": {"ablate.seeds_per_job": 2},
    "evaluate.external": {"evaluate.external": {"new": "written by the test"}},
    "evaluate.max_identity": {"evaluate.max_identity": 0.9},
    # the default's generated external set reuses the synthetic motifs, so it goes with them
    "data.source": {"data.source": "uniprot", "evaluate.external": {}},
    "split.fractions.train": {"split.fractions.train": 0.6, "split.fractions.val": 0.2},
    "split.fractions.val": {"split.fractions.val": 0.2, "split.fractions.test": 0.1},
    "split.fractions.test": {"split.fractions.test": 0.1, "split.fractions.train": 0.8},
    "model.name": {"model.name": "esm2_t6_8M_UR50D"},
    "model.pretrained": {"model.pretrained": True, "model.name": "esm2_t6_8M_UR50D"},
    "model.checkpoint": {
        "model.checkpoint": "w.pt",
        "model.pretrained": True,
        "model.name": "esm2_t6_8M_UR50D",
    },
    "model.custom.embed_dim": {"model.custom.embed_dim": 128},  # divisible by the heads
    "model.custom.attention_heads": {"model.custom.attention_heads": 8},
    "score.ig.class_conditional": {"score.ig.class_conditional": False, "characterise.enabled": False},
    "score.random.seeds": {"score.random.seeds": [0, 1, 2, 3, 4, 5]},
    # the motifs must fit in half of the shortest protein (30 residues in the default: at most 2 of 6)
    "data.synthetic.motifs_per_sequence": {"data.synthetic.motifs_per_sequence": 1},
    "score.layers_per_job": {"score.layers_per_job": 2},  # from `auto`
    "characterise.site_columns": {"characterise.site_columns": ["active_site"]},
    "units.features": {"units.features": [{"layer": 1, "sae": "train"}]},
    "units.directions": {"units.directions": [1, 4]},
    # the planted task's motifs must fit in half of its shortest protein
    "planted.task.copies": {
        "planted.task.copies": 2,
        "planted.task.length_min": 48,
        "planted.task.length_max": 60,
    },
    "planted.task.motifs": {"planted.task.motifs": 3, "planted.task.length_min": 36},
    # SAE features are judged against random features, so random stays
    "score.methods": {"score.methods": ["activation", "ig", "random"]},
}


def leaves(schema: dict, prefix: str = "") -> dict[str, dict]:
    """Dotted leaf key -> its schema, for every key of the configuration schema."""
    out = {}
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        if sub.get("type") == "object" and "properties" in sub:
            out.update(leaves(sub, key + "."))
        else:
            out[key] = sub
    return out


LEAVES = leaves(load_schema())


def _get(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def _set(cfg, key, value):
    *path, last = key.split(".")
    for part in path:
        cfg = cfg[part]
    cfg[last] = value


def changed_value(key: str, sub: dict, value):
    """Another value that the schema allows (enums: the next one; numbers: a step inside the range)."""
    types = sub.get("type")
    types = types if isinstance(types, list) else [types]
    if "enum" in sub:
        return sub["enum"][(sub["enum"].index(value) + 1) % len(sub["enum"])]
    if value is None:
        return {"integer": 5, "number": 5.0, "string": "other.tsv", "array": ["active_site"]}[types[0]]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        step = 1 if isinstance(value, int) else 0.01
        up = value + step
        return up if up <= sub.get("maximum", float("inf")) else value - step
    if isinstance(value, str):
        return value + "2"
    if isinstance(value, list):
        return value[:-1]
    raise AssertionError(f"{key}: no rule to change {value!r}")


def all_job_settings(cfg: dict) -> dict[str, dict]:
    """Job name (score_layers[method] per method) -> its settings."""
    out = {}
    for rule in RULES:
        if rule in ("score_layers", "score_features"):
            out.update({f"{rule}[{m}]": job_settings(rule, cfg, method=m) for m in METHODS})
        elif rule == "planted_score":
            out.update({f"{rule}[{m}]": job_settings(rule, cfg, method=m) for m in PLANTED_METHODS})
        elif rule == "ablate_seed":  # the global job of the first seed (the one every change keeps)
            out[rule] = job_settings(rule, cfg, seeds=str(BASE["ablate"]["random_seeds"][0]), scope="global")
        elif rule == "ablate":  # the global job: its fills follow its scope
            out[rule] = job_settings(rule, cfg, scope="global")
        else:
            out[rule] = job_settings(rule, cfg)
    return out


def expected_rules(key: str) -> set[str]:
    prefixes = [p for p in DEPENDS if key == p or key.startswith(p + ".")]
    assert prefixes, f"{key}: a schema key without an entry in DEPENDS (which rules does it change?)"
    rules = DEPENDS[max(prefixes, key=len)]
    star = {"score_layers[*]": SCORE, "score_features[*]": FEATURE_SCORE, "planted_score[*]": PLANTED_SCORE}
    return {r for x in rules for r in star.get(x, {x})}


BASE_SETTINGS = all_job_settings(BASE)


def t6_config_only_checkpoint(path: Path) -> Path:
    """A fair-esm-layout file with esm2_t6_8M_UR50D's cfg and no tensors: what config validation reads."""
    import argparse

    import torch

    cfg = argparse.Namespace(encoder_layers=6, encoder_embed_dim=320, encoder_attention_heads=20)
    torch.save({"model": {}, "cfg": {"model": cfg}}, path)
    return path


@pytest.mark.parametrize("key", sorted(LEAVES))
def test_a_changed_key_changes_exactly_the_params_of_its_rules(key, tmp_path):
    changes = CHANGES.get(key) or {key: changed_value(key, LEAVES[key], _get(BASE, key))}
    if "model.checkpoint" in changes:  # validation wants an existing file of the named model's shape
        changes = {**changes, "model.checkpoint": str(t6_config_only_checkpoint(tmp_path / "w.pt"))}
    if "evaluate.external" in changes:  # validation reads every external set
        ext = tmp_path / "new.tsv"
        ext.write_text("Entry\tEC number\tSequence\nP1\t1.1.1.1\tMKTAYIAKQR\n")
        changes = {**changes, "evaluate.external": {"new": str(ext)}}
    cfg = copy.deepcopy(BASE)
    for k, v in changes.items():
        _set(cfg, k, v)
    cfg = validate_config(cfg)  # the changed value is a valid configuration
    assert any(_get(cfg, k) != _get(BASE, k) for k in changes)
    changed = {job for job, s in all_job_settings(cfg).items() if s != BASE_SETTINGS[job]}
    expected = set().union(*(expected_rules(k) for k in changes))
    assert changed == expected, f"{key}: params changed in {sorted(changed)}, expected {sorted(expected)}"
    if not expected:
        assert any(k in DAG_KEYS or k.rsplit(".", 1)[0] in DAG_KEYS for k in changes) or key.startswith(
            ("data.",)
        ), f"{key}: changes no params; list it in DAG_KEYS with what it changes"


def test_dag_keys_are_schema_keys():
    assert set(DAG_KEYS) <= set(LEAVES)


def test_no_script_reads_the_config():
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert len(scripts) >= 18
    for path in scripts:
        text = path.read_text()
        assert "snakemake.config" not in text, f"{path.name} reads snakemake.config; pass settings as params"
        assert re.search(r"^job = start\(snakemake", text, re.M), (
            f"{path.name} does not call jobs.start first"
        )


def test_scripts_are_thin_adapters_over_the_jobs():
    """A workflow script starts its job and calls the job seam: it imports nothing of the package
    but ``kneurons.jobs`` (the logic lives there, callable without Snakemake) and no third-party
    library."""
    import ast
    import sys

    for path in sorted((REPO / "workflow" / "scripts").glob("*.py")):
        modules = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules.append(node.module or "")
        jobs = [m for m in modules if m == "kneurons.jobs" or m.startswith("kneurons.jobs.")]
        assert len(jobs) >= 2, (
            f"{path.name}: imports {jobs}; expected kneurons.jobs (start) and one job module"
        )
        others = [m for m in modules if m not in jobs and m.split(".")[0] not in sys.stdlib_module_names]
        assert not others, f"{path.name} imports {others}: move that logic into src/kneurons/jobs/"


def test_every_rule_passes_the_settings_seam_and_says_what_it_does():
    """The params Snakemake sees are the seam's (functions of wildcards where the seam has them)."""
    own = {"figure": {"kind"}, "characterise_figures": {"figures"}, "concept_figures": {"figures"}}
    seen = set()
    for rule in workflow_rules():
        if rule["kind"] == "none":
            continue
        assert rule["message"], f"rule {rule['name']} has no message"
        expected = {k: "<callable>" if callable(v) else v for k, v in rule_params(rule["name"], BASE).items()}
        extra = own.get("figure" if rule["name"].startswith("figure_") else rule["name"], set())
        params = {k: v for k, v in rule["params"].items() if k not in extra}
        assert params == yaml.safe_load(yaml.safe_dump(expected)), rule["name"]
        seen.add(rule["name"])
    assert seen == set(RULES)


def test_settings_module_is_torch_free():
    text = Path(REPO / "src" / "kneurons" / "settings.py").read_text()
    assert "import torch" not in text


def test_random_seed_chunks_follow_seeds_per_job():
    from kneurons.errors import ConfigError
    from kneurons.scatter import random_seed_chunks, seed_chunk_label, seed_chunk_seeds

    cfg = copy.deepcopy(BASE)
    cfg["ablate"]["random_seeds"] = [3, 0, 7, 1, 9]
    assert random_seed_chunks(cfg) == [[3, 0, 7, 1, 9]]  # auto, custom model: one job
    cfg["ablate"]["seeds_per_job"] = 2
    chunks = random_seed_chunks(cfg)
    assert chunks == [[3, 0], [7, 1], [9]]  # config order, the last chunk shorter
    assert [seed_chunk_label(c) for c in chunks] == ["3_0", "7_1", "9"]
    assert [seed_chunk_seeds(seed_chunk_label(c)) for c in chunks] == chunks
    named = {**cfg, "model": {**cfg["model"], "name": "esm2_t6_8M_UR50D"}}
    named["ablate"] = {**cfg["ablate"], "seeds_per_job": "auto"}
    assert random_seed_chunks(named) == [[3], [0], [7], [1], [9]]  # auto, named model: one per job
    # what a chunk's job ablates: its wildcard's seeds, under its scope's fills (ablate.fill_scopes)
    job = job_settings("ablate_seed", cfg, seeds="7_1", scope="global")["ablate"]
    assert job["random_seeds"] == [7, 1] and job["fills"] == ["zero", "resample"]
    assert job_settings("ablate_seed", cfg, seeds="7_1", scope="layer_module")["ablate"]["fills"] == ["zero"]
    assert job_settings("ablate", cfg, scope="module_type")["ablate"]["fills"] == ["zero"]
    every = {**cfg, "ablate": {**cfg["ablate"], "fill_scopes": None}}
    assert job_settings("ablate", every, scope="module_type")["ablate"]["fills"] == ["zero", "resample"]
    assert job_settings("ablate", cfg)["ablate"]["fills"] == ["zero", "resample"]  # no scope: every fill
    # ... and in its scope's modes (ablate.mode_scopes): the other scopes run the first mode only
    all_modes = {**cfg, "ablate": {**cfg["ablate"], "mode_scopes": None}}
    both = ["preserve", "suppress"]
    assert job_settings("ablate", all_modes, scope="layer_module")["ablate"]["modes"] == both
    lean = {**cfg, "ablate": {**cfg["ablate"], "mode_scopes": ["global"]}}
    assert job_settings("ablate", lean, scope="global")["ablate"]["modes"] == ["preserve", "suppress"]
    assert job_settings("ablate", lean, scope="module_type")["ablate"]["modes"] == ["preserve"]
    seed_job = job_settings("ablate_seed", lean, seeds="7_1", scope="layer_module")["ablate"]
    assert seed_job["modes"] == ["preserve"] and seed_job["fills"] == ["zero"]
    assert job_settings("ablate_external", lean)["ablate"]["modes"] == ["preserve", "suppress"]
    assert job_settings("ablate", lean)["ablate"]["modes"] == ["preserve", "suppress"]  # no scope
    for bad in (0, "all"):
        cfg["ablate"]["seeds_per_job"] = bad
        with pytest.raises(ConfigError, match="seeds_per_job"):
            validate_config(cfg)
