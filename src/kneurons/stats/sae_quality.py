"""The quality rule for SAE features, as the baseline rule is for neurons: does each SAE fit each
replicate's model well enough for its features to carry a claim? Torch-free.

A given SAE file is attached to every replicate, but replicates are different fine-tuned models:
an SAE trained on one can reconstruct another poorly (the embedded default's replicate 0 SAE, an
InterPLM-format file, had FVU 0.034 on replicate 0 and 0.726 on replicate 1). The rule, fixed in
advance (``sae.quality``): on every replicate, an SAE fits when its FVU at its own layer (at its
input point, on the validation split: ``features/saes.json``) is at most ``max_fvu`` and its loss
recovered at least ``min_loss_recovered``. A loss recovered that could not be measured (zeroing the
SAE's input did not change the loss) does not fail it. ``quality_table`` gives one row per
replicate and SAE with every figure and the verdict (``features/stats/sae_quality.tsv``); claim 6
is inconclusive when any row fails (``kneurons.stats.claims.sae_quality_note``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

#: Columns of ``features/stats/sae_quality.tsv``.
QUALITY_COLUMNS: list[str] = [
    "replicate",
    "layer",
    "format",
    "source",
    "input_point",
    "activation_scale",
    "fvu_own",
    "fvu_plain",
    "best_other_layer",
    "fvu_best_other",
    "loss_recovered",
    "dead_share",
    "dense_share",
    "n_tokens",
    "fits",
    "reason",
]


def failures(fvu: float, loss_recovered: float | None, quality: Mapping[str, Any]) -> list[str]:
    """Why an SAE does not fit (the rule, module docstring): ``[]`` when it does."""
    out = []
    if not fvu <= float(quality["max_fvu"]):
        out.append(f"FVU {fvu:.3g} > {float(quality['max_fvu']):g}")
    floor = float(quality["min_loss_recovered"])
    if loss_recovered is not None and math.isfinite(loss_recovered) and loss_recovered < floor:
        out.append(f"loss recovered {loss_recovered:.3g} < {floor:g}")
    return out


def quality_table(reports: Sequence[Mapping[str, Any]], quality: Mapping[str, Any]) -> pd.DataFrame:
    """One row per replicate (the index in ``reports``, one ``features/saes.json`` each) and SAE:
    its figures (``QUALITY_COLUMNS``), ``fits`` and, when it does not, ``reason``."""
    rows = []
    for replicate, report in enumerate(reports):
        for sae in sorted(report["saes"], key=lambda s: int(s["layer"])):
            layer = int(sae["layer"])
            fvu = {int(k): float(v) for k, v in (sae.get("fvu") or {}).items()}
            others = {k: v for k, v in fvu.items() if k != layer}
            best = min(others, key=others.__getitem__) if others else None
            recovered = sae.get("loss_recovered")
            recovered = None if recovered is None else float(recovered)
            why = failures(float(sae["fvu_own"]), recovered, quality)
            rows.append(
                {
                    "replicate": replicate,
                    "layer": layer,
                    "format": sae.get("format"),
                    "source": sae.get("source"),
                    "input_point": sae.get("input_point"),
                    "activation_scale": sae.get("activation_scale"),
                    "fvu_own": float(sae["fvu_own"]),
                    "fvu_plain": sae.get("fvu_plain"),
                    "best_other_layer": best,
                    "fvu_best_other": None if best is None else others[best],
                    "loss_recovered": recovered,
                    "dead_share": sae.get("dead_share"),
                    "dense_share": sae.get("dense_share"),
                    "n_tokens": sae.get("n_tokens"),
                    "fits": not why,
                    "reason": "; ".join(why),
                }
            )
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)
