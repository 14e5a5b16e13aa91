"""One ablation job in library form: every mask of a (method, scope) on the test split, as metrics.

``run_ablation`` builds the masks from a score table (``kneurons.ablation.masks``), evaluates them
with the engine under every fill of the job (one evaluation: the fills share the batches, the
unmasked prefix and the intact pass) and returns the metric rows, fill-major, with the predictions
and target log-probabilities behind them (``AblationResult``, written by
``kneurons.tables.save_result``); ``load_test_set`` reads the proteins it runs on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kneurons.ablation.engine import evaluate_fills
from kneurons.ablation.fill import Fill
from kneurons.ablation.masks import Mask, build_masks, layout_of, metrics_table
from kneurons.data.split import stratified_subset
from kneurons.errors import InputError
from kneurons.model.classifier import MODULE_TYPES, EsmClassifier
from kneurons.progress import progress_callback
from kneurons.tables import AblationResult, read_external_proteins, read_split_rows

log = logging.getLogger(__name__)


def run_ablation(
    model: EsmClassifier,
    sequences: Sequence[str],
    y_true: np.ndarray,
    labels: Sequence[str],
    scores: pd.DataFrame,
    method: str,
    scope: str,
    fractions: Sequence[float],
    modes: Sequence[str] = ("preserve", "suppress"),
    fill: Fill | Sequence[Fill] | None = None,
    normalise: str = "auto",
    random_seeds: Sequence[int] | None = None,
    accessions: Sequence[str] | None = None,
    token_budget: int = 8192,
    masks_per_pass: int = 1,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    source: str = "score table",
    modules: Sequence[str] = MODULE_TYPES,
) -> AblationResult:
    """Evaluate every mask of one (method, scope) job on the test sequences, under every fill.

    ``fill``: one fill or several (``ablate.fills``; zero by default): the rows are fill-major,
    each fill's rows in the same order, with the fill named in the ``fill`` column. ``method ==
    "random"`` evaluates one selection per seed of ``random_seeds``. ``modules``: the units ranked
    and masked, the neuron modules (the default) or ``("sae",)``: the features of the model's
    attached SAEs (the score table then scores those features).
    """
    fills = [Fill()] if fill is None else [fill] if isinstance(fill, Fill) else list(fill)
    layout = layout_of(model, modules)
    seeds = list(random_seeds) if method == "random" else None
    if method == "random" and not seeds:
        raise InputError("ablate.random_seeds: at least one seed is needed for the random baseline")
    keys, masks = build_masks(scores, layout, method, scope, fractions, modes, normalise, seeds, source)
    return evaluate_rows(
        model,
        sequences,
        y_true,
        labels,
        keys,
        masks,
        fills,
        accessions,
        token_budget,
        masks_per_pass,
        device,
        bf16,
        what=f"{method} / {scope}",
    )


def evaluate_rows(
    model: EsmClassifier,
    sequences: Sequence[str],
    y_true: np.ndarray,
    labels: Sequence[str],
    keys: pd.DataFrame,
    masks: Sequence[Mask],
    fills: Sequence[Fill],
    accessions: Sequence[str] | None = None,
    token_budget: int = 8192,
    masks_per_pass: int = 1,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    what: str = "ablation",
) -> AblationResult:
    """The rows ``keys`` (one per mask of ``masks``, as ``build_masks`` makes them) under every fill
    of ``fills`` in one evaluation (with the intact model), as metric rows, fill-major, with the
    predictions and target log-probabilities behind them."""
    t0 = time.perf_counter()
    kinds = [f.kind for f in fills]
    if not kinds or len(set(kinds)) != len(kinds):
        raise InputError(f"ablate.fills: each fill once, at least one, got {kinds}")
    log.info(
        "%s: %d masks x %d fill(s) (%s) on %d test sequences",
        *(what, len(masks), len(fills), ", ".join(kinds), len(sequences)),
    )
    progress = progress_callback(
        f"ablation {what}, {len(masks)} masks x {len(fills)} fill(s)", "batches", log
    )

    y_true = np.asarray(y_true, dtype=np.int64)
    ev = evaluate_fills(
        model,
        sequences,
        [*masks, {}],
        fills,
        y_true,
        token_budget,
        masks_per_pass,
        device=device,
        bf16=bf16,
        progress=progress,
    )
    tables = []
    for kind, pred, logp in zip(kinds, ev.pred, ev.logp, strict=True):
        rows = keys.copy()
        rows.insert(rows.columns.get_loc("seed") + 1, "fill", kind)
        tables.append(metrics_table(rows, pred[:-1], y_true, labels, logp[:-1]))
    return AblationResult(
        table=pd.concat(tables, ignore_index=True),
        preds=np.concatenate([p[:-1] for p in ev.pred]),
        full_pred=ev.pred[0, -1],
        y_true=y_true,
        accessions=np.asarray(
            accessions if accessions is not None else [str(i) for i in range(len(sequences))], dtype=str
        ),
        seconds=time.perf_counter() - t0,
        logp=np.concatenate([lp[:-1] for lp in ev.logp]),
        full_logp=ev.logp[0, -1],
    )


def load_test_set(
    split_path: str | Path, labels: Sequence[str], max_sequences: int | None = None, seed: int = 0
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(accessions, sequences, label indices)`` of the test split of ``split.tsv`` (checkpoint label order).

    ``max_sequences`` keeps a label-stratified subset drawn with ``seed`` (``ablate.max_sequences``:
    every mask costs a pass over the evaluated proteins). Raises InputError naming the file and
    line of a label the model does not know, and when the split has no test proteins.
    """
    test = read_split_rows(split_path, "test", labels, "the ablation evaluates on the test split")
    test = stratified_subset(test, max_sequences, seed)
    return (
        test["accession"].to_numpy(dtype=str),
        test["sequence"].tolist(),
        test["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy(dtype=np.int64),
    )


def load_external_set(
    path: str | Path, labels: Sequence[str], max_sequences: int | None = None, seed: int = 0
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(accessions, sequences, label indices)`` of a labelled external set
    (``external/<name>/proteins.tsv``); ``max_sequences`` keeps a label-stratified subset drawn with
    ``seed``, as ``load_test_set`` does for the test split (``ablate.max_sequences`` caps both)."""
    ext = read_external_proteins(path)
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted(set(ext["label"]) - set(index))
    if unknown:
        raise InputError(f"{path}: labels {unknown} are not classes of the model ({list(labels)})")
    evaluated = stratified_subset(ext, max_sequences, seed)
    if len(evaluated) < len(ext):
        log.info(
            "%s: %d of %d proteins evaluated (ablate.max_sequences, stratified)",
            path,
            len(evaluated),
            len(ext),
        )
    ext = evaluated
    return (
        ext["accession"].to_numpy(dtype=str),
        ext["sequence"].tolist(),
        ext["label"].map(index).to_numpy(dtype=np.int64),
    )
