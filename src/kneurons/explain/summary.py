"""What a batch of explanations says in numbers: replicates' agreement per protein, and over the
batch the causal check's drops for knowledge units against random units. Torch-free."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def agreement(replicates: Sequence[Mapping[str, Any]], annotated: Sequence[str] = ()) -> dict[str, Any]:
    """The replicates' verdict on one protein: the class most of them predict (ties: the main run's),
    the share that predicts it, its mean probability, and whether it is an annotated class
    (None without an annotation)."""
    votes = Counter(r["predicted"] for r in replicates)
    top = max(votes.values())
    main = replicates[0]["predicted"]
    consensus = main if votes[main] == top else sorted(c for c, v in votes.items() if v == top)[0]
    return {
        "consensus": consensus,
        "share": votes[consensus] / len(replicates),
        "unanimous": len(votes) == 1,
        "mean_probability": float(np.mean([r["probabilities"][consensus] for r in replicates])),
        "correct": (consensus in annotated) if annotated else None,
    }


def _causal_rows(proteins: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for p in proteins:
        for r in p["replicates"]:
            for c in r["causal"]:
                rows.append({"replicate": r["replicate"], **c})
    return rows


def summarise(result: Mapping[str, Any]) -> dict[str, Any]:
    """Over the batch, per replicate and kind of unit: the mean probability drop of the predicted
    class when the named knowledge units are filled, the mean over the random draws, the share of
    proteins whose knowledge drop exceeds their random mean, and the flips; the replicates' agreement
    and, where the input is annotated, the consensus's accuracy."""
    proteins = result["proteins"]
    causal = []
    rows = _causal_rows(proteins)
    keys = sorted({(r["replicate"], r["kind"]) for r in rows})
    for rep, kind in keys:
        sel = [r for r in rows if r["replicate"] == rep and r["kind"] == kind]
        drop = np.array([r["drop"] for r in sel])
        rand = np.array([r["drop_random_mean"] for r in sel])
        causal.append(
            {
                "replicate": rep,
                "kind": kind,
                "proteins": len(sel),
                "mean_drop": float(drop.mean()),
                "mean_drop_random": float(rand.mean()),
                "share_above_random": float((drop > rand).mean()),
                "flipped": int(sum(r["flipped"] for r in sel)),
                "flipped_random_mean": float(np.mean([r["flipped_random"] / len(r["seeds"]) for r in sel])),
            }
        )
    annotated = [p["agreement"]["correct"] for p in proteins if p["agreement"]["correct"] is not None]
    return {
        "proteins": len(proteins),
        "unanimous": int(sum(p["agreement"]["unanimous"] for p in proteins)),
        "annotated": len(annotated),
        "correct": int(sum(annotated)),
        "causal": causal,
    }
