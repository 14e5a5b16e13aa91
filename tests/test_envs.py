"""Conda environments: pinned, complete, used by every rule, and in step with pyproject.toml.

Conda channels cannot be reached from the machines that run these tests, so the env files are
checked statically; creating them is left to `snakemake --sdm conda --conda-create-envs-only`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from workflow_rules import REPO, workflow_rules

ENV_DIR = REPO / "envs"
ENV_FILES = sorted(ENV_DIR.glob("*.yaml"))
CHANNELS = ["conda-forge", "bioconda", "nodefaults"]
#: conda package name -> PyPI distribution name, where they differ.
CONDA_TO_PYPI = {"pytorch": "torch", "pytorch-gpu": "torch", "matplotlib-base": "matplotlib"}
#: conda-only packages (no PyPI counterpart to compare with).
NOT_ON_PYPI = {"python", "pip", "mmseqs2", "cuda-version"}
CONDA_SPEC = re.compile(r"^(?:(?P<channel>[\w-]+)::)?(?P<name>[A-Za-z0-9_.-]+)=(?P<version>\d[\w.]*)$")
PIP_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>\d[\w.]*)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _env_packages(path: Path) -> dict[str, tuple[str, str]]:
    """{normalised PyPI-ish name: (version, 'conda'|'pip')} of one env file (asserting pins)."""
    doc = yaml.safe_load(path.read_text())
    packages: dict[str, tuple[str, str]] = {}
    pip_sections = []
    for dep in doc["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, (
                f"{path.name}: only a `pip:` mapping may appear in dependencies, got {dep}"
            )
            pip_sections.append(dep["pip"])
            continue
        m = CONDA_SPEC.match(str(dep))
        assert m, f"{path.name}: {dep!r} is not pinned as name=x.y.z"
        name = _norm(CONDA_TO_PYPI.get(m["name"], m["name"]))
        assert name not in packages, f"{path.name}: {m['name']} listed twice"
        packages[name] = (m["version"], "conda")
    for section in pip_sections:
        assert "pip" in packages, (
            f"{path.name}: a pip section needs `pip` itself pinned among the conda packages"
        )
        for dep in section:
            m = PIP_SPEC.match(str(dep))
            assert m, f"{path.name}: pip entry {dep!r} is not pinned as name==x.y.z"
            name = _norm(m["name"])
            assert name not in packages, f"{path.name}: {m['name']} comes from both conda and pip"
            packages[name] = (m["version"], "pip")
    return packages


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        reqs += [Requirement(r) for r in extra]
    return {_norm(r.name): r for r in reqs}


def test_one_env_per_kind_of_step():
    assert {p.stem for p in ENV_FILES} >= {"data", "torch", "plots"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_is_pinned(path):
    doc = yaml.safe_load(path.read_text())
    assert set(doc) <= {"name", "channels", "dependencies"}, f"{path.name}: unexpected keys {set(doc)}"
    # nodefaults: the Anaconda defaults channel is neither needed nor free to use on every site.
    assert doc["channels"] == CHANNELS
    packages = _env_packages(path)
    assert "python" in packages, f"{path.name}: python must be pinned"


def test_pins_match_pyproject():
    """Where an env and pyproject.toml name the same package, the env's version satisfies the pin
    (exact pins must be equal; torch's range must contain the conda build)."""
    reqs = _pyproject_requirements()
    compared = 0
    for path in ENV_FILES:
        for name, (version, _source) in _env_packages(path).items():
            if name in NOT_ON_PYPI or name not in reqs:
                continue
            req = reqs[name]
            assert Version(version) in req.specifier, (
                f"{path.name}: {name} {version} does not satisfy pyproject.toml's {req}"
            )
            compared += 1
    assert compared >= 10  # the check really compared the shared packages


def test_envs_provide_every_runtime_dependency():
    """A dependency added to pyproject.toml must also reach the conda envs."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    provided = set().union(*(_env_packages(p) for p in ENV_FILES))
    needed = sorted(_norm(Requirement(r).name) for r in project["dependencies"])
    missing = [n for n in needed if n not in provided]
    assert not missing, f"in pyproject.toml but in no envs/*.yaml: {missing}"


def test_torch_env_covers_model_steps():
    """The model steps import torch, fair-esm and captum together with the data stack."""
    torch_env = _env_packages(ENV_DIR / "torch.yaml")
    for name in ("torch", "fair-esm", "captum", "pandas", "numpy", "pyarrow", "jsonschema", "pyyaml"):
        assert name in torch_env, f"torch.yaml lacks {name}"


def test_every_rule_has_a_conda_env():
    rules = workflow_rules()
    checked = []
    for rule in rules:
        if rule["kind"] == "none":  # e.g. `all`: nothing runs
            continue
        assert rule["kind"] != "run", (
            f"rule {rule['name']}: `run:` blocks cannot use a conda env; use `script:` (workflow/scripts)"
        )
        assert rule["conda"], f"rule {rule['name']} has no conda: directive"
        env = (Path(rule["basedir"]) / rule["conda"]).resolve()
        assert env.parent == ENV_DIR.resolve() and env.exists(), (
            f"rule {rule['name']}: conda: {rule['conda']} is not one of envs/*.yaml"
        )
        checked.append(rule["name"])
    assert checked, "no executable rules found"


def test_jobs_of_torch_free_envs_import_no_torch():
    """A rule whose env has no torch (data, plots) runs a script whose imports load no torch: the
    job modules it reaches (kneurons.jobs.data, .gather, .external, ...) stay torch-free."""
    checked = []
    for rule in workflow_rules():
        if rule["kind"] != "script" or "torch" in _env_packages(
            (Path(rule["basedir"]) / rule["conda"]).resolve()
        ):
            continue
        script = (Path(rule["basedir"]) / rule["script"]).resolve()
        # the script's imports, run without the script (it needs Snakemake's `snakemake` object)
        imports = "\n".join(
            line for line in script.read_text().splitlines() if line.startswith(("import ", "from "))
        )
        code = f"import sys\n{imports}\nprint('torch' in sys.modules)"
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO
        )
        assert proc.returncode == 0, f"rule {rule['name']}: {script.name}: {proc.stderr[-2000:]}"
        assert proc.stdout.strip() == "False", f"rule {rule['name']}: {script.name} imports torch"
        checked.append(rule["name"])
    assert {"labels", "split", "scoring_set", "gather_ablation_seeds", "claims"} <= set(checked)


def test_package_reaches_jobs_from_any_directory(tmp_path):
    """A job's interpreter that has no kneurons installed (here: python -S, no site-packages,
    as in a conda env) imports it from the workflow's src/, with the working directory elsewhere."""
    wf = tmp_path / "wf"
    wf.mkdir()
    (wf / "src").symlink_to(REPO / "src")
    (wf / "Snakefile").write_text(
        f'configfile: "{REPO}/config/config.yaml"\n'
        f'include: "{REPO}/workflow/rules/common.smk"\n\n'
        "rule probe:\n"
        '    output: "probe.txt"\n'
        f"    shell: \"{sys.executable} -S -c 'import kneurons; print(kneurons.__file__)' > {{output}}\"\n"
    )
    work = tmp_path / "elsewhere"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(wf / "Snakefile"),
            "--directory",
            str(work),
            "--cores",
            "1",
            "probe.txt",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = Path((work / "probe.txt").read_text().strip())
    assert found.resolve() == (REPO / "src" / "kneurons" / "__init__.py").resolve()
