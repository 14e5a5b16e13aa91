"""A batch of proteins explained with every replicate of a finished run (``explain_batch``).

Everything is read from the run's files (``kneurons.explain.run``) and checked before the first
protein is explained: the score tables must be the checkpoints' own, the SAEs the ones their
features were scored with, and every residue in the model's alphabet. A protein per progress line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from kneurons.atlas.page import read_atlas_data
from kneurons.errors import InputError
from kneurons.explain.compute import explain_protein, neuron_layout
from kneurons.explain.proteins import Protein, read_explain_proteins
from kneurons.explain.run import (
    RunFiles,
    RunSettings,
    class_knowledge,
    describe_run,
    resolve_sae_files,
    run_settings,
)
from kneurons.explain.summary import agreement, summarise
from kneurons.explain.units import ExplainSettings, IgSettings, ReplicateModel, knowledge_units

log = logging.getLogger(__name__)


def _ranking(atlas: dict[str, Any]) -> tuple[float, str]:
    return float(atlas["top_fraction"]), str(atlas["normalise"])


def load_replicate(
    files: RunFiles,
    index: int,
    run: RunSettings,
    atlas: dict[str, Any],
    device: torch.device,
    token_budget: int = 8192,
) -> ReplicateModel:
    """One replicate's classifier (with its SAEs), knowledge units and fill (``token_budget``: the
    ``mean`` fill's batches)."""
    from kneurons.features.attach import attach_scored_saes
    from kneurons.jobs.ablate import job_fill
    from kneurons.model.checkpoint import load_classifier
    from kneurons.provenance import check_scores_match_checkpoint
    from kneurons.tables import read_score_table

    rep = files.replicates[index]
    model, info = load_classifier(rep.checkpoint, device, attention=run.model.get("attention", "sdpa"))
    for p in model.parameters():  # gradients are taken w.r.t. unit outputs and embeddings only
        p.requires_grad_(False)
    scores, meta = read_score_table(rep.ig_scores)
    check_scores_match_checkpoint(rep.ig_scores, rep.checkpoint, meta)
    top_fraction, normalise = _ranking(atlas)
    layout = neuron_layout(model)
    neurons = knowledge_units(scores, layout, top_fraction, normalise, str(rep.ig_scores))
    ig = IgSettings.from_meta(meta, str(rep.ig_scores))
    features = feature_layout = None
    if rep.feature_scores is not None:
        from kneurons.ablation.masks import layout_of
        from kneurons.features.attach import SAES_KEY

        f_scores, f_meta = read_score_table(rep.feature_scores)
        check_scores_match_checkpoint(rep.feature_scores, rep.checkpoint, f_meta)
        rep_dir = rep.checkpoint.parent.parent
        run_dir = files.replicates[0].checkpoint.parent.parent
        specs = resolve_sae_files(f_meta.get(SAES_KEY) or [], rep_dir, run_dir, str(rep.feature_scores))
        units = attach_scored_saes(model, specs, rep.feature_scores, f_meta)
        feature_layout = layout_of(model, units)
        features = knowledge_units(f_scores, feature_layout, top_fraction, normalise, str(rep.feature_scores))
        ig = ig.with_shares(f_meta)
    # The run's fill as its ablation built it (mean: the scoring set; pretrained: the weights the run
    # recorded, never downloaded here).
    model_settings = {**run.model, "download": False}
    fill = job_fill(
        run.fill, model, info, model_settings, files.scoring_set, token_budget, device, str(rep.checkpoint)
    )
    return ReplicateModel(
        replicate=rep.replicate,
        model=model,
        labels=list(info["labels"]),
        neurons=neurons,
        features=features,
        fill=fill,
        ig=ig,
        neuron_layout=layout,
        feature_layout=feature_layout,
    )


def unknown_characters(tokenize: Callable[[list[str]], torch.Tensor], chars: set[str]) -> set[str]:
    """The characters of ``chars`` the model's alphabet lacks.

    A character is known when it tokenizes alone to one token between the special ones, and that
    token is not the one a character no alphabet holds (U+E000, private use) gets: its ``<unk>``.
    fair-esm refuses an unknown character outright; ESM C reads it as ``<unk>``.
    """

    def ids(text: str) -> list[int] | None:
        try:
            return tokenize([text])[0].tolist()
        except (KeyError, ValueError, IndexError):
            return None

    probe = ids("\ue000")
    unk = probe[1] if probe is not None and len(probe) == 3 else None
    return {c for c in chars if (t := ids(c)) is None or len(t) != 3 or (unk is not None and t[1] == unk)}


def check_alphabet(model: Any, proteins: Sequence[Protein], path: str | Path) -> None:
    """InputError naming the file and record of the first protein with a residue the model's
    alphabet lacks (``unknown_characters``)."""
    chars = set().union(*(set(p.sequence) for p in proteins)) if proteins else set()
    lacking = unknown_characters(model.tokenize, chars)
    for p in proteins:
        bad = [(i + 1, c) for i, c in enumerate(p.sequence) if c in lacking]
        if bad:
            shown = ", ".join(f"{c} at {i}" for i, c in bad[:5])
            raise InputError(
                f"{path}, record {p.record} (accession {p.accession}): residue(s) {shown} are not in "
                "the model's alphabet"
            )


def atlas_link(atlas: Path, out_dir: Path) -> str:
    """The atlas page relative to ``out_dir`` (a link that works when the page is opened from there)."""
    return Path(os.path.relpath(Path(atlas).resolve(), Path(out_dir).resolve())).as_posix()


def explain_batch(
    files: RunFiles,
    proteins_path: str | Path,
    settings: ExplainSettings,
    out_dir: str | Path,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Explain every protein of ``proteins_path`` with every replicate of the run in ``files``.

    Returns the JSON-ready result (``kneurons.explain.report`` writes it): the run and its
    settings, the input, per protein its notes, sites and per-replicate explanations, and the
    agreement between replicates. ``out_dir`` is where the page will be: atlas links are relative
    to it. Nothing is written here.
    """
    device = torch.device(device)
    run = run_settings(files)
    atlas = read_atlas_data(files.atlas)
    in_atlas = {r["id"] for r in atlas.get("neurons", [])} | {
        r["id"] for r in (atlas.get("features") or {}).get("rows", [])
    }
    replicates = [
        load_replicate(files, i, run, atlas, device, settings.token_budget)
        for i in range(len(files.replicates))
    ]
    labels = replicates[0].labels
    for rm, rep in zip(replicates, files.replicates, strict=True):
        if rm.labels != labels:
            raise InputError(f"{rep.checkpoint}: classes {rm.labels} differ from the main run's {labels}")
    run = RunSettings(**{**run.__dict__, "labels": labels})
    proteins = read_explain_proteins(proteins_path, run)
    check_alphabet(replicates[0].model, proteins, proteins_path)
    link = atlas_link(files.atlas, Path(out_dir))
    classes = {rep.replicate: class_knowledge(rep) for rep in files.replicates}
    began, cpu_began = time.monotonic(), time.process_time()
    out = []
    for i, protein in enumerate(proteins, start=1):
        t0 = time.monotonic()
        per_rep = [explain_protein(rm, protein.sequence, settings, protein.sites) for rm in replicates]
        for r in per_rep:
            for u in r["units"]:
                known = classes[r["replicate"]].get(u["unit"], {})
                u["class_sets"] = known.get("class_sets", [])
                u["specificity"] = known.get("specificity", {})
                # the atlas shows the main run; a unit is the same unit in every replicate
                u["atlas"] = f"{link}#{u['unit']}" if u["unit"] in in_atlas else None
        out.append(
            {
                "accession": protein.accession,
                "record": protein.record,
                "length": protein.length,
                "model_length": len(protein.sequence),
                "sequence": protein.sequence,
                "ec": protein.ec,
                "annotated": protein.annotated,
                "sites": protein.sites,
                "notes": protein.notes,
                "agreement": agreement(per_rep, protein.annotated),
                "replicates": per_rep,
            }
        )
        log.info(
            "explain: protein %d/%d (%s, %d residues): %s, %.2f s",
            i,
            len(proteins),
            protein.accession,
            len(protein.sequence),
            ", ".join(f"replicate {r['replicate']} predicts {r['predicted']}" for r in per_rep),
            time.monotonic() - t0,
        )
    # wall time, and the CPU time of this process (all its threads): the latter does not grow when
    # other jobs share the machine
    seconds, cpu_seconds = time.monotonic() - began, time.process_time() - cpu_began
    n_candidates = [
        {
            "replicate": rm.replicate,
            "neurons": len(rm.neurons),
            "features": None if rm.features is None else len(rm.features),
        }
        for rm in replicates
    ]
    result = {
        "input": {"file": str(proteins_path), "proteins": len(proteins)},
        "run": {
            **describe_run(files),
            "classes": labels,
            "fill": run.fill,
            "fill_source": run.fill_source,
            "labels": {
                "level": run.level,
                "nonstandard": run.nonstandard,
                "long_sequences": run.long_sequences,
                "max_length": run.max_length,
            },
            "top_fraction": _ranking(atlas)[0],
            "normalise": _ranking(atlas)[1],
            "ig": replicates[0].ig.as_json(),
            "knowledge_units": n_candidates,
            "atlas_link": link,
        },
        "settings": {**settings.__dict__, "random_seeds": list(settings.random_seeds), "device": str(device)},
        "proteins": out,
        "seconds": round(seconds, 3),
        "seconds_per_protein": round(seconds / max(1, len(proteins)), 3),
        "cpu_seconds_per_protein": round(cpu_seconds / max(1, len(proteins)), 3),
    }
    result["summary"] = summarise(result)
    return result
