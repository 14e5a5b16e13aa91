"""The workflow on a Hugging Face snapshot: the embedded default config with
``model: {pretrained: true, checkpoint: <HF snapshot dir>, name: custom}`` fine-tunes and scores,
and the fine-tuned model's scores equal those of the same weights in fair-esm's layout.

The snapshot is the default's shape (4 layers, 64 dim, 4 heads: ``model.custom``), written from
a random fair-esm backbone; fine-tuning is cut to 2 epochs and the run stops at the score tables.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from kneurons.config import validate_config
from kneurons.model.backends.hf.convert import fair_esm_to_hf, hf_to_fair_esm, write_hf_snapshot
from kneurons.model.checkpoint import load_classifier
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone
from kneurons.scoring.base import score_layer
from kneurons.tables import read_score_table, read_scoring_set

pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[1]
TARGETS = ["results/scores/activation.parquet", "results/scores/ig.parquet"]


@pytest.mark.slow
def test_default_config_on_an_hf_snapshot_scores_like_fair_esm(tmp_path):
    torch.manual_seed(0)
    fe = build_backbone(BackboneSpec("custom", 4, 64, 4))
    state, hf_config = fair_esm_to_hf(fe.state_dict(), 4)
    snapshot = write_hf_snapshot(tmp_path / "snapshot", state, hf_config)

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["model"] = {**config["model"], "pretrained": True, "checkpoint": str(snapshot), "name": "custom"}
    config["train"] = {**config["train"], "epochs": 2}
    config["score"] = {**config["score"], "max_sequences": 24}
    validate_config(yaml.safe_load(yaml.safe_dump(config)))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "1",
        *TARGETS,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    model, info = load_classifier(tmp_path / "results" / "model" / "best.pt")
    assert info["backbone"]["backend"] == "hf" and model.num_layers == 4
    # The fine-tuned HF backbone in fair-esm's layout, with the same head.
    fair = build_backbone(BackboneSpec("custom", 4, 64, 4))
    missing = fair.load_state_dict(
        hf_to_fair_esm(model.esm.state_dict(), info["backbone"]["hf_config"]), strict=False
    ).missing_keys
    assert all(k.startswith("lm_head.") for k in missing), missing
    twin = EsmClassifier(fair, model.num_classes, pooling=model.pooling).eval()
    twin.head.load_state_dict(model.head.state_dict())
    subset = read_scoring_set(tmp_path / "results" / "scores" / "scoring_set.tsv")
    score_cfg = validate_config(yaml.safe_load(yaml.safe_dump(config)))["score"]
    for method in ("activation", "ig"):
        table, _ = read_score_table(tmp_path / "results" / "scores" / f"{method}.parquet")
        assert sorted(table["layer"].unique()) == [0, 1, 2, 3]
        for layer in (0, 3):
            got = table[(table["layer"] == layer) & table["label"].isna()].sort_values(["module", "neuron"])
            want = score_layer(twin, subset, method, layer, score_cfg)
            want = want[want["label"].isna()].sort_values(["module", "neuron"])
            a, b = got["score"].to_numpy(), want["score"].to_numpy()
            assert len(a) == len(b) > 0
            assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max(), (method, layer)
