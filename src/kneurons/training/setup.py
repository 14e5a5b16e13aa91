"""Setting up a fine-tuning run: the split as index arrays, model, optimiser, schedule, resume point.

``setup_run`` seeds, then builds the model, optimiser and LR schedule in a fixed order (so the
same seed gives the same initial weights); ``resume_or_start`` restores a matching
``checkpoints/last.pt`` (``TrainingState``) or clears a stale one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from kneurons.errors import InputError
from kneurons.io import sha256_file
from kneurons.model.backends.base import BackboneSpec
from kneurons.model.batching import token_budget_batches
from kneurons.model.checkpoint import load_classifier
from kneurons.model.classifier import EsmClassifier
from kneurons.model.loading import build_classifier, weights_identity
from kneurons.model.runtime import resolve_device, seed_everything
from kneurons.model.weights import Downloader
from kneurons.planted.plant import plant_rows
from kneurons.training.optim import apply_freezing, class_weights, make_optimizer, warmup_linear_decay
from kneurons.training.state import TrainingState

log = logging.getLogger(__name__)


def config_hash(obj: Any) -> str:
    """Short sha256 of a JSON-serialisable object (key order independent)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _data_fingerprint(split: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for seq, lab, part in zip(split["sequence"], split["label"], split["split"], strict=True):
        h.update(f"{seq}\t{lab}\t{part}\n".encode())
    return h.hexdigest()[:16]


# -- the data of a run ----------------------------------------------------------------------------
@dataclass
class TrainData:
    """The split table as index arrays: sequences, class indices, and the rows of each part."""

    seqs: list[str]
    y: np.ndarray
    parts: dict[str, np.ndarray]
    fingerprint: str

    def seqs_of(self, part: str) -> list[str]:
        """Sequences of ``part`` (train, val or test) in table order."""
        return [self.seqs[i] for i in self.parts[part]]

    def y_of(self, part: str) -> np.ndarray:
        """Class indices of ``part`` in table order."""
        return self.y[self.parts[part]]


def prepare_data(split: pd.DataFrame, labels: list[str]) -> TrainData:
    """Check the split table (columns, labels, non-empty train and val) and index it."""
    for col in ("sequence", "label", "split"):
        if col not in split.columns:
            raise InputError(f"split table lacks column {col!r}")
    split = split.reset_index(drop=True)
    index = {lab: i for i, lab in enumerate(labels)}
    missing = sorted(set(split["label"].astype(str)) - set(index))
    if missing:
        raise InputError(f"split table has labels not in the label list: {', '.join(missing[:10])}")
    y = split["label"].astype(str).map(index).to_numpy(dtype=np.int64)
    parts = {p: np.flatnonzero(split["split"].to_numpy() == p) for p in ("train", "val", "test")}
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise InputError(
            f"fine-tuning needs train and val rows; got {len(parts['train'])} train, {len(parts['val'])} val"
        )
    return TrainData(split["sequence"].astype(str).tolist(), y, parts, _data_fingerprint(split))


# -- setup ------------------------------------------------------------------------------------------
@dataclass
class TrainRun:
    """What one fine-tuning run works with, built once by ``setup_run``."""

    data: TrainData
    labels: list[str]
    model_cfg: dict[str, Any]
    train_cfg: dict[str, Any]
    seed: int
    device: torch.device
    config_hash: str
    weights_sha256: str
    model: EsmClassifier
    spec: BackboneSpec
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loss_fn: nn.Module
    lengths: np.ndarray
    n_batches: int
    total_steps: int
    trainable: list[torch.Tensor]
    #: Run after every optimiser step (planting: put the frozen rows back); None for a plain run.
    after_step: Callable[[], None] | None = None
    #: The classifier checkpoint the run started from (None: the configured backbone).
    base: Path | None = None
    #: The units whose rows train (planting; ``[]``: the head alone); None for a plain run.
    planted: list[tuple[int, str, int]] | None = None

    @property
    def bf16(self) -> bool:
        """bf16 autocast requested (it applies on CUDA only)."""
        return bool(self.train_cfg["bf16"])

    @property
    def token_budget(self) -> int:
        """Padded tokens per batch, for training and evaluation."""
        return int(self.train_cfg["token_budget"])


def _start_from(
    base: Path, labels: list[str], model_cfg: dict[str, Any], seed: int, deterministic: bool
) -> tuple[EsmClassifier, BackboneSpec, str]:
    """The classifier checkpoint ``base`` (backbone and head) as a run's starting model, its spec and
    its identity (the file's sha256); the run's randomness (data order) comes from ``seed``."""
    seed_everything(seed, deterministic)
    model, info = load_classifier(base, attention=model_cfg.get("attention", "sdpa"))
    if list(info["labels"]) != labels:
        raise InputError(f"{base}: the base model's classes {info['labels']} are not the task's {labels}")
    model.train()
    return model, BackboneSpec(**info["backbone"]), sha256_file(base)


def setup_run(
    data: TrainData,
    labels: list[str],
    model_cfg: dict[str, Any],
    train_cfg: dict[str, Any],
    seed: int,
    device: str,
    downloader: Downloader | None,
    base: Path | None = None,
    planted: Sequence[tuple[int, str, int]] | None = None,
) -> TrainRun:
    """Seed, then build model, optimiser and LR schedule (this order fixes the initial weights).

    A random backbone is drawn from ``model.init_seed`` (None: ``seed``); when that differs from
    ``seed``, everything after the backbone (head, data order, dropout) is reseeded with ``seed``.
    Replicates (one ``seed`` each, one ``init_seed``) thus fine-tune the very same backbone, and a
    run whose two seeds agree draws exactly what it drew before replicates existed.

    ``base``: start from this classifier checkpoint (backbone and head) instead; its sha256 is the
    run's weights identity. ``planted``: train only these units' rows and the head
    (``kneurons.planted.plant``; ``[]``: the head alone), whatever ``train.freeze_layers`` and
    ``train.head_only`` say; the frozen rows are put back after every step.
    """
    dev = resolve_device(device)
    deterministic = train_cfg["deterministic"]
    if base is not None:
        model, spec, weights = _start_from(Path(base), labels, model_cfg, seed, deterministic)
    else:
        init_seed = model_cfg.get("init_seed")
        init_seed = seed if init_seed is None else int(init_seed)
        seed_everything(init_seed, deterministic)
        reseed = None if init_seed == seed else (lambda: seed_everything(seed, deterministic))
        model, spec = build_classifier(model_cfg, len(labels), downloader=downloader, reseed=reseed)
        weights = weights_identity(model_cfg, init_seed)
    log.info("backbone weights: %s", weights)
    # The weights' content, not only the checkpoint's path: a replaced file must not be resumed.
    fingerprint = {
        "model": model_cfg,
        "train": train_cfg,
        "labels": labels,
        "seed": seed,
        "data": data.fingerprint,
        "weights": weights,
    }
    if planted is not None:
        fingerprint["planted"] = [list(u) for u in planted]
    model.to(dev)
    after_step = None
    if planted is not None:
        planting = plant_rows(model, planted)
        after_step = partial(planting.restore, model)
        log.info(
            "planting: %d units' rows and the head train; every other weight stays the base's", len(planted)
        )
    else:
        apply_freezing(model, train_cfg["freeze_layers"], train_cfg["head_only"])
    optimizer = make_optimizer(model, train_cfg["lr"], train_cfg["weight_decay"])

    lengths = np.array([len(s) for s in data.seqs_of("train")])
    n_batches = len(token_budget_batches(lengths, int(train_cfg["token_budget"])))
    total_steps = math.ceil(n_batches / int(train_cfg["grad_accum"])) * int(train_cfg["epochs"])
    if train_cfg["max_steps"] is not None:
        total_steps = min(total_steps, int(train_cfg["max_steps"]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear_decay(total_steps, train_cfg["warmup_fraction"])
    )
    train_y = data.y_of("train")
    weight = class_weights(train_y, len(labels)).to(dev) if train_cfg["class_weighting"] else None
    return TrainRun(
        data=data,
        labels=labels,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        seed=seed,
        device=dev,
        config_hash=config_hash(fingerprint),
        weights_sha256=weights,
        model=model,
        spec=spec,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=nn.CrossEntropyLoss(weight=weight),
        lengths=lengths,
        n_batches=n_batches,
        total_steps=total_steps,
        trainable=[p for p in model.parameters() if p.requires_grad],
        after_step=after_step,
        base=None if base is None else Path(base),
        planted=None if planted is None else [tuple(u) for u in planted],
    )


def resume_or_start(run: TrainRun, ckpt_dir: Path, resume: bool) -> tuple[TrainingState, int | None]:
    """The progress to continue from (restoring the run's state from ``last.pt``), and its epoch."""
    last_path = ckpt_dir / "last.pt"
    if resume and last_path.is_file():
        state = TrainingState.resume(last_path, run.config_hash, run.model, run.optimizer, run.scheduler)
        if state is not None:
            log.info(
                "resuming from %s: epoch %d done, step %d, best val macro-F1 %.4f",
                last_path,
                state.epoch,
                state.step,
                state.best_f1,
            )
            return state, state.epoch
        log.warning("%s belongs to another configuration, data or code version; starting afresh", last_path)
        shutil.rmtree(ckpt_dir)
    elif ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    return TrainingState(), None
