"""Reliability through Snakemake: bad configuration and unwritable results stop the run before
any job; a training job killed with SIGTERM (what SLURM sends at a time limit or preemption)
resumes from its last epoch on the rerun and the run ends with the same outputs as an
uninterrupted one; the same config and seed give byte-identical data tables.

One tiny configuration (1-layer 16-dim model, 60 synthetic proteins) and targets that stop
after fine-tuning keep the three Snakemake runs of the module fixture short; killed scoring and
ablation jobs are tested on the library calls (test_reliability_model.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml
from workflow_rules import TINY_CONFIG

from kneurons.io import sha256_file

REPO = Path(__file__).resolve().parents[1]
TINY = {
    **TINY_CONFIG,
    # no early stop: every epoch runs, so the kill lands mid-training
    "train": {"epochs": 40, "token_budget": 512, "early_stopping_patience": 100},
    "score": {"methods": ["activation"], "max_sequences": 16},
    "ablate": {"random_seeds": [0]},
}
TARGETS = ["results/model/metrics.json"]
DATA_FILES = [
    "download/synthetic.tsv",
    "proteins.tsv",
    "labels.tsv",
    "classes.tsv",
    "label_report.json",
    "split.tsv",
]


def snakemake_cmd(workdir: Path, config: dict, targets: list[str]) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "1",
        *targets,
    ]


def run_snakemake(workdir: Path, config: dict, targets: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_cmd(workdir, config, targets), capture_output=True, text=True, timeout=600, check=False
    )


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (from /proc), so the test signals only processes it started."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out.extend(children)
            todo.extend(children)
    return out


def job_process(snakemake_pid: int, script: str) -> int | None:
    """The Python process running the workflow script ``script`` under this Snakemake run."""
    for pid in descendants(snakemake_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if Path(argv[0]).name.startswith("python") and any(a.endswith(script) for a in argv[1:]):
            return pid
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> SimpleNamespace:
    """Run A uninterrupted; run B with its training job killed by SIGTERM, then rerun to the end."""
    base = tmp_path_factory.mktemp("reliability_workflow")
    a, b = base / "a", base / "b"
    proc_a = run_snakemake(a, TINY, TARGETS)
    assert proc_a.returncode == 0, proc_a.stderr[-4000:]

    proc = subprocess.Popen(
        snakemake_cmd(b, TINY, TARGETS), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    last = b / "results" / "model" / "checkpoints" / "last.pt"
    killed_at_epoch = None
    try:
        deadline = time.monotonic() + 300
        while killed_at_epoch is None:
            assert proc.poll() is None, f"snakemake ended before the kill: {proc.stderr.read()[-4000:]}"
            assert time.monotonic() < deadline, "training never wrote its first epoch checkpoint"
            pid = job_process(proc.pid, "finetune.py") if last.exists() else None
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                killed_at_epoch = torch.load(last, weights_only=True)["progress"]["epoch"]
            time.sleep(0.02)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed = SimpleNamespace(
        returncode=proc.returncode,
        stderr=err,
        epoch=killed_at_epoch,
        model_files=sorted(p.name for p in (b / "results" / "model").rglob("*")),
        log=(b / "results" / "logs" / "model" / "finetune.log").read_text(),
    )
    proc_b = run_snakemake(b, TINY, TARGETS)
    assert proc_b.returncode == 0, proc_b.stderr[-4000:]
    return SimpleNamespace(a=a / "results", b=b / "results", killed=killed)


def test_sigterm_of_the_training_job_fails_cleanly(runs):
    k = runs.killed
    assert k.returncode != 0 and "finetune" in k.stderr
    assert 1 <= k.epoch < TINY["train"]["epochs"]
    # No declared output, no temporary file; only the resume state of the finished epochs.
    assert k.model_files == ["checkpoints", "last.pt"] or k.model_files == [
        "best_state.pt",
        "checkpoints",
        "last.pt",
    ]
    assert "terminated by signal 15" in k.log


def test_rerun_resumes_training_and_matches_the_uninterrupted_run(runs):
    meta = json.loads((runs.b / "model" / "run_metadata.json").read_text())
    assert meta["resumed_from_epoch"] is not None and meta["resumed_from_epoch"] >= runs.killed.epoch
    assert json.loads((runs.a / "model" / "run_metadata.json").read_text())["resumed_from_epoch"] is None
    for name in ("metrics.json",):
        assert json.loads((runs.a / "model" / name).read_text()) == json.loads(
            (runs.b / "model" / name).read_text()
        )
    curves = [
        pd.read_csv(r / "model" / "training_curve.tsv", sep="\t").drop(columns=["tokens_per_s", "seconds"])
        for r in (runs.a, runs.b)
    ]
    pd.testing.assert_frame_equal(*curves, check_exact=True)
    sa, sb = (torch.load(r / "model" / "best.pt", weights_only=True)["state_dict"] for r in (runs.a, runs.b))
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # byte-identical checkpoints, so score tables' checkpoint_sha256 provenance agrees too
    assert sha256_file(runs.a / "model" / "best.pt") == sha256_file(runs.b / "model" / "best.pt")
    assert not list(runs.b.rglob("*.tmp"))


def test_same_config_and_seed_give_byte_identical_data_tables(runs):
    for name in DATA_FILES:
        assert (runs.a / "data" / name).read_bytes() == (runs.b / "data" / name).read_bytes(), name


def test_bad_config_stops_before_any_job(tmp_path):
    proc = run_snakemake(tmp_path / "run", {**TINY, "labels": {"level": 5}}, TARGETS)
    assert proc.returncode != 0
    assert "labels.level: 5 is greater than the maximum of 4" in proc.stderr
    assert not (tmp_path / "run" / "results").exists()


def test_missing_checkpoint_stops_before_any_job(tmp_path):
    missing = tmp_path / "weights" / "esm2_t6_8M_UR50D.pt"
    model = {"name": "esm2_t6_8M_UR50D", "pretrained": True, "checkpoint": str(missing)}
    proc = run_snakemake(tmp_path / "run", {**TINY, "model": model}, ["-n", *TARGETS])
    assert proc.returncode != 0
    assert f"model.checkpoint: {missing} does not exist" in proc.stdout + proc.stderr
    assert not (tmp_path / "run" / "results").exists()


def test_changed_local_checkpoint_reruns_finetune(tmp_path):
    """model.checkpoint is an input of fine-tuning: a newer weights file plans the finetune job again.

    A custom model from a local fair-esm file (it sets the architecture). The data rules run for
    real; fine-tuning's outputs are stood in by files newer than its inputs.
    """
    import argparse
    import os

    from kneurons.model.classifier import BackboneSpec, build_backbone

    backbone = build_backbone(BackboneSpec("custom", 1, 16, 2))
    state = {
        ("encoder." if k.startswith("lm_head") else "encoder.sentence_encoder.") + k: v
        for k, v in backbone.state_dict().items()
        if not k.startswith("contact_head.regression")
    }
    cfg = argparse.Namespace(
        encoder_layers=1, encoder_embed_dim=16, encoder_attention_heads=2, token_dropout=True
    )
    weights = tmp_path / "mine.pt"
    torch.save({"model": state, "cfg": {"model": cfg}}, weights)
    os.utime(weights, (1e9, 1e9))  # older than anything the run writes
    config = {**TINY, "model": {"name": "custom", "pretrained": True, "checkpoint": str(weights)}}
    run = tmp_path / "run"
    done = run_snakemake(run, config, ["results/data/split.tsv", "results/data/classes.tsv"])
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("best.pt", "metrics.json", "training_curve.tsv", "run_metadata.json"):
        (run / "results" / "model").mkdir(parents=True, exist_ok=True)
        (run / "results" / "model" / name).write_text("stand-in")
    same = run_snakemake(run, config, ["-n", *TARGETS])
    assert same.returncode == 0 and "Nothing to be done" in same.stdout + same.stderr, same.stdout[-3000:]
    weights.touch()
    plan = run_snakemake(run, config, ["-n", *TARGETS])
    text = plan.stdout + plan.stderr
    assert plan.returncode == 0 and re.search(rf"Updated input files: {re.escape(str(weights))}", text), text[
        -3000:
    ]


def test_unwritable_results_directory_is_one_clear_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    proc = run_snakemake(tmp_path / "run", {**TINY, "results": str(blocker / "results")}, ["all"])
    assert proc.returncode != 0
    assert (
        f"results: {blocker}/results cannot be created: {blocker} is a file, not a directory" in proc.stderr
    )
    assert blocker.read_text().startswith("a file")


@pytest.mark.slow
def test_changed_scoring_setting_reruns_its_score_jobs(tmp_path):
    """The params rerun-trigger: after the scores are made, `score.activation.reduce: max` plans the
    activation score jobs and their gather again, and nothing upstream (the settings seam)."""
    config = {**TINY, "train": {**TINY["train"], "epochs": 2}}
    target = ["results/scores/activation.parquet"]
    done = run_snakemake(tmp_path / "run", config, target)
    assert done.returncode == 0, done.stderr[-4000:]
    same = run_snakemake(tmp_path / "run", config, ["-n", *target])
    assert same.returncode == 0 and "Nothing to be done" in same.stdout + same.stderr
    changed = {**config, "score": {**config["score"], "activation": {"reduce": "max"}}}
    plan = run_snakemake(tmp_path / "run", changed, ["-n", *target])
    assert plan.returncode == 0, plan.stderr[-4000:]
    text = plan.stdout + plan.stderr
    assert "score_layers" in text and "gather_scores" in text, text[-3000:]
    for upstream in ("finetune", "scoring_set", "split"):
        assert not re.search(rf"\brule {upstream}:|^{upstream}\s+\d", text, re.M), text[-3000:]
