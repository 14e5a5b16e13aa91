"""What do knowledge neurons know? Class-specific neurons and where neurons fire along sequences.

Two analyses, both on the fine-tuned classifier and the IG score table:

* **Class-specific knowledge neurons.** From the class-conditional IG rows (column ``label``)
  each class gets its own neuron set: the top fraction ``f`` of all neurons, or (Dai et al.
  2022) those above ``threshold`` x the class's largest score. Neurons are ranked exactly as
  the ``global`` ablation scope ranks them (``kneurons.ablation.selection``, ``ablate.normalise``; its
  ``auto`` default leaves IG unnormalised, since attributions share one unit across modules). Overlaps
  between classes are Jaccard indices. Suppressing class ``c``'s set (``ablate.fill``, through
  ``kneurons.ablation.engine.evaluate_masks``) and measuring every class's recall on the held-out
  split gives a class x class matrix of recall change; class ``c``'s *specificity* compares its
  own recall drop with the mean drop of the other classes, against random sets with the same
  number of neurons in every module (seeded).

* **Where neurons fire.** For the top-N neurons of the global IG ranking, per-residue
  activations on held-out proteins give each neuron's highest-activating windows, a position
  frequency matrix, a consensus and a sequence logo. By default (``windows_from: top_class``)
  the windows come from the held-out proteins of the neuron's top class (its largest
  class-conditional IG score): a class's neuron is read where it does its work, not where it
  merely takes its largest values (a neuron may be most active, as evidence against its class,
  in another class's proteins; a residue detector fires on that residue in every class).
  ``window_class`` and ``window_class_purity`` still describe the best windows over all
  held-out proteins. Where residue annotations exist
  (UniProt active/binding sites, synthetic ``motif_sites``), each neuron's per-residue response,
  centred on each protein's median, is scored by AUROC for "annotated residue (+- flank) vs
  not" within annotated proteins (unannotated proteins are left out: a missing annotation is
  not a negative), with a permutation p-value (site tracks circularly shifted within each
  protein, which keeps the number and runs of sites and the autocorrelation of activations)
  and Benjamini-Hochberg q-values across neurons. ``site_auroc`` pools all annotated proteins;
  ``site_auroc_top_class`` only those of the neuron's top class (on synthetic data each class
  has its own motif, so a class's neuron is expected to fire on its own class's sites only).

A neuron's *response* is its activation oriented so that "firing" is large. All modes but
``signed`` centre on the neuron's median over held-out residues (q/k/v/fc1 outputs have no
preferred sign). ``top_class`` (default) takes the sign under which the neuron is more active in
proteins of its top class than in the others (IG credits it to that class, so that direction is
what it does for the class); ``tail`` flips the sign when the heavier tail is negative (also
the fallback of ``top_class`` for a neuron without a top class or held-out labels); ``signed``
takes the raw value; ``abs`` the distance from the median.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sstats

from kneurons.ablation.engine import Fill, Mask, evaluate_masks, layout_of
from kneurons.ablation.selection import (
    NeuronLayout,
    normalise_per_module,
    rank_order,
    score_vector,
    top_k_count,
)
from kneurons.data.features import ParseStats, annotation_columns, site_positions
from kneurons.errors import InputError
from kneurons.model.batching import token_budget_batches
from kneurons.model.classifier import EsmClassifier, get_alphabet, tokenize
from kneurons.model.runtime import autocast, to_device
from kneurons.stats.metrics import confusion_matrix, per_class_scores

log = logging.getLogger(__name__)

NEURON_KEY = ["layer", "module", "neuron"]
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
NO_ANNOTATION = "no residue annotations in the data"
ORIENTATIONS = ("top_class", "tail", "signed", "abs")
WINDOW_SOURCES = ("top_class", "all")


# -- score tables ---------------------------------------------------------------------------
def split_ig_scores(scores: pd.DataFrame, source: str = "ig scores") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an IG score table into its gold-class rows and its class-conditional rows (``label``)."""
    missing = [c for c in (*NEURON_KEY, "score") if c not in scores.columns]
    if missing:
        raise InputError(f"{source}: score table lacks column(s) {missing}")
    if "label" not in scores.columns:
        return scores.copy(), scores.iloc[0:0].assign(label=pd.Series(dtype=str))
    is_class = scores["label"].notna()
    overall = scores[~is_class].drop(columns=["label"])
    per_class = scores[is_class].copy()
    per_class["label"] = per_class["label"].astype(str)
    return overall.reset_index(drop=True), per_class.reset_index(drop=True)


def _frame(layout: NeuronLayout, values: np.ndarray, order: np.ndarray) -> pd.DataFrame:
    """Neuron key columns for flat indices ``order`` of ``layout`` with their ``values``."""
    block = layout.block_ids()[order]
    return pd.DataFrame(
        {
            "layer": [layout.blocks[b][0] for b in block],
            "module": [layout.blocks[b][1] for b in block],
            "neuron": order - layout.offsets[block],
            "norm_score": values[order],
        }
    )


def ranked_neurons(
    scores: pd.DataFrame, layout: NeuronLayout, normalise: str = "auto", source: str = "ig scores"
) -> pd.DataFrame:
    """Every neuron ranked by its (``normalise``-d, ``kneurons.ablation.selection`` rules) IG score, best first.

    ``scores`` holds one row per neuron (no ``label``). Returns ``rank`` (1-based), the key
    columns, ``score`` and ``norm_score``.
    """
    raw = score_vector(scores, layout, source=source)
    norm = normalise_per_module(raw, layout, normalise, method="ig")
    order = rank_order(norm)
    df = _frame(layout, norm, order)
    df.insert(3, "score", raw[order])
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df


# -- class-specific neurons -----------------------------------------------------------------
def select_class_neurons(
    class_scores: pd.DataFrame,
    layout: NeuronLayout,
    method: str = "top_fraction",
    fraction: float = 0.01,
    threshold: float = 0.2,
    normalise: str = "auto",
) -> pd.DataFrame:
    """Each class's knowledge neurons from class-conditional scores.

    Within a class, neurons are ranked exactly as the global ablation scope ranks them
    (``ranked_neurons``). ``top_fraction``: the top
    ``fraction`` of all neurons (round half up, at least one). ``relative_threshold``: neurons
    whose normalised score exceeds ``threshold`` x the class's largest (Dai et al. 2022).
    Returns ``label, rank, layer, module, neuron, score, norm_score``.
    """
    if class_scores.empty:
        raise InputError("no class-conditional IG rows (column `label`); enable score.ig.class_conditional")
    parts = []
    for label, g in class_scores.groupby("label", sort=True):
        ranked = ranked_neurons(
            g.drop(columns=["label"]), layout, normalise, source=f"ig scores of class {label}"
        )
        if method == "top_fraction":
            keep = ranked.head(max(1, top_k_count(fraction, layout.total)))
        elif method == "relative_threshold":
            best = ranked["norm_score"].iloc[0]
            keep = ranked[ranked["norm_score"] > threshold * best] if best > 0 else ranked.head(1)
        else:
            raise InputError(
                f"unknown class selection method {method!r}; use top_fraction or relative_threshold"
            )
        parts.append(keep.assign(label=str(label)))
    out = pd.concat(parts, ignore_index=True)
    return out[["label", "rank", *NEURON_KEY, "score", "norm_score"]]


def _keys(df: pd.DataFrame) -> set[tuple[int, str, int]]:
    return set(zip(df["layer"].astype(int), df["module"].astype(str), df["neuron"].astype(int), strict=False))


def class_overlap(class_sets: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Pairwise overlap of the class neuron sets and the number of neurons shared by all classes.

    Returns ``(table, shared_by_all)``; the table has ``class_a, class_b, n_a, n_b, n_shared, jaccard``
    for every ordered pair (diagonal included, Jaccard 1) so it pivots straight into a matrix.
    """
    sets = {label: _keys(g) for label, g in class_sets.groupby("label", sort=True)}
    rows = []
    for a, sa in sets.items():
        for b, sb in sets.items():
            union = len(sa | sb)
            rows.append(
                {
                    "class_a": a,
                    "class_b": b,
                    "n_a": len(sa),
                    "n_b": len(sb),
                    "n_shared": len(sa & sb),
                    "jaccard": len(sa & sb) / union if union else float("nan"),
                }
            )
    shared = set.intersection(*sets.values()) if sets else set()
    return pd.DataFrame(rows), len(shared)


def neuron_class_profile(class_scores: pd.DataFrame) -> pd.DataFrame:
    """Per neuron, the class with the largest class-conditional score and that class's share.

    ``class_share`` = positive part of the top class's score / sum of positive parts over
    classes: 1 for a neuron that supports one class only, ``1/K`` for one that supports all alike.
    """
    if class_scores.empty:
        return pd.DataFrame(columns=[*NEURON_KEY, "top_class", "class_share"])
    wide = class_scores.pivot_table(index=NEURON_KEY, columns="label", values="score", aggfunc="mean")
    pos = wide.clip(lower=0).fillna(0.0)
    total = pos.sum(axis=1)
    out = pd.DataFrame(
        {
            "top_class": wide.idxmax(axis=1).astype(str),
            "class_share": (pos.max(axis=1) / total.where(total > 0)).astype(float),
        }
    )
    return out.reset_index()


def as_mask(neurons: pd.DataFrame, layout: NeuronLayout) -> Mask:
    """An ablation mask that fills the listed neurons (only the modules they touch)."""
    mask: Mask = {}
    sizes = dict(zip(layout.blocks, layout.sizes, strict=False))
    for (layer, module), g in neurons.groupby(["layer", "module"], sort=True):
        block = (int(layer), str(module))
        v = np.zeros(sizes[block], dtype=bool)
        v[g["neuron"].astype(int).to_numpy()] = True
        mask[block] = v
    return mask


def random_matched_mask(neurons: pd.DataFrame, layout: NeuronLayout, rng: np.random.Generator) -> Mask:
    """A random mask with as many filled neurons in every (layer, module) as ``neurons`` has."""
    mask: Mask = {}
    sizes = dict(zip(layout.blocks, layout.sizes, strict=False))
    for (layer, module), g in neurons.groupby(["layer", "module"], sort=True):
        block = (int(layer), str(module))
        v = np.zeros(sizes[block], dtype=bool)
        v[rng.choice(sizes[block], size=len(g), replace=False)] = True
        mask[block] = v
    return mask


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of every class (NaN for classes absent from ``y_true``)."""
    s = per_class_scores(confusion_matrix(y_true, y_pred, n_classes))
    return np.where(s["support"] > 0, s["recall"], np.nan)


def _own_other(drops: np.ndarray, c: int) -> tuple[float, float]:
    others = np.delete(drops, c)
    return float(drops[c]), float(np.nanmean(others)) if np.isfinite(others).any() else float("nan")


def _ratio(own: float, other: float, floor: float) -> float:
    """Own drop over the others' mean drop; the denominator is floored so that it stays finite."""
    return max(own, 0.0) / max(other, floor) if np.isfinite(other) else float("nan")


def class_suppression(
    model: EsmClassifier,
    sequences: Sequence[str],
    y_true: np.ndarray,
    labels: Sequence[str],
    class_sets: pd.DataFrame,
    fill: Fill | None = None,
    random_sets: int = 20,
    seed: int = 0,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Suppress each class's neurons; recall change of every class, and each class's specificity.

    All masks (each class's set and ``random_sets`` random sets per class with the same number
    of neurons in every module) go through ``kneurons.ablation.engine.evaluate_masks`` in one call.
    Returns ``(matrix, specificity)``. ``matrix``: ``suppressed, evaluated, recall_base,
    recall, recall_change`` for every pair of classes. ``specificity`` per suppressed class:
    ``n_neurons, drop_own, drop_other`` (mean over the other classes), ``specificity_diff``
    (own - other), ``specificity_ratio`` (own / other, the denominator floored at one protein's
    recall, ``1 / smallest class support``, so it stays finite), the same two statistics over the
    random sets (mean, 2.5 and 97.5 percentiles) and an empirical one-sided p-value for the
    difference, ``(1 + #random >= observed) / (1 + random_sets)``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    k = len(labels)
    layout = layout_of(model)
    label_index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted(set(class_sets["label"]) - set(label_index))
    if unknown:
        raise InputError(
            f"class-conditional scores name class(es) {unknown}, which the model does not have ({list(labels)})"
        )
    rng = np.random.default_rng(seed)
    groups = list(class_sets.groupby("label", sort=True))
    masks: list[Mask] = [{}]
    for _, g in groups:
        masks.append(as_mask(g, layout))
        masks.extend(random_matched_mask(g, layout, rng) for _ in range(random_sets))
    log.info("class suppression: %d masks on %d held-out proteins", len(masks), len(sequences))
    preds = evaluate_masks(model, sequences, masks, fill, token_budget, device=device, bf16=bf16)
    base = per_class_recall(y_true, preds[0], k)
    support = np.bincount(y_true, minlength=k)
    floor = 1.0 / int(support[support > 0].min()) if (support > 0).any() else 1.0
    matrix_rows, spec_rows = [], []
    for gi, (label, g) in enumerate(groups):
        c = label_index[label]
        at = 1 + gi * (1 + random_sets)
        recall = per_class_recall(y_true, preds[at], k)
        for j, lab in enumerate(labels):
            matrix_rows.append(
                {
                    "suppressed": label,
                    "evaluated": lab,
                    "recall_base": base[j],
                    "recall": recall[j],
                    "recall_change": recall[j] - base[j],
                }
            )
        own, other = _own_other(base - recall, c)
        diff = own - other
        rand = [
            _own_other(base - per_class_recall(y_true, preds[at + 1 + r], k), c) for r in range(random_sets)
        ]
        rd = np.array([o - t for o, t in rand])
        rr = np.array([_ratio(o, t, floor) for o, t in rand])
        row: dict[str, Any] = {
            "class": label,
            "n_neurons": len(g),
            "support": int(support[c]),
            "recall_base": base[c],
            "drop_own": own,
            "drop_other": other,
            "specificity_diff": diff,
            "specificity_ratio": _ratio(own, other, floor),
            "random_sets": random_sets,
            "random_diff_mean": float(np.nanmean(rd)) if random_sets else float("nan"),
            "random_diff_lo": float(np.nanpercentile(rd, 2.5)) if random_sets else float("nan"),
            "random_diff_hi": float(np.nanpercentile(rd, 97.5)) if random_sets else float("nan"),
            "random_ratio_mean": float(np.nanmean(rr)) if random_sets else float("nan"),
            "random_ratio_lo": float(np.nanpercentile(rr, 2.5)) if random_sets else float("nan"),
            "random_ratio_hi": float(np.nanpercentile(rr, 97.5)) if random_sets else float("nan"),
            "p_value": float((1 + (rd >= diff - 1e-12).sum()) / (1 + random_sets))
            if random_sets
            else float("nan"),
        }
        spec_rows.append(row)
        log.info("class %s: %d neurons, own recall drop %.3f, others %.3f", label, len(g), own, other)
    return pd.DataFrame(matrix_rows), pd.DataFrame(spec_rows)


@torch.no_grad()
def residue_activations(
    model: EsmClassifier,
    sequences: Sequence[str],
    neurons: pd.DataFrame,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> list[np.ndarray]:
    """Per protein an ``(L, N)`` array: each listed neuron's activation at each residue.

    Columns follow the row order of ``neurons``; BOS/EOS/padding are dropped, so row ``i`` is
    residue ``i + 1`` (1-based). Only layers up to the deepest listed one are run.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    neurons = neurons.reset_index(drop=True)
    groups = {
        (int(layer), str(module)): (
            g.index.to_numpy().copy(),
            torch.as_tensor(g["neuron"].astype(int).to_numpy().copy()),
        )
        for (layer, module), g in neurons.groupby(["layer", "module"], sort=True)
    }
    captured: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for key, (_, idx) in groups.items():

        def hook(_mod, _inp, out, key=key, idx=idx):
            captured[key] = out[..., idx.to(out.device)].float()

        handles.append(model.module(*key).register_forward_hook(hook))
    alphabet = get_alphabet()
    result: list[np.ndarray | None] = [None] * len(sequences)
    stop = int(neurons["layer"].max()) + 1
    try:
        for batch in token_budget_batches([len(s) for s in sequences], token_budget):
            tokens = to_device(tokenize([sequences[i] for i in batch], alphabet), device)
            with autocast(device, bf16):
                x, pm = model.embed(tokens)
                model.run_layers(x, pm, 0, stop)
            acts = torch.empty(tokens.shape[1], tokens.shape[0], len(neurons))  # (T, B, N)
            for key, (cols, _) in groups.items():
                acts[:, :, torch.from_numpy(cols)] = captured[key].cpu()
            for b, i in enumerate(batch):
                result[i] = acts[1 : 1 + len(sequences[i]), b].numpy().copy()
    finally:
        for h in handles:
            h.remove()
    return result  # type: ignore[return-value]


# -- responses, windows, logos --------------------------------------------------------------
def orient_responses(
    acts: list[np.ndarray],
    mode: str = "tail",
    protein_labels: Sequence[str] | None = None,
    neuron_classes: Sequence[Any] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Turn raw activations into responses where "firing" is large; returns ``(responses, sign)``.

    ``tail``: ``sign x (a - median)`` with the sign of the heavier tail (99.5th vs 0.5th
    percentile distance from the median); ``top_class``: the same centring, with the sign under
    which the neuron responds more in proteins of its top class (``neuron_classes``, one per
    neuron) than in the other proteins (``protein_labels``, one per protein), compared as the
    mean over proteins of each protein's mean activation; a neuron without a top class, or whose
    class holds none or all of the proteins, keeps the ``tail`` sign; ``signed``: ``a``;
    ``abs``: ``|a - median|``.
    """
    if mode not in ORIENTATIONS:
        raise InputError(f"unknown response mode {mode!r}; use {', '.join(ORIENTATIONS)}")
    flat = np.concatenate(acts, axis=0) if acts else np.zeros((0, 0))
    n = flat.shape[1] if flat.ndim == 2 else 0
    sign = np.ones(n)
    if mode == "signed":
        return [a.astype(np.float64) for a in acts], sign
    med = np.median(flat, axis=0)
    if mode == "abs":
        return [np.abs(a - med) for a in acts], sign
    hi = np.percentile(flat, 99.5, axis=0) - med
    lo = med - np.percentile(flat, 0.5, axis=0)
    sign = np.where(lo > hi, -1.0, 1.0)
    if mode == "top_class" and protein_labels is not None and neuron_classes is not None and acts:
        labels = np.asarray([str(x) for x in protein_labels])
        means = np.stack([a.mean(axis=0) for a in acts])  # (proteins, neurons)
        for j, cls in enumerate(neuron_classes):
            own = labels == str(cls) if isinstance(cls, str) else np.zeros(len(labels), dtype=bool)
            if own.any() and not own.all():
                diff = means[own, j].mean() - means[~own, j].mean()
                if diff != 0:
                    sign[j] = np.sign(diff)
    return [(a - med) * sign for a in acts], sign


def window_proteins(
    protein_labels: np.ndarray, top_class: Any, mode: str = "top_class"
) -> tuple[np.ndarray, str]:
    """Indices of the proteins a neuron's best windows come from, and which set that is.

    ``top_class``: the proteins of the neuron's top class (``all`` where it has none or the
    class has no proteins here); ``all``: every protein.
    """
    if mode not in WINDOW_SOURCES:
        raise InputError(f"unknown windows_from {mode!r}; use {', '.join(WINDOW_SOURCES)}")
    if mode == "top_class" and isinstance(top_class, str):
        own = np.flatnonzero(np.asarray(protein_labels) == top_class)
        if len(own):
            return own, "top_class"
    return np.arange(len(protein_labels)), "all"


def best_windows(
    responses: Sequence[np.ndarray],
    sequences: Sequence[str],
    width: int = 9,
    n_windows: int = 20,
    per_protein: int = 1,
    seed: int | None = 0,
) -> pd.DataFrame:
    """The ``n_windows`` highest-responding windows of one neuron (``responses``: one 1-D array per protein).

    Each window is centred on a peak residue (``center``, 1-based) and padded with ``-`` at
    sequence ends; at most ``per_protein`` non-overlapping peaks are taken from each protein.
    Returns ``protein, center, value, window`` sorted by value, best first.

    Ties are common (in layer 0, ``v_proj`` depends on the residue alone, so every occurrence of
    a residue responds the same): they are broken at random with ``seed``, between residues of a
    protein and between proteins, so neither the N-terminus nor the order of the proteins (a
    split sorted by class) decides which windows are read. ``seed=None`` takes the first.
    """
    left = (width - 1) // 2
    right = width - 1 - left
    rng = np.random.default_rng(seed) if seed is not None else None
    rows = []
    for p, (r, seq) in enumerate(zip(responses, sequences, strict=False)):
        r = np.asarray(r, dtype=np.float64).copy()
        for _ in range(min(per_protein, len(r))):
            best = r.max() if len(r) else -np.inf
            if not np.isfinite(best):
                break
            tied = np.flatnonzero(r == best)
            i = int(tied[0] if rng is None or len(tied) == 1 else rng.choice(tied))
            padded = "-" * left + seq + "-" * right
            rows.append(
                {"protein": p, "center": i + 1, "value": float(r[i]), "window": padded[i : i + width]}
            )
            r[max(0, i - width + 1) : i + width] = -np.inf
    df = pd.DataFrame(rows, columns=["protein", "center", "value", "window"])
    if rng is not None and len(df):
        df = df.iloc[rng.permutation(len(df))]
    return df.sort_values("value", ascending=False, kind="stable").head(n_windows).reset_index(drop=True)


def position_frequency_matrix(windows: Iterable[str], width: int) -> pd.DataFrame:
    """Counts of the 20 standard residues at each window position (rows 0..width-1; gaps ignored)."""
    counts = np.zeros((width, len(AMINO_ACIDS)), dtype=np.int64)
    index = {a: j for j, a in enumerate(AMINO_ACIDS)}
    for w in windows:
        for i, a in enumerate(w[:width]):
            j = index.get(a)
            if j is not None:
                counts[i, j] += 1
    return pd.DataFrame(counts, columns=list(AMINO_ACIDS), index=pd.RangeIndex(width, name="position"))


def consensus(pfm: pd.DataFrame, min_frequency: float = 0.3) -> str:
    """Most frequent residue per position, ``-`` where it makes up less than ``min_frequency``."""
    total = pfm.sum(axis=1).to_numpy()
    best = pfm.to_numpy().argmax(axis=1)
    freq = np.divide(pfm.to_numpy().max(axis=1), total, out=np.zeros(len(pfm)), where=total > 0)
    return "".join(pfm.columns[b] if f >= min_frequency else "-" for b, f in zip(best, freq, strict=False))


def motif_match(cons: str, motif: str) -> int:
    """Best number of motif residues matched by the consensus over all (partial) alignments.

    The motif may hang over either end of the consensus by up to half its length; unmatched or
    overhanging motif residues count as misses.
    """
    best = 0
    for offset in range(-(len(motif) // 2), len(cons) - len(motif) + len(motif) // 2 + 1):
        hits = sum(1 for j, a in enumerate(motif) if 0 <= offset + j < len(cons) and cons[offset + j] == a)
        best = max(best, hits)
    return best


# -- site enrichment ------------------------------------------------------------------------
def site_tracks(
    lengths: Sequence[int], sites: Sequence[Sequence[int] | None], flank: int = 0
) -> list[np.ndarray | None]:
    """Per protein a boolean track: residue within ``flank`` of an annotated site (None if unannotated)."""
    tracks: list[np.ndarray | None] = []
    for n, pos in zip(lengths, sites, strict=False):
        if pos is None:
            tracks.append(None)
            continue
        t = np.zeros(n, dtype=bool)
        for p in pos:
            t[max(0, p - 1 - flank) : min(n, p + flank)] = True
        tracks.append(t)
    return tracks


def _auroc_from_ranks(ranks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC (Mann-Whitney) of fixed ranks under one or many label vectors (last axis = residues)."""
    n1 = labels.sum(axis=-1)
    n0 = labels.shape[-1] - n1
    u = (ranks * labels).sum(axis=-1) - n1 * (n1 + 1) / 2.0
    return u / np.maximum(n1 * n0, 1)


def auroc(values: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``values`` for boolean ``labels`` (ties count half)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(_auroc_from_ranks(sstats.rankdata(values), labels.astype(np.float64)))


def site_enrichment(
    responses: Sequence[np.ndarray],
    tracks: Sequence[np.ndarray],
    permutations: int = 1000,
    seed: int = 0,
    chunk: int = 64,
) -> tuple[float, float]:
    """AUROC of one neuron's per-residue response for site residues, and its permutation p-value.

    Only annotated proteins are passed in. The null circularly shifts every protein's site track
    by a random offset: the number and runs of sites per protein stay, their positions move.
    One-sided: p = (1 + #null AUROC >= observed) / (1 + permutations).
    """
    values = np.concatenate(responses)
    labels = np.concatenate(tracks).astype(np.float64)
    if labels.sum() == 0 or labels.sum() == len(labels):
        return float("nan"), float("nan")
    ranks = sstats.rankdata(values)
    observed = float(_auroc_from_ranks(ranks, labels))
    if permutations <= 0:
        return observed, float("nan")
    lengths = np.array([len(t) for t in tracks])
    starts = np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    within = np.concatenate([np.arange(n) for n in lengths])
    rep_len = np.repeat(lengths, lengths)
    rng = np.random.default_rng(seed)
    exceed = 0
    done = 0
    while done < permutations:
        m = min(chunk, permutations - done)
        shifts = rng.integers(0, np.iinfo(np.int64).max, size=(m, len(lengths))) % lengths
        idx = starts + (within + np.repeat(shifts, lengths, axis=1)) % rep_len
        null = _auroc_from_ranks(ranks, labels[idx])
        exceed += int((null >= observed - 1e-12).sum())
        done += m
    return observed, (1 + exceed) / (1 + permutations)


def bh_qvalues(p: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values; NaN p-values stay NaN and do not count as tests."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = sstats.false_discovery_control(p[ok], method="bh")
    return q


# -- the neuron characterisation --------------------------------------------------------------
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
) -> dict[str, Any]:
    """Characterise the top-N IG neurons on ``proteins`` (held-out rows of split.tsv).

    ``cfg`` is the ``characterise`` config section. Returns a dict with ``neurons`` (one row
    per neuron), ``windows`` (their best windows), ``pfm`` (long position frequency matrices),
    ``summary`` (site AUROC per module type and per layer) and ``info`` (annotation status,
    parse counts).
    """
    overall, per_class = split_ig_scores(ig_scores)
    if overall.empty:
        raise InputError("IG score table has no gold-class rows (rows without `label`)")
    layout = layout_of(model)
    top = ranked_neurons(overall, layout, normalise).head(cfg["top_n"]).reset_index(drop=True)
    profile = neuron_class_profile(per_class)
    top = top.merge(profile, on=NEURON_KEY, how="left")
    if class_sets is not None and not class_sets.empty:
        member = (
            class_sets.groupby(NEURON_KEY)["label"]
            .apply(lambda s: ";".join(sorted(map(str, s))))
            .rename("in_class_sets")
        )
        top = top.merge(member.reset_index(), on=NEURON_KEY, how="left")
    else:
        top["in_class_sets"] = np.nan

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

    columns = [c for c in cfg["site_columns"] if c in proteins.columns] if cfg["site_columns"] else None
    present = annotation_columns(proteins[columns] if columns is not None else proteins)
    stats = ParseStats()
    if present:
        sites, stats = site_positions(proteins, present, source="held-out proteins")
        tracks = site_tracks([len(s) for s in seqs], sites, cfg["site_flank"])
    else:
        tracks = [None] * len(seqs)
    annotated = np.array([t is not None and t.any() and not t.all() for t in tracks])
    status = (
        f"{int(annotated.sum())} of {len(seqs)} held-out proteins annotated ({', '.join(present)})"
        if annotated.any()
        else NO_ANNOTATION + (f" (columns {', '.join(present)} hold no usable sites)" if present else "")
    )
    log.info("annotations: %s", status)

    width = cfg["window"]
    win_rows, pfm_rows, rows = [], [], []
    for j, nrow in top.iterrows():
        r_j = [r[:, j] for r in responses]
        everywhere = best_windows(r_j, seqs, width, cfg["n_windows"], cfg["windows_per_protein"], seed + j)
        pick, source = window_proteins(plabels, nrow.get("top_class"), cfg["windows_from"])
        if source == "all":
            wins = everywhere
        else:
            sub = [r_j[i] for i in pick]
            wins = best_windows(
                sub, [seqs[i] for i in pick], width, cfg["n_windows"], cfg["windows_per_protein"], seed + j
            )
            wins["protein"] = pick[wins["protein"].to_numpy(dtype=np.int64)]
        pfm = position_frequency_matrix(wins["window"], width)
        cons = consensus(pfm, cfg["consensus_min_frequency"])
        wl = plabels[wins["protein"].to_numpy()] if len(wins) else np.array([], dtype=str)
        # Where the neuron fires most over *all* proteins, whatever set its windows come from.
        vc = pd.Series(plabels[everywhere["protein"].to_numpy()]).value_counts()
        rec: dict[str, Any] = {
            "windows_from": source,
            "window_consensus": cons,
            "window_class": vc.index[0] if len(vc) else "",
            "window_class_purity": float(vc.iloc[0] / len(everywhere)) if len(vc) else float("nan"),
            "n_windows": len(wins),
        }
        auc = p = auc_c = p_c = float("nan")
        n_site = n_res = 0
        if annotated.any():
            # Centred per protein: the AUROC asks *where along* a protein the neuron fires, so a
            # neuron that is merely more active in some proteins (a class detector) must not
            # score because those proteins carry more annotated residues.
            c_j = [x - np.median(x) for x in r_j]
            idx = np.flatnonzero(annotated)
            auc, p = site_enrichment(
                [c_j[i] for i in idx], [tracks[i] for i in idx], cfg["permutations"], seed + j
            )
            n_site = int(sum(tracks[i].sum() for i in idx))
            n_res = int(sum(len(tracks[i]) for i in idx))
            cls = nrow.get("top_class")
            idx_c = np.flatnonzero(annotated & (plabels == str(cls)))
            if isinstance(cls, str) and len(idx_c):
                auc_c, p_c = site_enrichment(
                    [c_j[i] for i in idx_c], [tracks[i] for i in idx_c], cfg["permutations"], seed + j
                )
        rec.update(
            {
                "site_auroc": auc,
                "site_p": p,
                "site_auroc_top_class": auc_c,
                "site_p_top_class": p_c,
                "n_site_residues": n_site,
                "n_residues": n_res,
            }
        )
        rows.append(rec)
        wins = wins.assign(
            rank=int(nrow["rank"]),
            layer=int(nrow["layer"]),
            module=nrow["module"],
            neuron=int(nrow["neuron"]),
            accession=proteins["accession"].to_numpy()[wins["protein"].to_numpy()]
            if "accession" in proteins.columns
            else wins["protein"],
            label=wl,
        )
        win_rows.append(wins.drop(columns=["protein"]))
        long = pfm.reset_index().melt(id_vars="position", var_name="residue", value_name="count")
        pfm_rows.append(
            long.assign(
                rank=int(nrow["rank"]),
                layer=int(nrow["layer"]),
                module=nrow["module"],
                neuron=int(nrow["neuron"]),
            )
        )

    neurons = pd.concat([top, pd.DataFrame(rows)], axis=1)
    neurons["site_q"] = bh_qvalues(neurons["site_p"])
    neurons["site_q_top_class"] = bh_qvalues(neurons["site_p_top_class"])
    neurons["annotation"] = status
    order = [
        "rank", *NEURON_KEY, "score", "norm_score", "top_class", "class_share", "in_class_sets", "orientation",
        "windows_from", "window_consensus", "window_class", "window_class_purity", "n_windows",
        "site_auroc", "site_p", "site_q", "site_auroc_top_class", "site_p_top_class", "site_q_top_class",
        "n_site_residues", "n_residues", "annotation",
    ]  # fmt: skip
    neurons = neurons[order].rename(columns={"score": "ig_score", "norm_score": "ig_norm_score"})
    windows = pd.concat(win_rows, ignore_index=True)[
        ["rank", *NEURON_KEY, "accession", "label", "center", "value", "window"]
    ]
    pfm_long = pd.concat(pfm_rows, ignore_index=True)[["rank", *NEURON_KEY, "position", "residue", "count"]]
    return {
        "neurons": neurons,
        "windows": windows,
        "pfm": pfm_long,
        "summary": site_summary(neurons, cfg["alpha"], status),
        "info": {
            "annotation": status,
            "annotated_proteins": int(annotated.sum()),
            "held_out_proteins": len(seqs),
            "site_columns": present,
            "site_flank": cfg["site_flank"],
            "features_parsed": stats.features,
            "features_unknown_location": stats.unknown_location,
            "positions_beyond_sequence": stats.beyond_sequence,
        },
    }


def site_summary(neurons: pd.DataFrame, alpha: float = 0.05, status: str = "") -> pd.DataFrame:
    """Site AUROC per module type, per layer and overall: n, mean, median, share with q < alpha."""
    rows = []
    groups: list[tuple[str, str, pd.DataFrame]] = [("all", "all", neurons)]
    groups += [("module", str(m), g) for m, g in neurons.groupby("module", sort=False)]
    groups += [("layer", str(int(layer)), g) for layer, g in neurons.groupby("layer", sort=True)]
    for by, value, g in groups:
        a = g["site_auroc"].astype(float)
        rows.append(
            {
                "group_by": by,
                "group": value,
                "n_neurons": len(g),
                "n_tested": int(a.notna().sum()),
                "auroc_mean": float(a.mean()) if a.notna().any() else float("nan"),
                "auroc_median": float(a.median()) if a.notna().any() else float("nan"),
                "n_significant": int((g["site_q"] < alpha).sum()),
                "share_significant": float((g["site_q"] < alpha).sum() / a.notna().sum())
                if a.notna().any()
                else float("nan"),
                "auroc_top_class_mean": float(g["site_auroc_top_class"].mean())
                if g["site_auroc_top_class"].notna().any()
                else float("nan"),
                "annotation": status,
            }
        )
    return pd.DataFrame(rows)


# -- stage jobs (the workflow scripts call these) ----------------------------------------------
