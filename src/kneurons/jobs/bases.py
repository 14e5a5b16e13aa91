"""The same-site bases job (claim 6; ``kneurons.features.bases``, ``kneurons.features.same_site``):
at one SAE's stream, for one replicate, fit the stream's linear bases, score each by every method and
ablate all four bases (the SAE's features included, ranked by the feature jobs' scores) on the test
split under every feature fill, preserve mode, on the fraction grid and on the grid of directions
kept. One job per replicate and SAE: the model and the test proteins are loaded once for every
basis, method and fill. Writes ``features/bases/layer{l}.tsv`` and its ``.pred.npz``
(``kneurons.tables``, as every ablation table).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from kneurons.errors import InputError
from kneurons.vocabulary import FEATURE_FILLS, FEATURE_MODULE

log = logging.getLogger(__name__)


def run_bases_job(
    checkpoint: str | Path,
    split_path: str | Path,
    scoring_set_path: str | Path,
    feature_scores: Mapping[str, str | Path],
    saes: Sequence[Mapping[str, Any]],
    layer: int,
    settings: Mapping[str, Any],
    table_out: str | Path,
    pred_out: str | Path,
    device: torch.device | str = "cpu",
) -> Any:
    """Fit, score and ablate the bases of the stream entering ``layer`` (module docstring); write the
    table and predictions. ``feature_scores``: method -> the SAE features' score table (the feature
    scoring jobs'), which must record the SAEs of ``saes`` (every SAE of the run, as the feature jobs
    attach them; only the one at ``layer`` is kept). ``settings``: ``job_settings('same_site_bases',
    config)``: ``score`` (every method's settings), ``ablate`` (the feature fills, fractions,
    normalisation, random seeds, batching), ``units`` (``bases``, ``directions``), ``model``,
    ``seed``. Returns the ``AblationResult`` written."""
    from kneurons.ablation.engine import default_masks_per_pass
    from kneurons.ablation.run import load_test_set
    from kneurons.features.attach import SAES_KEY, attach_saes, check_same_saes, sae_identities
    from kneurons.features.bases import fit_bases
    from kneurons.features.quality import stream_tokens
    from kneurons.features.same_site import ablate_bases
    from kneurons.features.sizes import direction_counts
    from kneurons.jobs.ablate import job_fills
    from kneurons.model.checkpoint import load_job_classifier
    from kneurons.provenance import check_scores_match_checkpoint
    from kneurons.tables import read_score_table, read_scoring_set, save_result

    device = torch.device(device)
    ab, units, layer = settings["ablate"], settings["units"], int(layer)
    model, info = load_job_classifier(checkpoint, settings, device)
    labels = [str(x) for x in info["labels"]]
    accessions, sequences, y_true = load_test_set(
        split_path, labels, ab.get("max_sequences"), settings["seed"]
    )
    identities = sae_identities(attach_saes(model, saes), saes)
    tables = {}
    for method, path in feature_scores.items():
        scores, meta = read_score_table(path)
        check_scores_match_checkpoint(path, checkpoint, meta)
        check_same_saes(path, meta.get(SAES_KEY), identities)
        tables[method] = scores[(scores["layer"] == layer) & (scores["module"] == FEATURE_MODULE)]
    if layer not in model.saes:
        raise InputError(f"no SAE of units.features reads the stream entering layer {layer}")
    for other in [lay for lay in model.saes if lay != layer]:  # one stream: the other SAEs stay off
        model.detach_sae(other)
    sae = model.saes[layer]
    subset = read_scoring_set(scoring_set_path)
    score_cfg = settings["score"]
    # the stream where the SAE reads it (its input point), residue tokens only for the PCA
    point = replace(sae.input_point, positions="residues")
    h = stream_tokens(model, subset["sequence"].tolist(), [layer], score_cfg["token_budget"], device, point)
    rep = f", replicate of {Path(checkpoint).name}"
    bases = {
        "features": sae,
        **fit_bases(h[layer], layer, units["bases"], settings["seed"], rep, sae.input_point),
    }
    counts = direction_counts(model.embed_dim, units["directions"])
    kinds = [f for f in ab["fills"] if f in FEATURE_FILLS]

    def fills_for() -> list:
        return job_fills(
            kinds,
            model,
            info,
            settings["model"],
            scoring_set_path,
            ab["token_budget"],
            device,
            str(checkpoint),
            modules=(FEATURE_MODULE,),
            seed=settings["seed"],
        )

    merged = ablate_bases(
        model,
        layer,
        bases,
        subset,
        sequences,
        y_true,
        labels,
        fills_for,
        score_cfg["methods"],
        score_cfg,
        ab["fractions"],
        counts,
        ab["random_seeds"],
        feature_scores=tables,
        normalise=ab["normalise"],
        accessions=accessions,
        token_budget=ab["token_budget"],
        masks_per_pass=ab.get("masks_per_pass") or default_masks_per_pass(device),
        device=device,
        bf16=ab["bf16"],
    )
    save_result(table_out, pred_out, merged)
    pca = bases.get("pca")
    if pca is not None:
        top = pca.meta["explained_variance_ratio"][: max(1, min(3, len(counts)))]
        log.info("layer %d: PCA's first components explain %s of the residue variance", layer, top)
    log.info(
        "layer %d: %d rows over %d bases in %.1f s", layer, len(merged.table), len(bases), merged.seconds
    )
    return merged
