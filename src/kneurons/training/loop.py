"""Fine-tuning an ESM-2 classifier on EC labels: resumable, seeded, token-budget batches.

``fine_tune`` trains on the ``train`` rows of a split table, early-stops on validation
macro-F1 and writes ``best.pt`` (``save_classifier``), ``metrics.json`` (val and test),
``training_curve.tsv`` and ``run_metadata.json``. After every epoch the whole training
state (``TrainingState``: weights, optimiser, scheduler, RNG states, curve, early-stopping
counters) goes to ``checkpoints/last.pt``; a rerun after a kill resumes there. Batch
composition and order depend only on ``(seed, epoch)``, so on CPU a resumed run ends
bit-identical to an uninterrupted one.

The loop: ``setup_run`` (model, optimiser, schedule), ``resume_or_start``, then per epoch
``_train_epoch``, ``_evaluate`` and ``_early_stopping``; ``_write_outputs`` at the end.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from kneurons.config import sections_with_defaults
from kneurons.io import write_json_atomic
from kneurons.model.batching import token_budget_batches
from kneurons.model.checkpoint import save_classifier, save_tensors
from kneurons.model.classifier import EsmClassifier
from kneurons.model.inference import Batch, run_batches
from kneurons.model.reference import FINE_TUNED_FROM
from kneurons.model.runtime import to_device
from kneurons.model.weights import Downloader
from kneurons.progress import Progress, eta_text, progress_extra
from kneurons.stats.metrics import classification_metrics, macro_f1
from kneurons.tables import write_json_result, write_training_curve
from kneurons.training.optim import class_weights, forward_backward, optimizer_step, warmup_linear_decay
from kneurons.training.setup import TrainRun, config_hash, prepare_data, resume_or_start, setup_run
from kneurons.training.state import TrainingState

__all__ = ["CURVE_COLUMNS", "class_weights", "config_hash", "fine_tune", "predict", "warmup_linear_decay"]

log = logging.getLogger(__name__)

CURVE_COLUMNS = [
    "epoch",
    "step",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "lr",
    "tokens_per_s",
    "seconds",
]


@torch.no_grad()
def predict(
    model: EsmClassifier,
    sequences: Sequence[str],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    what: str = "evaluation",
) -> np.ndarray:
    """Logits (N, K) for ``sequences`` in their given order.

    Evaluated through ``run_batches`` in length-sorted token-budget batches; its progress is logged
    as ``what`` (``kneurons.progress``).
    """
    model.eval()
    out = np.zeros((len(sequences), model.num_classes), dtype=np.float32)
    progress = Progress(what, len(sequences))

    def step(batch: Batch) -> np.ndarray:
        return model(batch.tokens).float().cpu().numpy()

    # Logits are per sequence, so an evaluation batch that runs out of memory is halved and retried.
    for batch, logits in run_batches(model, sequences, step, token_budget, device, bf16, what=what):
        out[batch.index] = logits
        progress.step(len(batch.index))
    return out


# -- one epoch ------------------------------------------------------------------------------------
@dataclass
class _Clock:
    """Wall-clock bookkeeping for the progress log lines."""

    start: float
    steps_at_start: int
    last_log: float


def _epoch_batches(lengths: np.ndarray, token_budget: int, seed: int, epoch: int) -> list[list[int]]:
    # Depends only on (seed, epoch): the data order of a resumed run equals the uninterrupted one.
    return token_budget_batches(lengths, token_budget, shuffle=True, seed=seed * 100_003 + epoch)


def _train_epoch(run: TrainRun, state: TrainingState, clock: _Clock, log_every: int) -> dict[str, float]:
    """Train one epoch (or up to the step cap); ``train_loss``, ``tokens_per_s`` and ``seconds`` of it."""
    model, dev, accum = run.model, run.device, int(run.train_cfg["grad_accum"])
    seqs, y = run.data.seqs_of("train"), run.data.y_of("train")
    model.train()
    t0 = time.perf_counter()
    tokens_seen = 0
    loss_sum, loss_n = torch.zeros((), device=dev), 0
    batches = _epoch_batches(run.lengths, run.token_budget, run.seed, state.epoch)
    run.optimizer.zero_grad(set_to_none=True)
    for b, batch in enumerate(batches):
        group_start = b - b % accum
        group_size = min(accum, len(batches) - group_start)
        tokens = model.tokenize([seqs[i] for i in batch])
        tokens_seen += int((tokens != model.padding_idx).sum())
        target = torch.as_tensor(y[batch])
        loss = forward_backward(
            model,
            to_device(tokens, dev),
            to_device(target, dev),
            run.loss_fn,
            dev,
            run.bf16,
            1.0 / group_size,
        )
        # Summed on the device: no host sync per batch.
        loss_sum = loss_sum + loss * len(batch)
        loss_n += len(batch)
        if (b + 1) % accum and b + 1 < len(batches):
            continue
        optimizer_step(run.trainable, run.optimizer, run.scheduler, run.train_cfg["grad_clip"])
        if run.after_step is not None:
            run.after_step()
        state.step += 1
        now = time.perf_counter()
        # The run's first step (its rate, soon), every log_every steps, and at least every 10 s when
        # steps are slow (the console shows one of these lines every few seconds at most:
        # kneurons.progress).
        first = state.step == clock.steps_at_start + 1
        if first or (log_every and state.step % log_every == 0) or now - clock.last_log > 10:
            clock.last_log = now
            rate = (state.step - clock.steps_at_start) / max(time.perf_counter() - clock.start, 1e-9)
            log.info(
                "epoch %d/%d step %d/%d loss %.4f lr %.2e %.0f tokens/s ETA %s",
                state.epoch + 1,
                run.train_cfg["epochs"],
                state.step,
                run.total_steps,
                float(loss_sum) / max(loss_n, 1),
                run.scheduler.get_last_lr()[0],
                tokens_seen / max(time.perf_counter() - t0, 1e-9),
                eta_text((run.total_steps - state.step) / max(rate, 1e-9)),
                extra=progress_extra(),
            )
        if state.step >= run.total_steps:
            break
    seconds = time.perf_counter() - t0
    return {
        "train_loss": float(loss_sum) / max(loss_n, 1),
        "tokens_per_s": tokens_seen / max(seconds, 1e-9),
        "seconds": seconds,
    }


def _evaluate(
    run: TrainRun, state: TrainingState, trained: dict[str, float]
) -> tuple[dict[str, Any], np.ndarray]:
    """Validate after an epoch: the epoch's curve row, and the validation predictions."""
    val_y = run.data.y_of("val")
    val_logits = predict(
        run.model, run.data.seqs_of("val"), run.token_budget, run.device, run.bf16, what="validation"
    )
    val_pred = val_logits.argmax(1)
    row = {
        "epoch": state.epoch + 1,
        "step": state.step,
        "train_loss": trained["train_loss"],
        "val_accuracy": float((val_pred == val_y).mean()),
        "val_macro_f1": macro_f1(val_y, val_pred, len(run.labels)),
        "val_loss": float(nn.functional.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(val_y))),
        "lr": run.scheduler.get_last_lr()[0],
        "tokens_per_s": trained["tokens_per_s"],
        "seconds": trained["seconds"],
    }
    return row, val_pred


def _early_stopping(
    run: TrainRun, state: TrainingState, row: dict[str, Any], val_pred: np.ndarray, best_state_path: Path
) -> None:
    """Record the epoch; keep the weights of a new best epoch, count the others, stop after patience."""
    state.curve.append(row)
    state.epoch = row["epoch"]
    val_f1, val_loss = row["val_macro_f1"], row["val_loss"]
    # Small validation sets tie on macro-F1 often; the lower validation loss breaks ties.
    if val_f1 > state.best_f1 or (val_f1 == state.best_f1 and val_loss < state.best_val_loss):
        state.best_f1, state.best_val_loss, state.best_epoch = val_f1, val_loss, row["epoch"]
        state.bad_epochs = 0
        state.best_val_pred = val_pred.tolist()
        save_tensors(best_state_path, {k: v.detach().cpu() for k, v in run.model.state_dict().items()})
    else:
        state.bad_epochs += 1
        if state.bad_epochs >= run.train_cfg["early_stopping_patience"]:
            state.stopped = True
    log.info(
        "epoch %d done: train loss %.4f, val accuracy %.4f, val macro-F1 %.4f, %.0f tokens/s, %.1f s%s",
        row["epoch"],
        row["train_loss"],
        row["val_accuracy"],
        val_f1,
        row["tokens_per_s"],
        row["seconds"],
        " (early stop)" if state.stopped else "",
        extra=progress_extra(always=True),
    )


# -- outputs ----------------------------------------------------------------------------------------
def _final_metrics(run: TrainRun, state: TrainingState) -> dict[str, Any]:
    """Val and test metrics of the best weights (which the model holds now)."""
    metrics: dict[str, Any] = {
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
        "steps": state.step,
        "early_stopped": bool(state.stopped),
        "config_hash": run.config_hash,
    }
    # The best epoch's validation predictions were made with these very weights: no second pass.
    metrics["val"] = classification_metrics(run.data.y_of("val"), np.asarray(state.best_val_pred), run.labels)
    if len(run.data.parts["test"]):
        test_logits = predict(
            run.model, run.data.seqs_of("test"), run.token_budget, run.device, run.bf16, what="test"
        )
        metrics["test"] = classification_metrics(run.data.y_of("test"), test_logits.argmax(1), run.labels)
    return metrics


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform()}
    for pkg in ("fair-esm", "numpy", "pandas", "kneurons"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _run_metadata(run: TrainRun, resumed_from: int | None, wall_seconds: float) -> dict[str, Any]:
    dev, parts = run.device, run.data.parts
    return {
        "versions": _versions(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "seed": run.seed,
        "deterministic": bool(run.train_cfg["deterministic"]),
        "bf16_autocast": bool(run.bf16 and dev.type == "cuda"),
        "config_hash": run.config_hash,
        "config": {"model": run.model_cfg, "train": run.train_cfg},
        "n_params": sum(p.numel() for p in run.model.parameters()),
        "n_trainable_params": sum(p.numel() for p in run.model.parameters() if p.requires_grad),
        "model_name": run.spec.name,
        "pretrained": bool(run.model_cfg["pretrained"]),
        "weights_sha256": run.weights_sha256,
        "n_train": len(parts["train"]),
        "n_val": len(parts["val"]),
        "n_test": len(parts["test"]),
        "total_steps": run.total_steps,
        "resumed_from_epoch": resumed_from,
        "wall_seconds_this_run": wall_seconds,
        **({"base_checkpoint": str(run.base)} if run.base is not None else {}),
        **({"planted_units": len(run.planted)} if run.planted is not None else {}),
    }


def _write_outputs(
    run: TrainRun, state: TrainingState, metrics: dict[str, Any], out_dir: Path, run_metadata: dict[str, Any]
) -> None:
    """``best.pt``, ``metrics.json``, ``training_curve.tsv`` and ``run_metadata.json`` in ``out_dir``."""
    meta = {
        "metrics": {
            p: {k: metrics[p][k] for k in ("accuracy", "macro_f1", "n")}
            for p in ("val", "test")
            if p in metrics
        },
        "config_hash": run.config_hash,
        "pretrained": bool(run.model_cfg["pretrained"]),
        "model_name": run.spec.name,
        "weights_sha256": run.weights_sha256,
        "seed": run.seed,
        "best_epoch": state.best_epoch,
    }
    if run.base is not None:  # fine-tuned from a classifier checkpoint: its sha256 is weights_sha256
        meta[FINE_TUNED_FROM] = "checkpoint"
    out_dir.mkdir(parents=True, exist_ok=True)
    save_classifier(out_dir / "best.pt", run.model.cpu(), run.spec, run.labels, meta)
    write_json_result(out_dir / "metrics.json", metrics)
    write_training_curve(pd.DataFrame(state.curve, columns=CURVE_COLUMNS), out_dir / "training_curve.tsv")
    write_json_atomic(out_dir / "run_metadata.json", run_metadata)


# -- the training loop --------------------------------------------------------------------------
def fine_tune(
    split: pd.DataFrame,
    labels: list[str],
    model_cfg: dict[str, Any],
    train_cfg: dict[str, Any],
    out_dir: str | Path,
    seed: int = 0,
    device: str = "cpu",
    *,
    resume: bool = True,
    log_every: int = 20,
    downloader: Downloader | None = None,
    base: str | Path | None = None,
    planted: Sequence[tuple[int, str, int]] | None = None,
) -> dict[str, Any]:
    """Fine-tune an ESM-2 classifier; write ``best.pt``, ``metrics.json``, ``training_curve.tsv`` and
    ``run_metadata.json`` to ``out_dir``.

    ``split`` has columns ``sequence``, ``label`` (strings from ``labels``) and ``split`` in
    {train, val, test}; ``labels`` fixes the output index of each class. ``model_cfg`` and
    ``train_cfg`` are the config sections (missing keys take the schema defaults). With
    ``resume`` a matching ``out_dir/checkpoints/last.pt`` (same config, data and seed) is
    continued; otherwise training starts afresh. Returns the content of ``metrics.json``.

    ``base`` and ``planted`` plant knowledge (``kneurons.planted``): start from the classifier
    checkpoint ``base`` and train only the rows of the ``planted`` units ``(layer, module, neuron)``
    and the head (``[]``: the head alone); ``best.pt`` then records that it was fine-tuned from
    ``base`` (``kneurons.model.reference.FINE_TUNED_FROM``, its sha256 as ``weights_sha256``).
    """
    out_dir = Path(out_dir)
    cfg = sections_with_defaults({"model": model_cfg, "train": train_cfg})
    labels = [str(x) for x in labels]
    data = prepare_data(split, labels)
    run = setup_run(data, labels, cfg["model"], cfg["train"], seed, device, downloader, base, planted)
    ckpt_dir = out_dir / "checkpoints"
    best_state_path = ckpt_dir / "best_state.pt"
    state, resumed_from = resume_or_start(run, ckpt_dir, resume)
    n_params = sum(p.numel() for p in run.model.parameters())
    log.info(
        "fine-tuning %s (%s, %d params, %d trainable) on %s: %d train / %d val / %d test proteins, "
        "%d classes, %d batches/epoch, %d optimiser steps max",
        run.spec.name,
        "pretrained" if run.model_cfg["pretrained"] else "random init",
        n_params,
        sum(p.numel() for p in run.trainable),
        run.device,
        len(data.parts["train"]),
        len(data.parts["val"]),
        len(data.parts["test"]),
        len(labels),
        run.n_batches,
        run.total_steps,
    )

    now = time.perf_counter()
    clock = _Clock(start=now, steps_at_start=state.step, last_log=now)
    epochs = run.train_cfg["epochs"]
    while not state.stopped and state.epoch < epochs and state.step < run.total_steps:
        trained = _train_epoch(run, state, clock, log_every)
        row, val_pred = _evaluate(run, state, trained)
        _early_stopping(run, state, row, val_pred, best_state_path)
        state.save(ckpt_dir / "last.pt", run.config_hash, run.model, run.optimizer, run.scheduler)

    # Final evaluation with the best weights.
    run.model.load_state_dict(torch.load(best_state_path, map_location=run.device, weights_only=True))
    metrics = _final_metrics(run, state)
    run_metadata = _run_metadata(run, resumed_from, time.perf_counter() - clock.start)
    _write_outputs(run, state, metrics, out_dir, run_metadata)
    log.info(
        "best epoch %d: val macro-F1 %.4f%s",
        state.best_epoch,
        state.best_f1,
        f", test accuracy {metrics['test']['accuracy']:.4f}, test macro-F1 {metrics['test']['macro_f1']:.4f}"
        if "test" in metrics
        else "",
        extra=progress_extra(always=True),
    )
    return metrics
