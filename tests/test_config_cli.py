"""Nested ``snakemake --config`` values (strings, YAML BaseLoader) are read as the schema needs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kneurons.config import validate_config
from kneurons.config_cli import typed_config_values
from kneurons.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_strings_the_schema_refuses_are_read_as_yaml():
    given = {
        "results": "123",  # a string the schema asks for stays a string
        "ablate": {
            "max_sequences": "36",
            "random_seeds": ["0", "1", "2"],
            "seeds_per_job": "2",
            "masks_per_pass": "null",
            "bf16": "false",
            "fill": "zero",
        },
        "train": {"lr": "0.001", "epochs": "5"},
        "score": {"methods": ["activation", "ig", "random"]},
    }
    typed = typed_config_values(given)
    assert typed["results"] == "123"
    assert typed["ablate"] == {
        "max_sequences": 36,
        "random_seeds": [0, 1, 2],
        "seeds_per_job": 2,
        "masks_per_pass": None,
        "bf16": False,
        "fill": "zero",
    }
    assert typed["train"] == {"lr": 0.001, "epochs": 5}
    assert typed["score"] == given["score"]
    assert given["ablate"]["max_sequences"] == "36"  # the caller's dict is not changed
    assert validate_config(typed)["ablate"]["seeds_per_job"] == 2
    # the same strings without the reading are refused
    with pytest.raises(ConfigError, match="'36' is not of type"):
        validate_config(given)


def test_strings_that_yaml_leaves_strings_are_still_refused():
    typed = typed_config_values({"ablate": {"max_sequences": "many", "random_seeds": ["0", "[x"]}})
    assert typed["ablate"] == {"max_sequences": "many", "random_seeds": [0, "[x"]}
    with pytest.raises(ConfigError, match="max_sequences: 'many' is not of type"):
        validate_config(typed)


def test_nested_command_line_config_reaches_the_jobs(tmp_path):
    nested = "ablate={random_seeds: [0, 2], max_sequences: 36, seeds_per_job: 1}"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        "--cores",
        "1",
        "-n",
        "--quiet",
        "rules",
        "--config",
        nested,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.MULTILINE))
    # one random-baseline job per seed (seeds_per_job: 1) and scope, for each of the 2 replicates
    assert counts["ablate_seed"] == str(2 * 3 * 2), proc.stdout


# -- reading a configuration as the workflow does (kneurons.config_cli.read_workflow_config) --------
def test_merge_and_config_values_are_snakemakes():
    """``merge_config`` and ``parse_config_values`` give what Snakemake's own ``update_config`` and
    ``parse_config`` give, on the cases that differ between merging strategies."""
    import copy

    from snakemake.cli import parse_config
    from snakemake.utils import update_config

    from kneurons.config_cli import merge_config, parse_config_values

    base = {
        "train": {"replicates": 2, "epochs": 40},
        "evaluate": {"external": {"new_synthetic": "synthetic"}},
        "units": {"features": [{"layer": 2, "sae": "train"}]},
        "score": {"methods": ["activation", "ig"]},
        "labels": None,
    }
    overs = [
        {"train": {"epochs": 5}, "score": {"methods": ["ig"]}, "units": {"features": []}},
        {"evaluate": {"external": {}}},  # an empty mapping changes nothing
        {"evaluate": {"external": {"new_synthetic": None, "x": "x.csv"}}},
        {"labels": {"level": 2}},  # a mapping over None
        {"train": 3},  # a value over a mapping
    ]
    for over in overs:
        theirs = copy.deepcopy(base)
        update_config(theirs, over)
        assert merge_config(base, over) == theirs, over
    entries = [
        "results=out",
        "seed=3",
        "ablate={max_sequences: 36, random_seeds: [0, 1]}",
        "device=",
        "lr=1.5",
        "bf16=false",
        "pretrained=True",
    ]
    assert parse_config_values(entries) == parse_config(entries)
    assert merge_config(base, {}) == base and base["train"] == {"replicates": 2, "epochs": 40}


def test_read_workflow_config_merges_files_over_the_default_and_names_them(tmp_path, monkeypatch):
    from kneurons.config_cli import read_workflow_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("train: {replicates: 2, epochs: 40}\nseed: 5\n")
    (tmp_path / "a.yaml").write_text("train: {epochs: 3}\n")
    (tmp_path / "b.yaml").write_text("seed: 7\n")
    cfg, sources = read_workflow_config(["a.yaml", "b.yaml"], ["ablate={max_sequences: 36}"])
    assert (cfg["train"]["replicates"], cfg["train"]["epochs"], cfg["seed"]) == (2, 3, 7)
    assert cfg["ablate"]["max_sequences"] == 36  # a nested --config value, typed
    assert sources == ["config/config.yaml", "a.yaml", "b.yaml", "--config ablate={max_sequences: 36}"]
    alone, sources = read_workflow_config(["a.yaml"], replace_default=True)
    assert (
        alone["train"]["replicates"] == 1 and alone["seed"] == 0 and sources == ["a.yaml"]
    )  # schema defaults
    (tmp_path / "bad.yaml").write_text("train: {epochs: many}\n")
    with pytest.raises(ConfigError, match=r"^config/config.yaml \+ bad.yaml: invalid configuration"):
        read_workflow_config(["bad.yaml"])
    (tmp_path / "config" / "config.yaml").unlink()
    assert read_workflow_config(["a.yaml"])[1] == ["a.yaml"]  # as Snakemake: the files alone
    with pytest.raises(ConfigError, match="embedded default is not there"):
        read_workflow_config([])


def test_the_snakefile_reads_the_embedded_default_the_plan_reads():
    from kneurons.config_cli import EMBEDDED_DEFAULT

    snakefile = (REPO / "Snakefile").read_text()
    assert re.search(r'^configfile: "([^"]+)"$', snakefile, re.M).group(1) == EMBEDDED_DEFAULT
    # with what the user gave: their old one-value ablate.fill wins over the default's ablate.fills
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert "workflow_config(config, workflow.config_settings.overwrite_config)" in common


def test_the_plan_reads_a_users_old_one_value_fill_over_the_defaults_fills(tmp_path, monkeypatch):
    """The embedded default sets ablate.fills; a user's file with the old key ablate.fill (one value)
    plans that fill alone, as Snakemake runs it; a file giving both keys is refused, naming them."""
    from kneurons.config_cli import read_workflow_config

    monkeypatch.chdir(REPO)
    old = tmp_path / "old.yaml"
    old.write_text("ablate:\n  fill: mean\n")
    cfg, _ = read_workflow_config([old])
    assert cfg["ablate"]["fills"] == ["mean"] and "fill" not in cfg["ablate"]
    assert read_workflow_config()[0]["ablate"]["fills"] == ["zero", "resample"]
    both = tmp_path / "both.yaml"
    both.write_text("ablate:\n  fill: mean\n  fills: [zero]\n")
    with pytest.raises(ConfigError, match="ablate.fill and ablate.fills are both given"):
        read_workflow_config([both])


def test_plan_command_plans_what_snakemake_runs(capsys, monkeypatch):
    """``kneurons plan --configfile config/paper.yaml`` from the repository root: the demo's default
    first, then the file; the jobs the merged configuration schedules."""
    from kneurons.cli import main

    monkeypatch.chdir(REPO)
    assert main(["plan", "--configfile", "config/paper.yaml", "--config", "train={replicates: 3}"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "config: config/config.yaml, then config/paper.yaml, then --config train={replicates: 3} "
        "(merged as Snakemake merges them)"
    )
    finetune = next(line for line in out.splitlines() if line.startswith("finetune"))
    assert finetune.split()[1] == "3"
