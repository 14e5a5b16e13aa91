"""Fine-tuning an ESM-2 classifier on EC labels: resumable, seeded, token-budget batches.

``fine_tune`` trains on the ``train`` rows of a split table, early-stops on validation
macro-F1 and writes ``best.pt`` (``save_classifier``), ``metrics.json`` (val and test),
``training_curve.tsv`` and ``run_metadata.json``. After every epoch the whole training
state (weights, optimiser, scheduler, RNG states, curve, early-stopping counters) goes to
``checkpoints/last.pt``; a rerun after a kill resumes there. Batch composition and order
depend only on ``(seed, epoch)``, so on CPU a resumed run ends bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import pickle
import platform
import random
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from kneurons.config import load_schema
from kneurons.errors import InputError
from kneurons.io import atomic_path, write_json_atomic
from kneurons.model.batching import run_adaptive, token_budget_batches
from kneurons.model.classifier import EsmClassifier, get_alphabet, save_classifier, tokenize
from kneurons.model.pretrained import Downloader, build_classifier
from kneurons.model.runtime import autocast, resolve_device, seed_everything, to_device
from kneurons.stats.metrics import classification_metrics, macro_f1
from kneurons.tables import write_json_result, write_training_curve

log = logging.getLogger(__name__)

STATE_FORMAT = "kneurons-train-state/1"
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


# -- configuration --------------------------------------------------------------------------
def section_defaults(section: str) -> dict[str, Any]:
    """Defaults of a top-level config section, read from the schema (nested objects filled too)."""

    def fill(schema: dict) -> Any:
        if schema.get("type") == "object" and "properties" in schema:
            out = copy.deepcopy(schema.get("default", {}))
            for key, sub in schema["properties"].items():
                if key not in out and ("default" in sub or sub.get("type") == "object"):
                    out[key] = fill(sub)
                elif isinstance(out.get(key), dict) and sub.get("type") == "object":
                    out[key] = {**fill(sub), **out[key]}
            return out
        return copy.deepcopy(schema.get("default"))

    return fill(load_schema()["properties"][section])


def _merged(section: str, given: dict[str, Any] | None) -> dict[str, Any]:
    out = section_defaults(section)
    for key, value in (given or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def check_train_config(model_cfg: dict[str, Any], train_cfg: dict[str, Any]) -> None:
    """Validate the ``model`` and ``train`` sections through the one validation function."""
    from kneurons.config import validate_config

    validate_config({"model": model_cfg, "train": train_cfg})


def config_hash(obj: Any) -> str:
    """Short sha256 of a JSON-serialisable object (key order independent)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _data_fingerprint(split: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for seq, lab, part in zip(split["sequence"], split["label"], split["split"], strict=True):
        h.update(f"{seq}\t{lab}\t{part}\n".encode())
    return h.hexdigest()[:16]


# -- data -------------------------------------------------------------------------------------
def _label_indices(split: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    index = {str(lab): i for i, lab in enumerate(labels)}
    missing = sorted(set(split["label"].astype(str)) - set(index))
    if missing:
        raise InputError(f"split table has labels not in the label list: {', '.join(missing[:10])}")
    return split["label"].astype(str).map(index).to_numpy(dtype=np.int64)


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 over the classes present (0 for absent ones)."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    w = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    present = counts > 0
    w[present] *= present.sum() / w[present].sum()
    return torch.tensor(w, dtype=torch.float32)


@torch.no_grad()
def predict(
    model: EsmClassifier,
    sequences: Sequence[str],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> np.ndarray:
    """Logits (N, K) for ``sequences`` in their given order, evaluated in length-sorted token-budget batches."""
    device = torch.device(device)
    model.eval()
    alphabet = get_alphabet()
    out = np.zeros((len(sequences), model.num_classes), dtype=np.float32)
    lengths = [len(s) for s in sequences]

    def step(batch: list[int]) -> np.ndarray:
        tokens = to_device(tokenize([sequences[i] for i in batch], alphabet), device)
        with autocast(device, bf16):
            return model(tokens).float().cpu().numpy()

    # Logits are per sequence, so an evaluation batch that runs out of memory is halved and retried.
    for batch, logits in run_adaptive(
        step, token_budget_batches(lengths, token_budget), lengths, "evaluation"
    ):
        out[batch] = logits
    return out


# -- optimisation ------------------------------------------------------------------------------
def _apply_freezing(model: EsmClassifier, freeze_layers: int, head_only: bool) -> None:
    """Freeze what is not trained; the LM and contact heads are never used by the classifier."""
    for p in model.esm.parameters():
        p.requires_grad_(not head_only)
    for p in list(model.esm.contact_head.parameters()) + list(model.esm.lm_head.parameters()):
        p.requires_grad_(False)
    if head_only:
        return
    if freeze_layers > 0:
        model.esm.embed_tokens.weight.requires_grad_(False)
        for layer in model.esm.layers[:freeze_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)


def _make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Biases and layer-norm scales are not decayed (the usual AdamW practice).
        (no_decay if p.ndim < 2 or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def warmup_linear_decay(total_steps: int, warmup_fraction: float):
    """LR multiplier: linear warmup over ``warmup_fraction`` of the steps, then linear decay to 0."""
    warmup = round(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def forward_backward(
    model: EsmClassifier,
    tokens: torch.Tensor,
    target: torch.Tensor,
    loss_fn: nn.Module,
    device: torch.device,
    bf16: bool,
    scale: float = 1.0,
) -> torch.Tensor:
    """Loss of one batch (returned detached); its gradient times ``scale`` is added to ``.grad``."""
    with autocast(device, bf16):
        logits = model(tokens)
    loss = loss_fn(logits.float(), target)
    (loss * scale).backward()
    return loss.detach()


def optimizer_step(
    params: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    grad_clip: float | None,
) -> None:
    """Clip the gradient norm of ``params``, step optimiser and scheduler, clear the gradients."""
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _rng_state() -> dict[str, Any]:
    # numpy's state as a tensor so that last.pt loads with weights_only=True.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _epoch_batches(lengths: np.ndarray, token_budget: int, seed: int, epoch: int) -> list[list[int]]:
    # Depends only on (seed, epoch): the data order of a resumed run equals the uninterrupted one.
    return token_budget_batches(lengths, token_budget, shuffle=True, seed=seed * 100_003 + epoch)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform()}
    for pkg in ("fair-esm", "numpy", "pandas", "kneurons"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


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
) -> dict[str, Any]:
    """Fine-tune an ESM-2 classifier and write ``best.pt``, ``metrics.json``, ``training_curve.tsv``, ``run_metadata.json``.

    ``split`` has columns ``sequence``, ``label`` (strings from ``labels``) and ``split`` in
    {train, val, test}; ``labels`` fixes the output index of each class. ``model_cfg`` and
    ``train_cfg`` are the config sections (missing keys take the schema defaults). With
    ``resume`` a matching ``out_dir/checkpoints/last.pt`` (same config, data and seed) is
    continued; otherwise training starts afresh. Returns the content of ``metrics.json``.
    """
    out_dir = Path(out_dir)
    model_cfg = _merged("model", model_cfg)
    train_cfg = _merged("train", train_cfg)
    check_train_config(model_cfg, train_cfg)
    labels = [str(x) for x in labels]
    for col in ("sequence", "label", "split"):
        if col not in split.columns:
            raise InputError(f"split table lacks column {col!r}")
    split = split.reset_index(drop=True)
    y_all = _label_indices(split, labels)
    parts = {p: np.flatnonzero(split["split"].to_numpy() == p) for p in ("train", "val", "test")}
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise InputError(
            f"fine-tuning needs train and val rows; got {len(parts['train'])} train, {len(parts['val'])} val"
        )
    seqs = split["sequence"].astype(str).tolist()
    train_idx = parts["train"]
    train_seqs = [seqs[i] for i in train_idx]
    train_y = y_all[train_idx]
    val_seqs = [seqs[i] for i in parts["val"]]
    val_y = y_all[parts["val"]]

    dev = resolve_device(device)
    seed_everything(seed, train_cfg["deterministic"])
    bf16 = bool(train_cfg["bf16"])
    fingerprint = {
        "model": model_cfg,
        "train": train_cfg,
        "labels": labels,
        "seed": seed,
        "data": _data_fingerprint(split),
    }
    chash = config_hash(fingerprint)

    model, spec = build_classifier(model_cfg, len(labels), downloader=downloader)
    model.to(dev)
    _apply_freezing(model, train_cfg["freeze_layers"], train_cfg["head_only"])
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = _make_optimizer(model, train_cfg["lr"], train_cfg["weight_decay"])
    trainable = [p for p in model.parameters() if p.requires_grad]

    lengths = np.array([len(s) for s in train_seqs])
    token_budget = int(train_cfg["token_budget"])
    accum = int(train_cfg["grad_accum"])
    n_batches = len(token_budget_batches(lengths, token_budget))
    steps_per_epoch = math.ceil(n_batches / accum)
    total_steps = steps_per_epoch * int(train_cfg["epochs"])
    if train_cfg["max_steps"] is not None:
        total_steps = min(total_steps, int(train_cfg["max_steps"]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear_decay(total_steps, train_cfg["warmup_fraction"])
    )
    weight = class_weights(train_y, len(labels)).to(dev) if train_cfg["class_weighting"] else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)

    ckpt_dir = out_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    best_state_path = ckpt_dir / "best_state.pt"
    state = {
        "epoch": 0,
        "step": 0,
        "best_f1": -1.0,
        "best_val_loss": math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
        "curve": [],
        "stopped": False,
    }
    resumed_from = None
    if resume and last_path.is_file():
        saved = _load_state(last_path)
        # A state from another configuration, or written by another version of this code
        # (missing progress fields), is not resumable: start afresh rather than crash.
        if (
            saved is not None
            and saved.get("config_hash") == chash
            and set(state) | {"best_val_pred"} <= set(saved.get("progress", {}))
        ):
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            _set_rng_state(saved["rng"])
            state = saved["progress"]
            resumed_from = state["epoch"]
            log.info(
                "resuming from %s: epoch %d done, step %d, best val macro-F1 %.4f",
                last_path, state["epoch"], state["step"], state["best_f1"],
            )  # fmt: skip
        else:
            log.warning(
                "%s belongs to another configuration, data or code version; starting afresh", last_path
            )
            shutil.rmtree(ckpt_dir)
    elif ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)

    log.info(
        "fine-tuning %s (%s, %d params, %d trainable) on %s: %d train / %d val / %d test proteins, "
        "%d classes, %d batches/epoch, %d optimiser steps max",
        spec.name, "pretrained" if model_cfg["pretrained"] else "random init", n_params, n_trainable, dev,
        len(train_idx), len(parts["val"]), len(parts["test"]), len(labels), n_batches, total_steps,
    )  # fmt: skip

    alphabet = get_alphabet()
    t_start = last_log = time.perf_counter()
    steps_at_start = state["step"]
    while not state["stopped"] and state["epoch"] < train_cfg["epochs"] and state["step"] < total_steps:
        epoch = state["epoch"]
        model.train()
        t0 = time.perf_counter()
        tokens_seen = 0
        loss_sum, loss_n = torch.zeros((), device=dev), 0
        batches = _epoch_batches(lengths, token_budget, seed, epoch)
        optimizer.zero_grad(set_to_none=True)
        for b, batch in enumerate(batches):
            group_start = b - b % accum
            group_size = min(accum, len(batches) - group_start)
            tokens = tokenize([train_seqs[i] for i in batch], alphabet)
            tokens_seen += int((tokens != alphabet.padding_idx).sum())
            target = torch.as_tensor(train_y[batch])
            loss = forward_backward(
                model, to_device(tokens, dev), to_device(target, dev), loss_fn, dev, bf16, 1.0 / group_size
            )
            # Summed on the device: no host sync per batch.
            loss_sum = loss_sum + loss * len(batch)
            loss_n += len(batch)
            if (b + 1) % accum and b + 1 < len(batches):
                continue
            optimizer_step(trainable, optimizer, scheduler, train_cfg["grad_clip"])
            state["step"] += 1
            now = time.perf_counter()
            # Every log_every steps, and at least once a minute when steps are slow.
            if (log_every and state["step"] % log_every == 0) or now - last_log > 60:
                last_log = now
                elapsed = time.perf_counter() - t_start
                rate = (state["step"] - steps_at_start) / max(elapsed, 1e-9)
                log.info(
                    "epoch %d step %d/%d loss %.4f lr %.2e %.0f tokens/s ETA %s",
                    epoch + 1, state["step"], total_steps, float(loss_sum) / max(loss_n, 1),
                    scheduler.get_last_lr()[0], tokens_seen / max(time.perf_counter() - t0, 1e-9),
                    _fmt_eta((total_steps - state["step"]) / max(rate, 1e-9)),
                )  # fmt: skip
            if state["step"] >= total_steps:
                break
        seconds = time.perf_counter() - t0
        val_logits = predict(model, val_seqs, token_budget, dev, bf16)
        val_pred = val_logits.argmax(1)
        val_acc = float((val_pred == val_y).mean())
        val_f1 = macro_f1(val_y, val_pred, len(labels))
        val_loss = float(nn.functional.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(val_y)))
        row = {
            "epoch": epoch + 1,
            "step": state["step"],
            "train_loss": float(loss_sum) / max(loss_n, 1),
            "val_accuracy": val_acc,
            "val_macro_f1": val_f1,
            "val_loss": val_loss,
            "lr": scheduler.get_last_lr()[0],
            "tokens_per_s": tokens_seen / max(seconds, 1e-9),
            "seconds": seconds,
        }
        state["curve"].append(row)
        state["epoch"] = epoch + 1
        # Small validation sets tie on macro-F1 often; the lower validation loss breaks ties.
        if val_f1 > state["best_f1"] or (val_f1 == state["best_f1"] and val_loss < state["best_val_loss"]):
            state.update(best_f1=val_f1, best_val_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0,
                         best_val_pred=val_pred.tolist())  # fmt: skip
            _save_tensors(best_state_path, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            state["bad_epochs"] += 1
            if state["bad_epochs"] >= train_cfg["early_stopping_patience"]:
                state["stopped"] = True
        log.info(
            "epoch %d done: train loss %.4f, val accuracy %.4f, val macro-F1 %.4f, %.0f tokens/s, %.1f s%s",
            epoch + 1, row["train_loss"], val_acc, val_f1, row["tokens_per_s"], seconds,
            " (early stop)" if state["stopped"] else "",
        )  # fmt: skip
        _save_tensors(
            last_path,
            {
                "format": STATE_FORMAT,
                "config_hash": chash,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(),
                "progress": state,
            },
        )

    # Final evaluation with the best weights.
    model.load_state_dict(torch.load(best_state_path, map_location=dev, weights_only=True))
    metrics: dict[str, Any] = {
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "steps": state["step"],
        "early_stopped": bool(state["stopped"]),
        "config_hash": chash,
    }
    # The best epoch's validation predictions were made with these very weights: no second pass.
    metrics["val"] = classification_metrics(val_y, np.asarray(state["best_val_pred"]), labels)
    if len(parts["test"]):
        test_pred = predict(model, [seqs[i] for i in parts["test"]], token_budget, dev, bf16).argmax(1)
        metrics["test"] = classification_metrics(y_all[parts["test"]], test_pred, labels)
    meta = {
        "metrics": {
            p: {k: metrics[p][k] for k in ("accuracy", "macro_f1", "n")}
            for p in ("val", "test")
            if p in metrics
        },
        "config_hash": chash,
        "pretrained": bool(model_cfg["pretrained"]),
        "model_name": spec.name,
        "seed": seed,
        "best_epoch": state["best_epoch"],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_classifier(out_dir / "best.pt", model.cpu(), spec, labels, meta)
    write_json_result(out_dir / "metrics.json", metrics)
    write_training_curve(pd.DataFrame(state["curve"], columns=CURVE_COLUMNS), out_dir / "training_curve.tsv")
    write_json_atomic(
        out_dir / "run_metadata.json",
        {
            "versions": _versions(),
            "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev)
            if dev.type == "cuda"
            else platform.processor() or "cpu",
            "torch_threads": torch.get_num_threads(),
            "seed": seed,
            "deterministic": bool(train_cfg["deterministic"]),
            "bf16_autocast": bool(bf16 and dev.type == "cuda"),
            "config_hash": chash,
            "config": {"model": model_cfg, "train": train_cfg},
            "n_params": n_params,
            "n_trainable_params": n_trainable,
            "model_name": spec.name,
            "pretrained": bool(model_cfg["pretrained"]),
            "n_train": len(train_idx),
            "n_val": len(parts["val"]),
            "n_test": len(parts["test"]),
            "total_steps": total_steps,
            "resumed_from_epoch": resumed_from,
            "wall_seconds_this_run": time.perf_counter() - t_start,
        },
    )
    log.info(
        "best epoch %d: val macro-F1 %.4f%s",
        state["best_epoch"], state["best_f1"],
        f", test accuracy {metrics['test']['accuracy']:.4f}, test macro-F1 {metrics['test']['macro_f1']:.4f}"
        if "test" in metrics else "",
    )  # fmt: skip
    return metrics


def _save_tensors(path: Path, obj: Any) -> None:
    # A file object keeps the bytes reproducible (torch.save(path) embeds the temporary name).
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def _load_state(path: Path) -> dict | None:
    """The training state in ``last.pt`` (None when unreadable or of another format)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
        log.warning("%s unreadable (%s); starting afresh", path, exc)
        return None
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        return None
    return saved
