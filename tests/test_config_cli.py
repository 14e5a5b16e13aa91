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
