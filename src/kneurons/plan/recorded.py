"""What a run's score tables record of the integration steps IG needed (``kneurons.scoring.completeness``),
for the plan to count the steps actually run where a run has scored. Torch-free.

IG rescores the proteins of a layer module whose completeness error is too large with twice the
steps, until the module is within ``score.ig.tolerance``, so what a layer needs is known only once
it was scored. Where a replicate's score table of a method exists (the gathered
``scores/<method>.parquet``, else its layer parts, or ``features/scores/<method>.parquet``), each
of its completeness records gives every attempt's steps and tokens; other layers are counted at
``score.ig.steps``, and ``ig_note`` says how far the cap ``score.ig.max_steps`` could take them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kneurons.errors import InputError
from kneurons.tables import COMPLETENESS_KEY, score_table_metadata

#: ``{layer: {module: [(steps, tokens) of each attempt]}}``: the attempts of one method's layers.
Attempts = dict[int, dict[str, list[tuple[int, int]]]]


def replicate_prefix(replicate: int) -> str:
    """The results sub-folder of replicate ``r``: ``""`` for the main run, else ``replicates/<r>/``."""
    return "" if replicate == 0 else f"replicates/{replicate}/"


def recorded_attempts(cfg: dict[str, Any], method: str, replicate: int, features: bool = False) -> Attempts:
    """The attempts (steps and tokens of each try, per layer and module) the score tables of ``method``
    (``ig``, ``gradxact``) in replicate ``replicate`` record; ``{}`` where the run has none (or tables
    of older code, or unreadable ones: the plan then counts the configured steps)."""
    root = Path(cfg["results"]) / replicate_prefix(replicate) / ("features/scores" if features else "scores")
    gathered = root / f"{method}.parquet"
    paths = [gathered] if gathered.is_file() else sorted((root / method).glob("layers*.parquet"))
    out: Attempts = {}
    for path in paths:
        try:
            records = score_table_metadata(path).get(COMPLETENESS_KEY) or []
        except InputError:
            continue
        for r in records:
            tried = [(int(a[0]), int(a[2])) for a in r.get("tried", []) if len(a) == 4]
            if tried:
                out.setdefault(int(r["layer"]), {})[str(r["module"])] = tried
    return out


def ig_note(cfg: dict[str, Any]) -> str | None:
    """The plan's printed note on IG's steps (None without ig among the methods)."""
    if "ig" not in cfg["score"]["methods"]:
        return None
    ig = cfg["score"]["ig"]
    steps, cap = ig["steps"], ig["max_steps"]
    worst, s = steps, steps
    while s < cap:
        s = min(2 * s, cap)
        worst += s
    return (
        f"IG: steps from the run's score tables where they exist, else score.ig.steps = {steps}; where a "
        f"layer module's completeness gap exceeds score.ig.tolerance = {ig['tolerance']:g} its worst "
        f"proteins are rescored with twice the steps up to score.ig.max_steps = {cap} (at most "
        f"{worst / steps:.3g}x its IG passes, if every protein needed the cap)"
    )
