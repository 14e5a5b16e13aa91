"""Fine-tuning: accuracy on planted motifs, outputs, determinism, resume after kill, options,
config checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.config import validate_config
from kneurons.data.synthetic import generate_synthetic
from kneurons.errors import ConfigError, InputError
from kneurons.model.checkpoint import load_classifier
from kneurons.model.loading import build_classifier
from kneurons.model.runtime import seed_everything
from kneurons.training.loop import CURVE_COLUMNS, class_weights, fine_tune, warmup_linear_decay

TINY_MODEL = {"name": "custom", "custom": {"num_layers": 2, "embed_dim": 16, "attention_heads": 2}}
TIMING_COLUMNS = ["tokens_per_s", "seconds"]


def tiny_split(n_per_class: int = 20, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """A small split table built the way the workflow builds one."""
    from kneurons.data.labels import extract_labels
    from kneurons.data.split import stratified_split

    proteins, _ = generate_synthetic(
        n_classes=3,
        n_per_class=n_per_class,
        length_min=30,
        length_max=45,
        motif_length=5,
        motifs_per_sequence=2,
        seed=seed,
    )
    labels_df, classes, _ = extract_labels(proteins, {"level": 1})
    split = stratified_split(labels_df, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=seed)
    return split, classes.sort_values("label_index")["label"].astype(str).tolist()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = state_dict(a), state_dict(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- the embedded-default-like setting (the shared fixture) --------------------------------------
def test_planted_motifs_reach_high_test_accuracy(trained_synthetic):
    m = trained_synthetic.metrics
    assert m["test"]["accuracy"] >= 0.9
    assert m["test"]["macro_f1"] >= 0.9
    assert m["test"]["n"] == int((trained_synthetic.split["split"] == "test").sum())


def test_outputs(trained_synthetic):
    d = trained_synthetic.dir
    metrics = json.loads((d / "metrics.json").read_text())
    for part in ("val", "test"):
        assert set(metrics[part]) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix"}
        assert set(metrics[part]["per_class"]) == set(trained_synthetic.labels)
        cm = np.array(metrics[part]["confusion_matrix"])
        assert cm.shape == (4, 4) and cm.sum() == metrics[part]["n"]
        assert np.trace(cm) / cm.sum() == pytest.approx(metrics[part]["accuracy"])
    curve = pd.read_csv(d / "training_curve.tsv", sep="\t")
    assert list(curve.columns) == CURVE_COLUMNS
    assert curve["epoch"].tolist() == list(range(1, len(curve) + 1))
    assert (curve["step"].diff().dropna() > 0).all()
    assert curve["train_loss"].iloc[-1] < curve["train_loss"].iloc[0]
    assert (curve["tokens_per_s"] > 0).all()
    # the best epoch is the one with the best validation macro-F1
    assert metrics["best_epoch"] == int(curve.loc[curve["val_macro_f1"].idxmax(), "epoch"]) or (
        curve.loc[curve["epoch"] == metrics["best_epoch"], "val_macro_f1"].item()
        == curve["val_macro_f1"].max()
    )
    meta = json.loads((d / "run_metadata.json").read_text())
    assert meta["seed"] == 0 and meta["device"] == "cpu"
    assert meta["config_hash"] == metrics["config_hash"]
    assert meta["versions"]["torch"] == torch.__version__ and meta["versions"]["fair-esm"] == "2.0.0"
    assert meta["n_params"] > meta["n_trainable_params"] > 0  # the unused LM/contact heads stay frozen
    _, info = load_classifier(d / "best.pt")
    assert info["meta"]["metrics"]["test"]["accuracy"] == metrics["test"]["accuracy"]
    assert info["meta"]["model_name"] == "custom"
    # random init is drawn from the run's seed: that names the initial weights
    assert info["meta"]["weights_sha256"] == meta["weights_sha256"] == "random-init:0"


# -- determinism and resume ----------------------------------------------------------------
def test_same_seed_same_result_different_seed_different(tmp_path):
    split, labels = tiny_split()
    train = {"epochs": 3, "lr": 0.003, "token_budget": 256, "deterministic": True}
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        runs[name] = fine_tune(split, labels, TINY_MODEL, train, tmp_path / name, seed=seed)
    assert runs["a"] == runs["b"]
    assert same_weights(tmp_path / "a" / "best.pt", tmp_path / "b" / "best.pt")
    ca, cb = (
        pd.read_csv(tmp_path / n / "training_curve.tsv", sep="\t").drop(columns=TIMING_COLUMNS) for n in "ab"
    )
    pd.testing.assert_frame_equal(ca, cb)
    assert not same_weights(tmp_path / "a" / "best.pt", tmp_path / "c" / "best.pt")


def test_replicates_share_the_backbone_initialisation():
    """model.init_seed fixes the random backbone; the training seed draws the head (and what follows)."""
    from kneurons.training.setup import prepare_data, setup_run

    split, labels = tiny_split()
    train = validate_config({"train": {"epochs": 1}})["train"]
    data = prepare_data(split, labels)

    def initial(seed: int, init_seed: int | None) -> dict[str, torch.Tensor]:
        model_cfg = validate_config({"model": {**TINY_MODEL, "init_seed": init_seed}})["model"]
        run = setup_run(data, labels, model_cfg, train, seed, "cpu", None)
        return {k: v.clone() for k, v in run.model.state_dict().items()}

    def backbone_equal(a, b):
        return all(torch.equal(a[k], b[k]) for k in a if k.startswith("esm."))

    def head_equal(a, b):
        return all(torch.equal(a[k], b[k]) for k in a if k.startswith("head."))

    r1, r2 = initial(1, 7), initial(2, 7)
    assert backbone_equal(r1, r2) and not head_equal(r1, r2)
    # Different initialisations: different backbones.
    assert not backbone_equal(initial(1, 7), initial(1, 8))
    # init_seed == seed draws exactly what a run without init_seed draws (backbone and head).
    same, default = initial(3, 3), initial(3, None)
    assert backbone_equal(same, default) and head_equal(same, default)


RUNNER = """
import json, sys
import pandas as pd, torch
torch.set_num_threads(1)
from kneurons.training.loop import fine_tune
split = pd.read_csv(sys.argv[1], sep="\\t", dtype=str, keep_default_na=False)
cfg = json.loads(sys.argv[3])
fine_tune(split, cfg["labels"], cfg["model"], cfg["train"], sys.argv[2], seed=cfg["seed"])
"""


def test_killed_run_resumes_to_the_same_result(tmp_path):
    split, labels = tiny_split(n_per_class=60)
    split_path = tmp_path / "split.tsv"
    split.to_csv(split_path, sep="\t", index=False)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    # No early stop, so every epoch runs and the kill lands mid-training.
    cfg = {
        "labels": labels,
        "model": TINY_MODEL,
        "seed": 3,
        "train": {"epochs": 8, "lr": 0.003, "token_budget": 256, "early_stopping_patience": 100},
    }
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def run(out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(runner), str(split_path), str(out), json.dumps(cfg)],
            env=env,  # noqa: E501
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    full, killed = tmp_path / "full", tmp_path / "killed"
    proc = run(killed)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists():
        assert proc.poll() is None, f"training exited before its first checkpoint: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no epoch checkpoint within 120 s"
        time.sleep(0.005)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "best.pt").exists()
    done_at_kill = torch.load(last, weights_only=True)["progress"]["epoch"]
    assert 1 <= done_at_kill < 8

    for out in (killed, full):
        p = run(out)
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err

    meta = json.loads((killed / "run_metadata.json").read_text())
    assert meta["resumed_from_epoch"] is not None and meta["resumed_from_epoch"] >= done_at_kill
    assert json.loads((full / "run_metadata.json").read_text())["resumed_from_epoch"] is None
    assert json.loads((killed / "metrics.json").read_text()) == json.loads(
        (full / "metrics.json").read_text()
    )
    assert same_weights(killed / "best.pt", full / "best.pt")
    ck, cf = (
        pd.read_csv(d / "training_curve.tsv", sep="\t").drop(columns=TIMING_COLUMNS) for d in (killed, full)
    )
    pd.testing.assert_frame_equal(ck, cf)
    assert len(cf) == 8


def test_changed_config_does_not_resume(tmp_path):
    split, labels = tiny_split()
    fine_tune(split, labels, TINY_MODEL, {"epochs": 1, "token_budget": 256}, tmp_path)
    fine_tune(split, labels, TINY_MODEL, {"epochs": 2, "token_budget": 256}, tmp_path)
    meta = json.loads((tmp_path / "run_metadata.json").read_text())
    assert meta["resumed_from_epoch"] is None
    assert len(pd.read_csv(tmp_path / "training_curve.tsv", sep="\t")) == 2
    # the same config again resumes from the finished state and trains no further
    fine_tune(split, labels, TINY_MODEL, {"epochs": 2, "token_budget": 256}, tmp_path)
    assert json.loads((tmp_path / "run_metadata.json").read_text())["resumed_from_epoch"] == 2


def test_pretrained_weights_are_recorded_and_a_replaced_file_does_not_resume(tmp_path):
    import argparse

    from kneurons.io import sha256_file
    from kneurons.model.classifier import BackboneSpec, build_backbone

    def write_weights(seed: int) -> Path:
        torch.manual_seed(seed)
        backbone = build_backbone(BackboneSpec("custom", 2, 16, 2))
        state = {
            ("encoder." if k.startswith("lm_head") else "encoder.sentence_encoder.") + k: v
            for k, v in backbone.state_dict().items()
            if not k.startswith("contact_head.regression")
        }
        cfg = argparse.Namespace(
            encoder_layers=2, encoder_embed_dim=16, encoder_attention_heads=2, token_dropout=True
        )
        torch.save({"model": state, "cfg": {"model": cfg}}, tmp_path / "esm2_mine.pt")
        return tmp_path / "esm2_mine.pt"

    split, labels = tiny_split()
    model = {"name": "custom", "pretrained": True, "checkpoint": str(write_weights(1))}
    out = tmp_path / "run"
    fine_tune(split, labels, model, {"epochs": 1, "token_budget": 256}, out)
    sha = sha256_file(tmp_path / "esm2_mine.pt")
    _, info = load_classifier(out / "best.pt")
    assert info["meta"]["weights_sha256"] == sha
    assert json.loads((out / "run_metadata.json").read_text())["weights_sha256"] == sha
    # same path, other content: the saved training state belongs to other weights
    write_weights(2)
    fine_tune(split, labels, model, {"epochs": 1, "token_budget": 256}, out)
    meta = json.loads((out / "run_metadata.json").read_text())
    assert meta["resumed_from_epoch"] is None and meta["weights_sha256"] != sha


# -- options ----------------------------------------------------------------------------------
def test_freezing_and_head_only(tmp_path):
    split, labels = tiny_split()
    base = {"epochs": 1, "lr": 0.01, "token_budget": 256, "warmup_fraction": 0.0}
    # fine_tune seeds, then builds the model: the same two calls give its initial weights.
    seed_everything(0)
    init = build_classifier(TINY_MODEL, len(labels))[0].state_dict()
    fine_tune(split, labels, TINY_MODEL, {**base, "freeze_layers": 1}, tmp_path / "frozen")
    frozen = state_dict(tmp_path / "frozen" / "best.pt")
    assert torch.equal(frozen["esm.embed_tokens.weight"], init["esm.embed_tokens.weight"])
    assert torch.equal(frozen["esm.layers.0.fc1.weight"], init["esm.layers.0.fc1.weight"])
    assert not torch.equal(frozen["esm.layers.1.fc1.weight"], init["esm.layers.1.fc1.weight"])
    assert not torch.equal(frozen["head.weight"], init["head.weight"])

    fine_tune(split, labels, TINY_MODEL, {**base, "head_only": True}, tmp_path / "head")
    head = state_dict(tmp_path / "head" / "best.pt")
    assert all(torch.equal(head[k], init[k]) for k in init if k.startswith("esm."))
    assert not torch.equal(head["head.weight"], init["head.weight"])


def test_grad_accumulation_and_max_steps(tmp_path):
    split, labels = tiny_split()
    one = fine_tune(split, labels, TINY_MODEL, {"epochs": 2, "token_budget": 256}, tmp_path / "a")
    two = fine_tune(
        split, labels, TINY_MODEL, {"epochs": 2, "token_budget": 256, "grad_accum": 2}, tmp_path / "b"
    )
    batches_per_epoch = one["steps"] // 2
    assert two["steps"] == 2 * -(-batches_per_epoch // 2)  # ceil: a last odd batch is its own step
    capped = fine_tune(
        split, labels, TINY_MODEL, {"epochs": 5, "token_budget": 256, "max_steps": 3}, tmp_path / "c"
    )
    assert capped["steps"] == 3 and capped["epochs_run"] == 1


def test_class_weights_and_schedule():
    w = class_weights(np.array([0] * 30 + [1] * 10 + [2] * 20), 4)
    assert w[3] == 0  # absent class
    assert w[1] / w[0] == pytest.approx(3.0) and w[2] / w[0] == pytest.approx(1.5)
    assert w[:3].mean() == pytest.approx(1.0)
    f = warmup_linear_decay(total_steps=10, warmup_fraction=0.2)
    assert [round(f(s), 3) for s in range(10)] == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]


def test_class_weighting_changes_training(tmp_path):
    split, labels = tiny_split()
    # make class 1 rare in training
    drop = split.index[(split["label"] == labels[0]) & (split["split"] == "train")][4:]
    split = split.drop(drop)
    a = fine_tune(split, labels, TINY_MODEL, {"epochs": 1, "token_budget": 256}, tmp_path / "a")
    b = fine_tune(
        split, labels, TINY_MODEL, {"epochs": 1, "token_budget": 256, "class_weighting": True}, tmp_path / "b"
    )
    assert a["config_hash"] != b["config_hash"]
    assert not same_weights(tmp_path / "a" / "best.pt", tmp_path / "b" / "best.pt")


def test_unknown_label_rejected(tmp_path):
    split, labels = tiny_split()
    with pytest.raises(InputError, match="labels not in the label list: 3"):
        fine_tune(split, labels[:2], TINY_MODEL, {"epochs": 1}, tmp_path)


# -- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"model": {"name": "esm3_large"}}, "model.name: unknown model 'esm3_large'"),
        ({"train": {"lr": -0.001}}, "train.lr"),
        ({"train": {"lr": 0}}, "train.lr"),
        ({"train": {"freeze_layers": 5}}, "train.freeze_layers: the model has only 4 layers"),
        ({"model": {"name": "esm2_t6_8M_UR50D"}, "train": {"freeze_layers": 7}}, "only 6 layers"),
        ({"train": {"grad_accum": 0}}, "train.grad_accum"),
        ({"train": {"token_budget": 0}}, "train.token_budget"),
        ({"train": {"warmup_fraction": 1.5}}, "train.warmup_fraction"),
        ({"train": {"optimizer": "sgd"}}, "Additional properties"),
        ({"model": {"custom": {"num_layers": 2, "embed_dim": 30, "attention_heads": 4}}}, "divisible"),
        (
            {"model": {"pretrained": True}},
            "custom-size model has pretrained weights only from model.checkpoint",
        ),
        ({"model": {"checkpoint": "/x/esm2_t6_8M_UR50D.pt"}}, "model.checkpoint: only used with"),
        ({"model": {"pooling": "max"}}, "model.pooling"),
    ],
)
def test_bad_model_and_train_config_rejected(patch, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        validate_config(patch)
    split, labels = tiny_split(n_per_class=12)
    with pytest.raises(ConfigError, match=message):
        fine_tune(split, labels, patch.get("model", {}), patch.get("train", {}), tmp_path)
