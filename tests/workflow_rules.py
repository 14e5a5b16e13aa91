"""What the workflow's rules declare, read through Snakemake's own parser (for tests).

The workflow is loaded in a subprocess (Snakemake changes the working directory, ``sys.path`` and
the environment while parsing), with the embedded default config and a throw-away working dir.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: A tiny whole-workflow configuration for tests that run Snakemake: 60 synthetic proteins of 3
#: classes, a 1-layer 16-dim model, no characterisation, no explained proteins; each test adds the
#: settings it needs.
TINY_CONFIG = {
    "seed": 3,
    "device": "cpu",
    "data": {
        "source": "synthetic",
        "synthetic": {
            "n_classes": 3,
            "n_per_class": 20,
            "length_min": 30,
            "length_max": 40,
            "motif_length": 4,
            "motifs_per_sequence": 1,
        },
    },
    "labels": {"min_class_size": 5},
    "split": {"identity": False, "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
    "model": {"name": "custom", "custom": {"num_layers": 1, "embed_dim": 16, "attention_heads": 2}},
    "characterise": {"enabled": False},
    "explain": {"proteins": None},
}

_SCRIPT = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings, DeploymentSettings, OutputSettings, Quietness, ResourceSettings,
)
from snakemake_interface_executor_plugins.settings import DeploymentMethod

repo, workdir = Path(sys.argv[1]), Path(sys.argv[2])
rules = []
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    wf_api = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[repo / "config" / "config.yaml"]),
        deployment_settings=DeploymentSettings(deployment_method={DeploymentMethod.CONDA}),
        snakefile=repo / "Snakefile",
        workdir=workdir,
    )
    wf = wf_api._workflow
    for rule in wf.rules:
        if rule.shellcmd is not None:
            kind = "shell"
        elif rule.script is not None:
            kind = "script"
        elif rule.notebook is not None:
            kind = "notebook"
        elif rule.wrapper is not None:
            kind = "wrapper"
        elif rule.norun:
            kind = "none"
        else:
            kind = "run"
        conda = rule.conda_env
        params = {k: "<callable>" if callable(v) else v for k, v in rule.params.items()}
        rules.append({
            "name": rule.name,
            "kind": kind,
            "conda": None if conda is None else (str(conda) if not callable(conda) else "<callable>"),
            "basedir": str(rule.basedir.get_path_or_uri(secret_free=True)),
            "resources": sorted(rule.resources.keys()),
            "params": params,
            "message": rule.message,
            "script": rule.script,
        })
print("RULES-JSON " + json.dumps(rules))
"""


@lru_cache(maxsize=4)
def workflow_rules(repo: Path = REPO) -> tuple[dict, ...]:
    """One dict per rule of the workflow in ``repo``: name, kind (shell|script|notebook|wrapper|run|none),
    conda (as written), basedir (the rule file's directory), resources (names declared), params (by name;
    functions of wildcards as ``"<callable>"``), message and script (as written, relative to basedir;
    None for other kinds)."""
    with tempfile.TemporaryDirectory(prefix="kneurons-rules-") as workdir:
        proc = subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(repo), workdir],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RULES-JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(
            f"loading the workflow failed (rc {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return tuple(json.loads(line[len("RULES-JSON ") :]))
