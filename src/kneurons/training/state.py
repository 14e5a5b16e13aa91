"""The resumable state of a fine-tuning run: progress, weights, optimiser, scheduler and RNG states.

After every epoch ``TrainingState.save`` writes ``checkpoints/last.pt``; ``TrainingState.resume``
restores a run from it when it belongs to the same configuration (``config_hash``). The file
loads with ``weights_only=True`` (numpy's RNG state is stored as a tensor), so a poisoned
file cannot run code. Restoring the RNG states makes a resumed run on CPU bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kneurons.model.checkpoint import save_tensors

log = logging.getLogger(__name__)

STATE_FORMAT = "kneurons-train-state/1"

#: The progress keys in the order they are stored (``best_val_pred`` once a best epoch exists).
PROGRESS_KEYS = ("epoch", "step", "best_f1", "best_val_loss", "best_epoch", "bad_epochs", "curve", "stopped")


@dataclass
class TrainingState:
    """Progress of a run: epochs and optimiser steps done, the curve, and the early-stopping counters.

    ``best_val_pred`` holds the best epoch's validation predictions (made with the weights in
    ``best_state.pt``), so the final validation metrics need no second pass.
    """

    epoch: int = 0
    step: int = 0
    best_f1: float = -1.0
    best_val_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False
    best_val_pred: list[int] | None = None

    def progress(self) -> dict[str, Any]:
        """The progress as stored in ``last.pt`` (key order kept: the file's bytes depend on it)."""
        out = {key: getattr(self, key) for key in PROGRESS_KEYS}
        if self.best_val_pred is not None:
            out["best_val_pred"] = self.best_val_pred
        return out

    def save(
        self,
        path: Path,
        config_hash: str,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> None:
        """Write the whole training state (with the current RNG states) to ``path`` atomically."""
        save_tensors(
            path,
            {
                "format": STATE_FORMAT,
                "config_hash": config_hash,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
                "progress": self.progress(),
            },
        )

    @classmethod
    def resume(
        cls,
        path: Path,
        config_hash: str,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> TrainingState | None:
        """Restore model, optimiser, scheduler and RNG states from ``path``; the progress, or None.

        None (nothing restored) when the file is unreadable, of another format or configuration,
        or written by another version of this code (missing progress fields): such a state is
        not resumable, and the run starts afresh rather than crash.
        """
        saved = load_state(path)
        if saved is None or saved.get("config_hash") != config_hash:
            return None
        progress = saved.get("progress", {})
        if not {*PROGRESS_KEYS, "best_val_pred"} <= set(progress):
            return None
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        return cls(**{key: progress[key] for key in (*PROGRESS_KEYS, "best_val_pred")})


def load_state(path: Path) -> dict | None:
    """The training state in ``path`` (None when unreadable or of another format)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
        log.warning("%s unreadable (%s); starting afresh", path, exc)
        return None
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        return None
    return saved


def rng_state() -> dict[str, Any]:
    """The torch, numpy, Python (and CUDA) RNG states, storable with ``weights_only`` loading."""
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


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states that ``rng_state`` returned."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
