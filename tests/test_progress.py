"""Long jobs show their progress on the console (Snakemake shows a job's stderr), at most one line
every few seconds, while the job's log keeps every line (``kneurons.progress``, ``jobs.setup_logging``)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_rules import REPO, TINY_CONFIG

from kneurons import progress as progress_module
from kneurons.jobs import setup_logging
from kneurons.progress import (
    CONSOLE_EVERY,
    ConsoleProgress,
    Progress,
    eta_text,
    progress_callback,
    progress_extra,
)


class Clock:
    """``time.monotonic`` under the test's control."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", c)
    return c


@pytest.fixture
def job_logging(tmp_path):
    """A job's logging (the rule's log file, and the console written to a buffer), torn down after
    the test."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    log_path = tmp_path / "job.log"
    log = setup_logging(str(log_path), "kneurons.test", job="finetune rep=replicates/1/")
    console = io.StringIO()
    next(h for h in root.handlers if any(isinstance(f, ConsoleProgress) for f in h.filters)).setStream(
        console
    )
    yield log, log_path, console
    for handler in root.handlers[len(before) :]:
        handler.close()
    root.handlers[:] = before
    root.setLevel(level)


def test_the_console_gets_progress_every_few_seconds_and_the_log_every_line(clock, job_logging):
    log, log_path, stream = job_logging
    log.info("loading the checkpoint")  # not progress: the log only
    for step in range(1, 31):  # a step a second for 30 s
        log.info("epoch 1/2 step %d/60 ETA %s", step, eta_text(60 - step), extra=progress_extra())
        clock.now += 1.0
    log.info("epoch 1 done: val accuracy 0.9", extra=progress_extra(always=True))
    log.warning("something to look at")
    console = stream.getvalue().splitlines()
    steps = [line for line in console if " step " in line]
    # the first line, then one per CONSOLE_EVERY seconds
    assert [line.split(" step ")[1].split("/")[0] for line in steps] == ["1", "11", "21"]
    assert CONSOLE_EVERY == 10.0
    assert steps[0].endswith(
        f"[finetune rep=replicates/1/; every line in {log_path}] epoch 1/2 step 1/60 ETA 0:00:59"
    )
    assert "[finetune rep=replicates/1/] epoch 1/2 step 11/60 ETA 0:00:49" in steps[1]
    assert console[-2].endswith("[finetune rep=replicates/1/] epoch 1 done: val accuracy 0.9")
    assert " WARNING [finetune rep=replicates/1/] something to look at" in console[-1]
    assert not any("loading the checkpoint" in line for line in console)
    text = log_path.read_text()
    assert text.count(" step ") == 30 and "loading the checkpoint" in text


def test_progress_names_done_rate_and_time_left(clock, caplog):
    progress = Progress("activation layer 3", 100, every=5.0)
    with caplog.at_level(logging.INFO, logger="kneurons.progress"):
        for _ in range(10):
            clock.now += 1.0
            progress.step(10)
    lines = [r.getMessage() for r in caplog.records]
    # at 5 s (50 done, 10/s, 5 s left) and at the end
    assert lines == [
        "activation layer 3: 50/100 sequences, 10 sequences/s, 5 s, ETA 0:00:05",
        "activation layer 3: 100/100 sequences, 10 sequences/s, 10 s, ETA 0:00:00",
    ]
    assert [r.progress for r in caplog.records] == ["throttled", "always"]
    callback = progress_callback("ablation ig / global, 12 masks", "batches", logging.getLogger("x"))
    with caplog.at_level(logging.INFO, logger="x"):
        clock.now += 2.0
        callback(4, 4)
    assert (
        caplog.records[-1].getMessage()
        == "ablation ig / global, 12 masks: 4/4 batches, 2 batches/s, 2 s, ETA 0:00:00"
    )
    assert eta_text(3725.0) == "1:02:05" and eta_text(float("inf")) == "?"


def test_fine_tuning_shows_its_progress_on_the_console(tmp_path):
    """The workflow's fine-tuning job: Snakemake's console shows its progress lines (epoch, step,
    rate, ETA) and each epoch's result, the first naming the log, which keeps every line."""
    config = {**TINY_CONFIG, "train": {"epochs": 2, "token_budget": 256, "replicates": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "results/model/best.pt",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-3000:]
    lines = [line for line in console.splitlines() if "[finetune" in line]
    log = Path(tmp_path / "results/logs/model/finetune.log").read_text()
    assert "[finetune; every line in results/logs/model/finetune.log] epoch 1/2 step " in lines[0], lines
    assert " ETA " in lines[0] and " tokens/s " in lines[0]
    assert any("[finetune] epoch 2 done: " in line and "val accuracy" in line for line in lines), lines
    assert any("[finetune] best epoch " in line for line in lines), lines
    assert log.count(" step ") >= sum(" step " in line for line in lines) >= 1
