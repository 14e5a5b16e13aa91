"""The planted-knowledge benchmark's model jobs (``kneurons.planted``): the base model, each planting
(and the head-alone control), each planting's ablations under the ``pretrained`` fill with the base
as the reference, and its ground truth. Scoring is the scoring job's (``run_score_job`` with the
base as ``reference_checkpoint``); the data and statistics jobs are torch-free
(``kneurons.jobs.planted_stats``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kneurons.ablation.engine import default_masks_per_pass, evaluate_masks
from kneurons.ablation.fill import make_fill
from kneurons.ablation.masks import layout_of
from kneurons.ablation.run import load_test_set, run_ablation
from kneurons.errors import InputError
from kneurons.jobs.ablate import run_ablation_job
from kneurons.model.checkpoint import load_classifier, load_job_classifier, save_classifier
from kneurons.model.loading import build_classifier, weights_identity
from kneurons.model.reference import FINE_TUNED_FROM, checkpoint_reference, fine_tuned_from
from kneurons.model.runtime import seed_everything
from kneurons.planted.design import draw_units, membership, unit_seed, variant_module
from kneurons.planted.metrics import precision_at
from kneurons.planted.plant import check_planted
from kneurons.planted.recovery import rankings
from kneurons.ranking import NeuronLayout, score_seeds
from kneurons.stats.metrics import accuracy
from kneurons.tables import WEIGHTS_KEY, read_class_labels, read_score_table, read_split, write_json_result
from kneurons.tables.planted import read_planted_units, write_planted_units
from kneurons.tables.results import write_result_table
from kneurons.training.loop import fine_tune

log = logging.getLogger(__name__)


def run_planted_base(classes_path: str | Path, settings: Mapping[str, Any], out: str | Path) -> None:
    """The base model: the configured backbone (its random initialisation is drawn from
    ``model.init_seed``, else ``seed``, as fine-tuning draws it) with a fresh head (drawn with
    ``seed``), never trained on the task; written as a classifier checkpoint ``out``.

    ``settings``: ``model``, ``seed``. Its metadata say what its backbone is (``weights_sha256``:
    ``random-init:<seed>`` or the pretrained file's sha256), as a fine-tuned checkpoint's do.
    """
    labels = read_class_labels(classes_path)
    model_cfg = dict(settings["model"])
    seed = int(settings["seed"])
    init_seed = seed if model_cfg.get("init_seed") is None else int(model_cfg["init_seed"])
    seed_everything(init_seed)
    reseed = None if init_seed == seed else (lambda: seed_everything(seed))
    model, spec = build_classifier(
        model_cfg, len(labels), download=bool(model_cfg.get("download", True)), reseed=reseed
    )
    pretrained = bool(model_cfg.get("pretrained", False))
    meta = {
        "pretrained": pretrained,
        FINE_TUNED_FROM: "pretrained" if pretrained else "random init",
        WEIGHTS_KEY: weights_identity(model_cfg, init_seed),
        "model_name": spec.name,
        "seed": seed,
        "role": "planted benchmark base (never trained on the task)",
    }
    save_classifier(out, model.eval(), spec, labels, meta)
    log.info("base model: %s (%s), %d classes -> %s", spec.name, meta[WEIGHTS_KEY], len(labels), out)


def _plant_settings(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``model`` and ``train`` sections of a planting: ``train`` with ``planted``'s lr, epochs and
    early-stopping patience."""
    pl = settings["planted"]
    train = {
        **settings["train"],
        "lr": pl["lr"],
        "epochs": pl["epochs"],
        "early_stopping_patience": pl["patience"],
    }
    return dict(settings["model"]), train


def run_plant(
    base: str | Path,
    split_path: str | Path,
    classes_path: str | Path,
    variant: str | None,
    replicate: int,
    settings: Mapping[str, Any],
    out: Mapping[str, str | Path],
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """One planting: draw S (``variant``: ``spread`` or ``concentrated``) and fine-tune only its rows
    and the head from ``base``; or, ``variant`` None, the control: the head alone.

    ``out``: ``model``, ``metrics``, ``curve``, ``metadata`` (one directory, as ``run_finetune``'s)
    and, for a planting, ``units`` (``units.tsv``). The written model is checked against the base:
    bit-identical outside S's rows (``check_planted``), or the job fails. ``settings``: ``model``,
    ``train``, ``planted``, ``seed``; replicate ``r`` trains with ``seed + r``.
    """
    out_dir = Path(out["model"]).parent
    base_model, _ = load_classifier(base)
    units: list[tuple[int, str, int]] = []
    if variant is not None:
        pl = settings["planted"]
        table = draw_units(
            layout_of(base_model),
            pl["fraction"],
            unit_seed(settings["seed"], variant, replicate),
            variant_module(variant, pl["concentrated"]),
        )
        write_planted_units(table, out["units"])
        units = [(int(r.layer), str(r.module), int(r.neuron)) for r in table.itertuples()]
        log.info("planting %d units (%s, replicate %d): %s", len(units), variant, replicate, _counts(table))
    model_cfg, train_cfg = _plant_settings(settings)
    metrics = fine_tune(
        read_split(split_path),
        read_class_labels(classes_path),
        model_cfg,
        train_cfg,
        out_dir,
        seed=int(settings["seed"]) + int(replicate),
        device=str(device),
        base=base,
        planted=units,
    )
    planted, _ = load_classifier(out["model"])
    check_planted(planted, base_model, units)
    log.info("the planted model equals the base outside S's %d rows, bit for bit", len(units))
    return metrics


def _counts(units: pd.DataFrame) -> str:
    return ", ".join(f"{m} {n}" for m, n in units["module"].value_counts().sort_index().items())


def run_planted_ablation(
    checkpoint: str | Path,
    base: str | Path,
    split_path: str | Path,
    scores_path: str | Path,
    method: str,
    settings: dict[str, Any],
    out: Mapping[str, Sequence[str | Path]],
    device: torch.device | str = "cpu",
) -> None:
    """The run's ablation grid on one planting: every scope of ``settings["ablate"]["scopes"]`` (in
    order; ``out["tables"]`` / ``out["preds"]`` one path each), under the ``pretrained`` fill with the
    base checkpoint ``base`` as the reference; random: all of ``ablate.random_seeds`` in this job."""
    scopes = list(settings["ablate"]["scopes"])
    if not len(scopes) == len(out["tables"]) == len(out["preds"]):
        raise ValueError(
            f"{len(out['tables'])} tables and {len(out['preds'])} predictions for scopes {scopes}"
        )
    for scope, table, pred in zip(scopes, out["tables"], out["preds"], strict=True):
        run_ablation_job(
            checkpoint,
            split_path,
            scores_path,
            method,
            scope,
            settings,
            table,
            pred,
            device=device,
            reference_checkpoint=base,
        )


def _unit_masks(layout: NeuronLayout, filled: np.ndarray) -> dict[tuple[int, str], np.ndarray]:
    """A mask filling the flat units ``filled`` (bool over ``layout``), per block."""
    return {b: filled[layout.slice(b)] for b in layout.blocks}


def _row_norm_ratio(model: torch.nn.Module, fill: Any, units: pd.DataFrame) -> float:
    """Median over S of ``||W[i]|| / ||W_base[i]||``: how much planting grew the rows it trained (a
    grown row gives larger activations, which activation scores see)."""
    ratios = []
    with torch.no_grad():
        for r in units.itertuples():
            row = model.module(int(r.layer), str(r.module)).weight[int(r.neuron)]
            base = fill.reference[(int(r.layer), str(r.module))][0][int(r.neuron)]
            ratios.append(float(row.norm() / base.norm().clamp_min(1e-12)))
    return float(np.median(ratios))


def run_ground_truth(
    checkpoint: str | Path,
    base: str | Path,
    split_path: str | Path,
    units_path: str | Path,
    scores: Mapping[str, str | Path],
    variant: str,
    replicate: int,
    settings: Mapping[str, Any],
    out: Mapping[str, str | Path],
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """One planting's ground truth on the test split, under the ``pretrained`` fill with ``base``
    as the reference: the accuracy of the planted model, of the base, with S rolled back
    (``rollback_planted``) and with everything but S rolled back (``rollback_others``, whose
    predictions must equal the planted model's: ``rollback_others_identical``); and per method of
    ``scores`` (one table each), its top-|S| neurons preserved and suppressed.

    Writes ``out["ground_truth"]`` (JSON) and ``out["selections"]`` (TSV: method, seed, mode, k,
    accuracy, precision of the selection among S). ``settings``: ``ablate`` (normalise,
    token_budget, masks_per_pass, bf16), ``model.attention``, ``seed``.
    """
    device = torch.device(device)
    ab = settings["ablate"]
    model, info = load_job_classifier(checkpoint, settings, device)
    if fine_tuned_from(info) != "checkpoint":
        raise InputError(
            f"{checkpoint}: not a planted model (it was fine-tuned from {fine_tuned_from(info)})"
        )
    labels = list(info["labels"])
    accessions, sequences, y_true = load_test_set(split_path, labels)
    layout = layout_of(model)
    units = read_planted_units(units_path)
    member = membership(units, layout, str(units_path))
    fill = make_fill("pretrained", model, info, reference=checkpoint_reference(base, info, str(checkpoint)))
    per_pass = ab.get("masks_per_pass") or default_masks_per_pass(device)
    common = {
        "token_budget": ab["token_budget"],
        "masks_per_pass": per_pass,
        "device": device,
        "bf16": ab["bf16"],
    }
    masks = [_unit_masks(layout, member), _unit_masks(layout, ~member), {}]
    rollback_planted, rollback_others, intact = evaluate_masks(model, sequences, masks, fill, **common)
    base_model, _ = load_job_classifier(base, settings, device)
    base_pred = evaluate_masks(base_model, sequences, [{}], None, **common)[0]
    k = int(member.sum())
    rows = []
    for method, path in scores.items():
        table, _ = read_score_table(path)
        seeds = list(settings["ablate"]["random_seeds"]) if method == "random" else None
        result = run_ablation(
            model,
            sequences,
            y_true,
            labels,
            table,
            method,
            "global",
            [k / layout.total],
            ["preserve", "suppress"],
            fill=fill,
            normalise=ab["normalise"],
            random_seeds=seeds,
            accessions=accessions,
            source=str(path),
            **common,
        )
        vecs = dict(
            zip(score_seeds(table), rankings(table, layout, method, ab["normalise"], str(path)), strict=True)
        )
        for row in result.table.itertuples():
            seed = None if pd.isna(row.seed) else int(row.seed)
            if int(row.n_selected) != k:
                raise InputError(f"{path}: selected {row.n_selected} neurons, not |S| = {k}")
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "mode": row.mode,
                    "k": k,
                    "accuracy": float(row.accuracy),
                    "precision": precision_at(vecs[seed], member, k),
                }
            )
    selections = pd.DataFrame(rows)
    selections["seed"] = selections["seed"].astype("Int64")
    truth = {
        "variant": variant,
        "replicate": int(replicate),
        "n_units": k,
        "n_total": layout.total,
        "n_test": len(sequences),
        "modules": units["module"].value_counts().sort_index().to_dict(),
        "accuracy": {
            "planted": accuracy(y_true, intact),
            "base": accuracy(y_true, base_pred),
            "rollback_planted": accuracy(y_true, rollback_planted),
            "rollback_others": accuracy(y_true, rollback_others),
        },
        "rollback_others_identical": bool(np.array_equal(rollback_others, intact)),
        "rollback_others_changed": int((rollback_others != intact).sum()),
        "row_norm_ratio": _row_norm_ratio(model, fill, units),
    }
    write_json_result(out["ground_truth"], truth)
    write_result_table(selections, out["selections"])
    acc = truth["accuracy"]
    log.info(
        "%s replicate %d: planted %.3f, base %.3f, S rolled back %.3f, all but S rolled back %.3f (%s)",
        variant,
        replicate,
        acc["planted"],
        acc["base"],
        acc["rollback_planted"],
        acc["rollback_others"],
        "identical predictions" if truth["rollback_others_identical"] else "PREDICTIONS CHANGED",
    )
    return truth
