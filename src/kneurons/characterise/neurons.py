"""The neuron characterisation: where the top-N IG neurons fire, and whether on annotated sites.

For the top-N neurons of the global IG ranking, per-residue activations on held-out proteins
give each neuron's highest-activating windows, a position frequency matrix, a consensus and a
sequence logo. By default (``windows_from: top_class``) the windows come from the held-out
proteins of the neuron's top class (its largest class-conditional IG score): a class's neuron is
read where it does its work, not where it merely takes its largest values (a neuron may be most
active, as evidence against its class, in another class's proteins; a residue detector fires on
that residue in every class). ``window_class`` and ``window_class_purity`` still describe the
best windows over all held-out proteins. ``site_auroc`` pools all annotated proteins;
``site_auroc_top_class`` only those of the neuron's top class (on synthetic data each class has
its own motif, so a class's neuron is expected to fire on its own class's sites only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kneurons.ablation.masks import layout_of
from kneurons.characterise.activations import residue_activations
from kneurons.characterise.classes import neuron_class_profile, ranked_neurons, split_ig_scores
from kneurons.characterise.sites import SiteAnnotation, held_out_sites, site_enrichment, site_summary
from kneurons.characterise.windows import (
    best_windows,
    consensus,
    orient_responses,
    position_frequency_matrix,
    window_proteins,
    window_responses,
)
from kneurons.errors import InputError
from kneurons.model.classifier import EsmClassifier
from kneurons.ranking import NeuronLayout
from kneurons.stats.multiple import bh_qvalues
from kneurons.vocabulary import MODULE_TYPES, NEURON_KEY

log = logging.getLogger(__name__)

#: Columns of the per-neuron table, in order (``score``/``norm_score`` renamed ``ig_*`` on output).
NEURON_COLUMNS = [
    "rank",
    *NEURON_KEY,
    "score",
    "norm_score",
    "top_class",
    "class_share",
    "in_class_sets",
    "orientation",
    "windows_from",
    "window_consensus",
    "window_class",
    "window_class_purity",
    "n_windows",
    "site_auroc",
    "site_p",
    "site_q",
    "site_auroc_top_class",
    "site_p_top_class",
    "site_q_top_class",
    "n_site_residues",
    "n_residues",
    "annotation",
]
#: Columns of ``characterise/window_activations.tsv``: one row per residue of each best window.
WINDOW_ACTIVATION_COLUMNS = [
    "rank",
    *NEURON_KEY,
    "accession",
    "center",
    "position",
    "residue",
    "response",
]


def top_neurons(
    ig_scores: pd.DataFrame,
    layout: NeuronLayout,
    top_n: int,
    normalise: str = "auto",
    class_sets: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ``top_n`` neurons of the global IG ranking with their top class and class-set membership."""
    overall, per_class = split_ig_scores(ig_scores)
    if overall.empty:
        raise InputError("IG score table has no gold-class rows (rows without `label`)")
    top = ranked_neurons(overall, layout, normalise).head(top_n).reset_index(drop=True)
    top = top.merge(neuron_class_profile(per_class), on=NEURON_KEY, how="left")
    if class_sets is None or class_sets.empty:
        top["in_class_sets"] = np.nan
        return top
    member = (
        class_sets.groupby(NEURON_KEY)["label"]
        .apply(lambda s: ";".join(sorted(map(str, s))))
        .rename("in_class_sets")
    )
    return top.merge(member.reset_index(), on=NEURON_KEY, how="left")


def _windows(
    r_j: list[np.ndarray], seqs: Sequence[str], plabels: np.ndarray, top_class: Any, cfg: dict, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """A neuron's best windows (from the proteins ``windows_from`` picks), those over all, and the source."""
    width, n, per = cfg["window"], cfg["n_windows"], cfg["windows_per_protein"]
    everywhere = best_windows(r_j, seqs, width, n, per, seed)
    pick, source = window_proteins(plabels, top_class, cfg["windows_from"])
    if source == "all":
        return everywhere, everywhere, source
    wins = best_windows([r_j[i] for i in pick], [seqs[i] for i in pick], width, n, per, seed)
    wins["protein"] = pick[wins["protein"].to_numpy(dtype=np.int64)]
    return wins, everywhere, source


def _window_record(wins: pd.DataFrame, everywhere: pd.DataFrame, source: str, cons: str, plabels) -> dict:
    # Where the neuron fires most over *all* proteins, whatever set its windows come from.
    vc = pd.Series(plabels[everywhere["protein"].to_numpy()]).value_counts()
    return {
        "windows_from": source,
        "window_consensus": cons,
        "window_class": vc.index[0] if len(vc) else "",
        "window_class_purity": float(vc.iloc[0] / len(everywhere)) if len(vc) else float("nan"),
        "n_windows": len(wins),
    }


def _site_record(
    r_j: list[np.ndarray], sites: SiteAnnotation, plabels: np.ndarray, cls: Any, permutations: int, seed: int
) -> dict:
    """Site AUROC and p-value of one neuron over all annotated proteins and over its top class's."""
    auc = p = auc_c = p_c = float("nan")
    n_site = n_res = 0
    if sites.annotated.any():
        # Centred per protein: the AUROC asks *where along* a protein the neuron fires, so a
        # neuron that is merely more active in some proteins (a class detector) must not
        # score because those proteins carry more annotated residues.
        c_j = [x - np.median(x) for x in r_j]
        tracks = sites.tracks
        idx = np.flatnonzero(sites.annotated)
        auc, p = site_enrichment([c_j[i] for i in idx], [tracks[i] for i in idx], permutations, seed)
        n_site = int(sum(tracks[i].sum() for i in idx))
        n_res = int(sum(len(tracks[i]) for i in idx))
        idx_c = np.flatnonzero(sites.annotated & (plabels == str(cls)))
        if isinstance(cls, str) and len(idx_c):
            auc_c, p_c = site_enrichment(
                [c_j[i] for i in idx_c], [tracks[i] for i in idx_c], permutations, seed
            )
    return {
        "site_auroc": auc,
        "site_p": p,
        "site_auroc_top_class": auc_c,
        "site_p_top_class": p_c,
        "n_site_residues": n_site,
        "n_residues": n_res,
    }


def _keyed(df: pd.DataFrame, nrow: pd.Series) -> pd.DataFrame:
    """``df`` with the neuron's rank and key columns."""
    return df.assign(
        rank=int(nrow["rank"]), layer=int(nrow["layer"]), module=nrow["module"], neuron=int(nrow["neuron"])
    )


def _neuron_tables(
    top: pd.DataFrame,
    responses: list[np.ndarray],
    proteins: pd.DataFrame,
    plabels: np.ndarray,
    sites: SiteAnnotation,
    cfg: dict[str, Any],
    seed: int,
) -> tuple[list[dict], list[pd.DataFrame], list[pd.DataFrame], list[pd.DataFrame]]:
    """Per top neuron: its record (windows, sites), its windows, its long position frequency matrix
    and the response at every residue of its windows."""
    seqs = proteins["sequence"].astype(str).tolist()
    rows, win_rows, pfm_rows, resp_rows = [], [], [], []
    for j, nrow in top.iterrows():
        r_j = [r[:, j] for r in responses]
        cls = nrow.get("top_class")
        wins, everywhere, source = _windows(r_j, seqs, plabels, cls, cfg, seed + j)
        pfm = position_frequency_matrix(wins["window"], cfg["window"])
        cons = consensus(pfm, cfg["consensus_min_frequency"])
        rec = _window_record(wins, everywhere, source, cons, plabels)
        rows.append(rec | _site_record(r_j, sites, plabels, cls, cfg["permutations"], seed + j))
        at = wins["protein"].to_numpy()
        wl = plabels[at] if len(wins) else np.array([], dtype=str)
        acc = proteins["accession"].to_numpy()[at] if "accession" in proteins.columns else wins["protein"]
        win_rows.append(_keyed(wins, nrow).assign(accession=acc, label=wl).drop(columns=["protein"]))
        long = pfm.reset_index().melt(id_vars="position", var_name="residue", value_name="count")
        pfm_rows.append(_keyed(long, nrow))
        resp = window_responses(r_j, wins, cfg["window"])
        resp["residue"] = [w[i] for w in wins["window"] for i in range(cfg["window"])]
        resp_acc = np.repeat(np.asarray(acc), cfg["window"])
        resp_rows.append(_keyed(resp, nrow).assign(accession=resp_acc).drop(columns=["protein"]))
    return rows, win_rows, pfm_rows, resp_rows


def characterise_neurons(
    model: EsmClassifier,
    ig_scores: pd.DataFrame,
    proteins: pd.DataFrame,
    cfg: dict[str, Any],
    class_sets: pd.DataFrame | None = None,
    normalise: str = "auto",
    device: torch.device | str = "cpu",
    bf16: bool = True,
    seed: int = 0,
    modules: Sequence[str] = MODULE_TYPES,
) -> dict[str, Any]:
    """Characterise the top-N IG neurons on ``proteins`` (held-out rows of split.tsv).

    ``modules``: the units ranked, the neuron modules or ``("sae",)``: the features of the SAEs
    attached to ``model`` (scored by ``ig_scores``), characterised the same way.

    ``cfg`` is the ``characterise`` config section. Returns a dict with ``neurons`` (one row
    per neuron), ``windows`` (their best windows), ``pfm`` (long position frequency matrices),
    ``window_activations`` (the response at every residue of those windows),
    ``summary`` (site AUROC per module type and per layer) and ``info`` (annotation status,
    parse counts).
    """
    top = top_neurons(ig_scores, layout_of(model, modules), cfg["top_n"], normalise, class_sets)
    proteins = proteins.reset_index(drop=True)
    if proteins.empty:
        raise InputError("no held-out proteins to characterise neurons on")
    seqs = proteins["sequence"].astype(str).tolist()
    plabels = (
        proteins["label"].astype(str).to_numpy() if "label" in proteins.columns else np.full(len(seqs), "")
    )
    log.info("per-residue activations of %d neurons on %d proteins", len(top), len(seqs))
    acts = residue_activations(model, seqs, top[NEURON_KEY], cfg["token_budget"], device, bf16)
    responses, sign = orient_responses(acts, cfg["response"], plabels, top["top_class"].tolist())
    top["orientation"] = sign
    sites = held_out_sites(proteins, [len(s) for s in seqs], cfg["site_columns"], cfg["site_flank"])
    log.info("annotations: %s", sites.status)
    rows, win_rows, pfm_rows, resp_rows = _neuron_tables(top, responses, proteins, plabels, sites, cfg, seed)

    neurons = pd.concat([top, pd.DataFrame(rows)], axis=1)
    neurons["site_q"] = bh_qvalues(neurons["site_p"])
    neurons["site_q_top_class"] = bh_qvalues(neurons["site_p_top_class"])
    neurons["annotation"] = sites.status
    neurons = neurons[NEURON_COLUMNS].rename(columns={"score": "ig_score", "norm_score": "ig_norm_score"})
    windows = pd.concat(win_rows, ignore_index=True)
    windows = windows[["rank", *NEURON_KEY, "accession", "label", "center", "value", "window"]]
    pfm_long = pd.concat(pfm_rows, ignore_index=True)[["rank", *NEURON_KEY, "position", "residue", "count"]]
    window_acts = pd.concat(resp_rows, ignore_index=True)[WINDOW_ACTIVATION_COLUMNS]
    return {
        "neurons": neurons,
        "windows": windows,
        "pfm": pfm_long,
        "window_activations": window_acts,
        "summary": site_summary(neurons, cfg["alpha"], sites.status),
        "info": {
            "annotation": sites.status,
            "annotated_proteins": int(sites.annotated.sum()),
            "held_out_proteins": len(seqs),
            "site_columns": sites.present,
            "site_flank": cfg["site_flank"],
            "features_parsed": sites.stats.features,
            "features_unknown_location": sites.stats.unknown_location,
            "positions_beyond_sequence": sites.stats.beyond_sequence,
        },
    }
