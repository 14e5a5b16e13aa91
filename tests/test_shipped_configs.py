"""Every configuration shipped in config/ and config/examples/ plans (``snakemake -n``) as the README
runs it: from a working directory holding the embedded default (config/config.yaml, which Snakemake
merges under every ``--configfile``) and the input files the configuration names, generated here in
their real formats (a UniProt TSV export, ExPASy's enzclass.txt, an official ESM C ``.pth``, a
Hugging Face snapshot of the named model's shape).

MMseqs2 (the homology split of uniprot_tsv.yaml and paper.yaml) is checked on PATH before any job;
where it is not installed, a placeholder that fails when run stands in for it: a dry run plans the
split without running it.

Each dry run's jobs per rule are also what ``kneurons plan`` counts for the same arguments
(``kneurons.config_cli.read_workflow_config``: the embedded default, then the file): per kind of stage,
the plan's jobs equal the jobs of its rules (``kneurons.plan.STAGE_RULES``), and every scheduled rule
is either costed or named as uncosted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from kneurons.config import validate_config
from kneurons.config_cli import read_workflow_config
from kneurons.model.architectures import ESM2_ARCHITECTURES
from kneurons.plan import STAGE_RULES, is_costed, plan_costs, rule_jobs

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*REPO.glob("config/*.yaml"), *REPO.glob("config/examples/*.yaml")])

#: A few rows of a UniProt TSV export (Entry, EC number, Sequence), two level-1 classes.
EXPORT = (
    "Entry\tEC number\tSequence\n"
    "P00001\t1.1.1.1\tMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ\n"
    "P00002\t2.7.11.1\tMSTNPKPQRKTKRNTNRRPQDVKFPGGGQIVGG\n"
    "P00003\t1.2.1.3; 1.2.1.5\tMKVLAAGIVGLLLAAPAQAAEEKKDDGHHRRTT\n"
)
ENZCLASS = "1. -. -.-  Oxidoreductases.\n1. 1. -.-   Acting on the CH-OH group of donors.\n"


def _inputs(config: dict, workdir: Path) -> None:
    """Write the files ``config`` names, relative to ``workdir`` as Snakemake resolves them."""
    data, model = config.get("data") or {}, config.get("model") or {}
    for key, text in (("tsv", EXPORT), ("enzclass", ENZCLASS)):
        if data.get(key):
            path = workdir / data[key]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    checkpoint = model.get("checkpoint")
    if not checkpoint:
        return
    path = workdir / checkpoint
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pth":  # EvolutionaryScale's official ESM C file
        from model_files import official_state_dict

        torch.save(official_state_dict(), path)
    elif model.get("backend") == "hf" or str(model.get("name", "")).startswith("facebook/"):
        from kneurons.model.backends.hf.convert import fair_esm_to_hf, write_hf_snapshot
        from kneurons.model.classifier import BackboneSpec, build_backbone

        layers, dim, heads = ESM2_ARCHITECTURES[model["name"].removeprefix("facebook/")]
        state, hf_config = fair_esm_to_hf(
            build_backbone(BackboneSpec("custom", layers, dim, heads)).state_dict(), heads
        )
        write_hf_snapshot(path, state, hf_config)
    else:
        raise AssertionError(f"no generator for model.checkpoint {checkpoint} yet: add one")


def _mmseqs_on_path(tmp_path: Path) -> str:
    """PATH with MMseqs2: the installed one, else a placeholder that fails if a job ever runs it."""
    if shutil.which("mmseqs"):
        return str(Path(shutil.which("mmseqs")).parent)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "mmseqs"
    stand_in.write_text("#!/bin/sh\necho 'placeholder for a dry run: not MMseqs2' >&2\nexit 1\n")
    stand_in.chmod(0o755)
    return str(bin_dir)


def dry_run_jobs(output: str) -> dict[str, int]:
    """Jobs per rule from ``snakemake -n``'s ``Job stats`` table (``total`` left out)."""
    lines = output[output.index("Job stats:") :].splitlines()
    jobs: dict[str, int] = {}
    for line in lines[3:]:  # "Job stats:", "job  count", the dashes
        name, _, count = line.strip().rpartition(" ")
        if not line.strip() or name.strip() == "total":
            break
        jobs[name.strip()] = int(count)
    return jobs


def plan_disagreements(planned: dict[str, int], scheduled: dict[str, int]) -> list[str]:
    """Where the plan's jobs per kind of stage differ from the scheduled jobs of its rules, and the
    scheduled rules the plan does not know (neither costed nor named uncosted)."""
    problems = []
    for kind, rules in STAGE_RULES.items():
        ran = sum(scheduled.get(r, 0) for r in rules)
        if planned.get(kind, 0) != ran:
            problems.append(
                f"stage {kind!r} (rules {', '.join(rules)}): the plan counts {planned.get(kind, 0)} jobs, "
                f"snakemake -n schedules {ran}"
            )
    problems += [
        f"rule {rule!r} ({n} jobs) is neither costed in kneurons.plan.STAGE_RULES nor named in UNCOSTED_RULES"
        for rule, n in scheduled.items()
        if is_costed(rule) is None
    ]
    return problems


def test_plan_disagreements_name_the_stage_and_both_counts():
    scheduled = {"finetune": 2, "score_layers": 8, "ablate": 6, "ablate_seed": 3, "new_rule": 4, "all": 1}
    planned = {"finetune": 2, "score": 4, "ablate": 9}
    assert plan_disagreements(planned, scheduled) == [
        "stage 'score' (rules score_layers): the plan counts 4 jobs, snakemake -n schedules 8",
        "rule 'new_rule' (4 jobs) is neither costed in kneurons.plan.STAGE_RULES nor named in UNCOSTED_RULES",
    ]
    table = "Job stats:\njob      count\n-----  -------\nfinetune      2\nall    1\ntotal    3\n\nReasons:"
    assert dry_run_jobs(table) == {"finetune": 2, "all": 1}


@pytest.mark.parametrize("config_file", SHIPPED, ids=lambda p: str(p.relative_to(REPO / "config")))
def test_shipped_configuration_plans(tmp_path, config_file, monkeypatch):
    """``snakemake -n`` plans it, and ``kneurons plan`` counts the jobs it schedules."""
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", work / "config" / "config.yaml")
    config = yaml.safe_load(config_file.read_text())
    _inputs(config, work)
    env = {**os.environ, "PATH": f"{_mmseqs_on_path(tmp_path)}{os.pathsep}{os.environ['PATH']}"}
    snakefile = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(work)]
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        "--quiet",
        "rules",
        *snakefile,
        "--configfile",
        str(config_file),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "This was a dry-run" in out, out[-4000:]
    monkeypatch.chdir(work)  # relative paths resolve as in the run: from its working directory
    cfg, sources = read_workflow_config([config_file])
    assert sources == ["config/config.yaml", str(config_file)]
    problems = plan_disagreements(rule_jobs(plan_costs(cfg)[0]), dry_run_jobs(out))
    assert not problems, "\n".join(problems)


def test_a_null_file_turns_an_external_set_off():
    """How a configuration merged over the embedded default removes its set (Snakemake merges key
    by key: leaving the set out, or writing ``external: {}``, keeps it)."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert default["evaluate"]["external"] == {"new_synthetic": "synthetic"}
    merged = validate_config(
        {**default, "evaluate": {**default["evaluate"], "external": {"new_synthetic": None}}}
    )
    assert merged["evaluate"]["external"] == {}
