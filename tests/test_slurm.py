"""The SLURM profile: its shape, its resources, and a real end-to-end run on a one-node cluster.

The end-to-end test starts munged, slurmctld and slurmd (tests/slurm_cluster.py) and runs the
embedded default through a profile derived from profiles/slurm/config.yaml, changing only what a
throw-away cluster without accounting, accounts or GPUs needs (listed in ``cluster_test_profile``),
then checks the run's claims.tsv against an independent recomputation (tests/claims_check.py)
and opens the run's report in headless Chromium (the verdicts on the first screen, the atlas link).
It needs root and Debian's slurm + munge packages installed beforehand (``.ci/run`` installs them,
then runs ``make test-slurm``; no test installs system packages); without them it is skipped with
the reason printed, except on CI (``CI=true``), where it fails instead.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from workflow_rules import REPO, workflow_rules

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
#: Settings a real cluster needs from the plugin's own defaults (sacct status checks, account
#: lookup, a 40 s grace period before the first check): the cluster profile must not change them.
PLUGIN_DEFAULTS_KEPT = ("slurm-status-command", "slurm-no-account", "slurm-init-seconds-before-status-checks")
GPU_RESOURCES = ("gpu", "cpus_per_gpu", "mem_mb", "runtime", "slurm_partition")


def _profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def _evaluate(exprs: dict, attempt: int, layers: tuple[int, int] = (0, 0), seeds: str = "0") -> dict:
    """Evaluate profile resource expressions with Snakemake's own parser, as a job would; the
    wildcards are a scoring job's (``layers``: its first and last layer) and a random-baseline
    job's (``seeds``: its chunk of seeds, ``0_1_2``)."""
    from snakemake.resources import Resources

    parsed = Resources.parse([f"{k}={v}" for k, v in exprs.items()], allow_expressions=True)
    wildcards = SimpleNamespace(first=str(layers[0]), last=str(layers[1]), seeds=seeds)
    return {
        k: r.evaluate(
            wildcards=wildcards, input=[], attempt=attempt, threads=1, rulename="x", async_run=None
        ).value
        for k, r in parsed.items()
    }


# -- the cluster profile ----------------------------------------------------------------------
def test_profile_targets_slurm_and_keeps_plugin_defaults():
    prof = _profile()
    assert prof["executor"] == "slurm"
    assert isinstance(prof["jobs"], int) and prof["jobs"] > 0
    assert prof["retries"] >= 1
    assert prof["slurm-logdir"]
    for key in PLUGIN_DEFAULTS_KEPT:
        assert key not in prof, f"{key} overrides a plugin default that real clusters need"
    defaults = prof["default-resources"]
    for key in ("slurm_account", "slurm_partition", "runtime", "mem_mb"):
        assert key in defaults, f"default-resources lacks {key}"


def test_memory_and_runtime_grow_with_attempt():
    prof = _profile()
    sections = {"default": prof["default-resources"], **prof["set-resources"]}
    for name, exprs in sections.items():
        first, second = _evaluate(exprs, 1), _evaluate(exprs, 2)
        for key in ("mem_mb", "runtime"):
            assert isinstance(first[key], int) and first[key] > 0, (name, key, first[key])
            assert second[key] > first[key], f"{name}: {key} does not grow on retry"
    # a scoring job of several layers (score.layers_per_job) asks for time for each of them
    score = prof["set-resources"]["score_layers"]
    assert _evaluate(score, 1, layers=(0, 3))["runtime"] == 4 * _evaluate(score, 1)["runtime"]
    # and a random-baseline job of several seeds (ablate.seeds_per_job) for each seed
    seeds = prof["set-resources"]["ablate_seed"]
    assert _evaluate(seeds, 1, seeds="0_1_2")["runtime"] == 3 * _evaluate(seeds, 1)["runtime"]


def test_gpu_rules_get_gpu_resources():
    """set-resources names only rules that exist, and every rule that declares a GPU is in it."""
    prof = _profile()
    rules = {r["name"]: r for r in workflow_rules()}
    set_res = prof["set-resources"]
    unknown = sorted(set(set_res) - set(rules))
    assert not unknown, f"profiles/slurm set-resources names rules the workflow lacks: {unknown}"
    gpu_rules = {n for n, r in rules.items() if "gpu" in r["resources"]}
    assert gpu_rules, "no rule declares a `gpu` resource"
    assert gpu_rules <= set(set_res), (
        f"GPU rules without cluster resources: {sorted(gpu_rules - set(set_res))}"
    )
    for name in gpu_rules:
        res = set_res[name]
        assert all(k in res for k in GPU_RESOURCES), f"{name}: needs {GPU_RESOURCES}"
        assert res["gpu"] == 1 and res["cpus_per_gpu"] >= 1
        assert res["slurm_partition"] != prof["default-resources"]["slurm_partition"]
    for name in set(set_res) - gpu_rules:
        assert "gpu" not in set_res[name], (
            f"{name} declares no gpu in the workflow but gets one on the cluster"
        )


def test_rules_with_own_memory_or_runtime_grow_on_retry():
    """A rule's own static mem_mb/runtime beats default-resources, so it must be in set-resources."""
    set_res = _profile()["set-resources"]
    static = sorted(
        r["name"]
        for r in workflow_rules()
        if {"mem_mb", "runtime"} & set(r["resources"]) and r["name"] not in set_res
    )
    assert not static, f"rules whose mem_mb/runtime would not grow with attempt on the cluster: {static}"


#: Runs Snakemake's CLI in a subprocess and prints the resources of every planned job as JSON:
#: the rules' `message:` replaces the job details (resources included) in the printed dry run.
RESOURCE_PROBE = textwrap.dedent(
    """
    import json, sys
    import snakemake.jobs as jobs
    from snakemake.logging import LogEvent

    planned = []
    info = jobs.logger.info

    def record(msg, *args, **kwargs):
        extra = kwargs.get("extra") or {}
        if extra.get("event") == LogEvent.JOB_INFO:
            planned.append({"rule": extra.get("rule_name"), **dict(extra.get("resources") or {})})
        return info(msg, *args, **kwargs)

    jobs.logger.info = record
    from snakemake.cli import main

    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    print("PLANNED-JOBS " + json.dumps(planned, default=str))
    sys.exit(code)
    """
)


def test_profile_accepted_by_snakemake(tmp_path):
    """Snakemake and the installed plugin accept every key (a dry run through the profile)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            RESOURCE_PROBE,
            "--profile",
            str(PROFILE.parent),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(REPO / "config" / "config.yaml"),
            "-n",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PLANNED-JOBS "))
    planned = json.loads(line.removeprefix("PLANNED-JOBS "))
    # the profile's resources reached the jobs
    assert any(job.get("slurm_account") == "your_account" for job in planned)
    gpu_jobs = [job["rule"] for job in planned if job.get("gpu") == 1]
    assert gpu_jobs, "no job got gpu=1 from the profile"


# -- the test commands: `make test` is the fast suite and installs nothing --------------------
def _make_recipe(target: str) -> str:
    """The pytest line ``make`` would run for ``target`` (a dry run: nothing is built)."""
    cmd = ["make", "-n", "-C", str(REPO), target]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return next(line for line in proc.stdout.splitlines() if "pytest" in line)


def test_make_test_is_the_fast_suite_and_make_test_slurm_the_cluster_run():
    fast, cluster = _make_recipe("test"), _make_recipe("test-slurm")
    assert '-m "not slurm"' in fast and "-rs" in fast, fast
    assert "-m slurm" in cluster and "-rs" in cluster, cluster
    ci = (REPO / ".ci" / "run").read_text().replace("\\\n", " ")  # continuation lines joined
    from slurm_cluster import APT_PACKAGES

    install = next(line for line in ci.splitlines() if "apt-get install" in line)
    assert all(p in install.split() for p in APT_PACKAGES), install
    # the packages first, then the cluster run, then the fast suite
    assert ci.index("apt-get install") < ci.index("make test-slurm") < ci.rindex("make test\n")


def test_no_test_installs_system_packages():
    """No test or test helper runs a package manager (a test command must not install system packages)."""
    # a command list: ["apt-get", ...]
    runs = re.compile(r"""(?<![\w\])])\[\s*["'](apt-get|apt|dpkg|yum|dnf|conda|mamba)["']""")
    found = [
        f"{path.relative_to(REPO)}:{i}"
        for path in sorted((REPO / "tests").glob("*.py"))
        if path.name != Path(__file__).name  # this file spells the pattern out
        for i, line in enumerate(path.read_text().splitlines(), start=1)
        if runs.search(line)
    ]
    assert not found, f"tests that would run a package manager: {found}"


def test_missing_slurm_is_a_skip_reason_not_an_install(monkeypatch):
    """With apt-get present but SLURM missing, the check names the packages and .ci/run, and runs nothing."""
    import slurm_cluster

    calls = []
    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 0)
    apt_only = {"apt-get": "/usr/bin/apt-get"}
    monkeypatch.setattr(slurm_cluster.shutil, "which", apt_only.get)
    monkeypatch.setattr(slurm_cluster.subprocess, "run", lambda *a, **k: calls.append(a))
    with pytest.raises(slurm_cluster.ClusterUnavailable) as err:
        slurm_cluster.ensure_installed()
    assert not calls, f"ensure_installed ran {calls}"
    for word in (*slurm_cluster.APT_PACKAGES, ".ci/run", "sbatch"):
        assert word in str(err.value)


# -- a real cluster ---------------------------------------------------------------------------
def cluster_test_profile(default: dict, partition: str, cpus: int, memory_mb: int, logdir: Path) -> dict:
    """The cluster profile, changed only where a throw-away single-node cluster differs from a real one."""
    prof = copy.deepcopy(default)
    # One dict per rule (YAML anchors in the profile make rules share one mapping).
    prof["set-resources"] = {rule: dict(r) for rule, r in prof["set-resources"].items()}
    res = prof["default-resources"]
    # No accounting database, hence no accounts: without slurm_account the plugin tries to guess
    # one with sacct, fails, and submits without (as on clusters that do not use accounts).
    res.pop("slurm_account")
    res["slurm_partition"] = partition
    # Memory is not enforced here (no cgroups), but requests above the node's memory are refused.
    cap = max(256, memory_mb // (cpus + 1))
    res["mem_mb"] = f"min({cap}, {res['mem_mb']})"
    for rule_res in prof["set-resources"].values():
        for key in ("cpus_per_gpu", "gpu_model", "gres", "constraint"):
            rule_res.pop(key, None)
        rule_res["gpu"] = 0  # no GPUs on this node (0 also overrides a rule's own `gpu=1`)
        rule_res["slurm_partition"] = partition
        rule_res["mem_mb"] = f"min({cap}, {rule_res['mem_mb']})"
    # One CPU per job, so that two jobs share the node and one job's start-up and status-check
    # latency overlaps another's work; a few more submitted than fit keeps the node busy.
    prof["max-threads"] = 1
    prof["jobs"] = 2 * cpus
    # No slurmdbd, so no sacct: squeue sees finished jobs for MinJobAge (600 s in the test config).
    prof["slurm-status-command"] = "squeue"
    prof["slurm-init-seconds-before-status-checks"] = 1
    prof["seconds-between-status-checks"] = 2
    prof["slurm-logdir"] = str(logdir)
    prof["slurm-keep-successful-logs"] = True
    prof["latency-wait"] = 5
    prof["retries"] = 0  # fail fast: a retry here would only hide a broken job
    prof["keep-going"] = False
    return prof


def _failed_job_logs(out: str, lines: int = 30) -> str:
    """The tails of the log files Snakemake names in its error messages (SLURM and rule logs)."""
    parts = []
    for path in dict.fromkeys(re.findall(r"(/\S+?\.log)\b", out)):
        p = Path(path)
        if p.is_file() and "/.snakemake/log/" not in path:
            parts.append(f"--- {p} ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(parts)


def _cluster_or_skip():
    from slurm_cluster import ClusterUnavailable, ensure_installed

    try:
        ensure_installed()
    except ClusterUnavailable as exc:
        reason = f"real SLURM test not possible here: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: this test must run on CI)")
        print(reason, file=sys.stderr)
        pytest.skip(reason)


@pytest.mark.slurm
@pytest.mark.slow
def test_embedded_default_runs_on_real_slurm(tmp_path):
    _cluster_or_skip()
    from slurm_cluster import single_node_cluster

    targets = os.environ.get("KNEURONS_SLURM_TARGETS", "all").split()
    work = tmp_path / "work"
    logdir = tmp_path / "slurm-logs"
    with single_node_cluster(tmp_path / "cluster") as cluster:
        prof_dir = tmp_path / "profile"
        prof_dir.mkdir()
        prof = cluster_test_profile(
            _profile(), cluster.partition, cluster.cpus, cluster.real_memory_mb, logdir
        )
        (prof_dir / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            *targets,
            "--profile",
            str(prof_dir),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(work),
            "--configfile",
            str(REPO / "config" / "config.yaml"),
        ]
        t0 = time.monotonic()
        # On timeout subprocess.run kills Snakemake; leaving the `with` cancels its jobs.
        timeout = int(os.environ.get("KNEURONS_SLURM_TIMEOUT", "3000"))
        proc = subprocess.run(
            cmd, env=cluster.env(), capture_output=True, text=True, check=False, timeout=timeout
        )
        elapsed = time.monotonic() - t0
        out = proc.stdout + proc.stderr
        queue = subprocess.run(
            ["squeue", "--states=all", "-h", "-o", "%i|%T|%k"],
            env=cluster.env(),
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        assert proc.returncode == 0, f"{out[-6000:]}\n{_failed_job_logs(out)}\n{cluster.logs()}"

    print(f"SLURM end-to-end run of {targets}: {elapsed:.0f} s")
    jobs = [ln.split("|") for ln in queue.splitlines() if ln.strip()]
    assert jobs, "no job went through SLURM"
    assert all(state == "COMPLETED" for _id, state, _c in jobs), queue
    # Every submitted rule has its SLURM log, i.e. it ran as a batch job on the node.
    ran = {p.name.removeprefix("rule_") for p in logdir.iterdir() if p.is_dir()}
    submitted = set(
        re.findall(r"rule_(\w+?)(?:_wildcards_\S*)?$", "\n".join(c for *_x, c in jobs), re.MULTILINE)
    )
    assert submitted and submitted <= ran, (submitted, ran)
    # Nothing left to do: all targets exist and are up to date.
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            *targets,
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(work),
            "--configfile",
            str(REPO / "config" / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    if targets == ["all"]:
        # claims.tsv equals an independent recomputation from the run's own tables (issue #25)
        from claims_check import compare, recompute, workflow_sets

        from kneurons.config import load_config
        from kneurons.tables import read_claims

        config = load_config(REPO / "config" / "config.yaml")
        results = work / config["results"]
        want = recompute(workflow_sets(results, config), config["stats"])
        assert compare(read_claims(results / "stats" / "claims.tsv"), want, rel=5e-3) == []
        _check_the_report(work)


def _check_the_report(work: Path) -> None:
    """The embedded default's report, as a person opens it (tests/browser.py): the verdict table on
    the first screen, a claim's figure one click away, the atlas opening from it. Where Chromium is
    missing the check is reported, not run (CI=true: a failure)."""
    from browser import check_report, chromium, chromium_missing

    from kneurons.tables import read_claims

    report = work / "results" / "report.html"
    cmd = [sys.executable, "-m", "snakemake", "--report", str(report), "--snakefile", str(REPO / "Snakefile")]
    cmd += ["--directory", str(work), "--configfile", str(REPO / "config" / "config.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    missing = chromium_missing()
    if missing:
        assert os.environ.get("CI") != "true", f"the report's browser check needs Chromium on CI: {missing}"
        print(f"report written, its browser check not run: {missing}", file=sys.stderr)
        return
    driver = chromium()
    try:
        check_report(driver, report, len(read_claims(work / "results" / "stats" / "claims.tsv")))
    finally:
        driver.quit()
