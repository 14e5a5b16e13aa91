"""The fine-tuning job: one replicate's classifier from the split and the class table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kneurons.tables import read_class_labels, read_split
from kneurons.training.loop import fine_tune


def run_finetune(
    split_path: str | Path,
    classes_path: str | Path,
    settings: Mapping[str, Any],
    out: Mapping[str, str | Path],
) -> dict[str, Any]:
    """Fine-tune the classifier on the split ``split_path`` with the classes of ``classes_path``
    (their order fixes the output index of each class).

    ``out``: ``model`` (best.pt), ``metrics``, ``curve``, ``metadata``; ``fine_tune`` writes them
    under fixed names into one directory, the directory of ``out["model"]``, which every other path
    must share. ``settings``: the rule's params (``model``, ``train``, ``seed`` (the replicate's),
    ``device``). Returns the content of metrics.json.
    """
    out_dir = Path(out["model"]).parent
    for name in ("metrics", "curve", "metadata"):
        if Path(out[name]).parent != out_dir:
            raise ValueError(f"finetune outputs must share one directory: {out[name]} is not in {out_dir}")
    return fine_tune(
        read_split(split_path),
        read_class_labels(classes_path),
        settings["model"],
        settings["train"],
        out_dir,
        seed=settings["seed"],
        device=settings["device"],
    )
