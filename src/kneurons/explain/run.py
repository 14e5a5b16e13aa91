"""The finished run an explanation reads: its files, found in a results folder or named by the rule.

``find_run(results)`` looks for every file ``kneurons explain`` reads in a results folder and says
what is missing, so a folder that is not a finished run is refused before anything is computed;
``RunFiles.from_inputs`` takes the same files from the ``explain`` rule's named inputs. What the run
decided (its label policy, fill, ranking settings, IG settings, SAEs) is read from these files, not
from a configuration: an explanation is of the run as it was made. Torch-free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.errors import InputError
from kneurons.io import sha256_file
from kneurons.tables import read_ablation_table, read_json, read_label_report, read_stats_table

#: Where each file sits in a results folder (replicate r > 0 under ``replicates/<r>/``).
CHECKPOINT = "model/best.pt"
RUN_METADATA = "model/run_metadata.json"
IG_SCORES = "scores/ig.parquet"
FEATURE_IG_SCORES = "features/scores/ig.parquet"
SAE_DIR = "features/sae"
ATLAS = "atlas/index.html"
LABEL_REPORT = "data/label_report.json"
SCORING_SET = "scores/scoring_set.tsv"
ABLATION_DIR = "ablation/ig"
CURVES = "stats/curves.tsv"
#: A replicate's class characterisation, read where the run has it.
CHARACTERISE = {
    "class_neurons": "characterise/class_neurons.tsv",
    "class_specificity": "characterise/class_specificity.tsv",
}
#: The fill when the run records none (an ablation table written before fills were recorded).
DEFAULT_FILL = "zero"


def replicate_prefix(replicate: int) -> str:
    """The path prefix of a replicate's files: ``""`` for the main run, ``replicates/<r>/`` otherwise."""
    return "" if replicate == 0 else f"replicates/{replicate}/"


@dataclass(frozen=True)
class ReplicateFiles:
    """One fine-tuning replicate: its classifier, its IG score table and (with SAE features) theirs."""

    replicate: int
    checkpoint: Path
    ig_scores: Path
    feature_scores: Path | None = None
    characterise: dict[str, Path] = field(default_factory=dict)  # CHARACTERISE tables present


@dataclass(frozen=True)
class RunFiles:
    """Every file of a finished run that an explanation reads."""

    replicates: tuple[ReplicateFiles, ...]
    atlas: Path
    label_report: Path
    ablation: Path  # the main run's IG ablation table: the run's fill (column ``fill``)
    metadata: Path  # the main run's model/run_metadata.json: how the model runs (attention, weights)
    scoring_set: Path | None = None  # the ``mean`` fill's sequences
    results: Path | None = None  # the folder, when found there

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> RunFiles:
        """The files from the ``explain`` rule's named inputs: ``checkpoints`` and ``ig_scores`` (one per
        replicate, replicate-major), ``feature_scores`` and the ``CHARACTERISE`` tables by name (each
        one per replicate, or none), ``atlas``, ``label_report``, ``ablation``, ``metadata`` and
        where present ``scoring_set``."""
        checkpoints = _paths(inputs["checkpoints"])
        per_rep = {k: _paths(inputs.get(k) or []) for k in ("ig_scores", "feature_scores", *CHARACTERISE)}
        wrong = {k: len(v) for k, v in per_rep.items() if len(v) not in ((0, len(checkpoints)))}
        if wrong or not per_rep["ig_scores"]:
            raise InputError(
                f"explain: {len(checkpoints)} checkpoints, but {wrong or {'ig_scores': 0}} files; "
                "one of each per replicate"
            )

        def of(r: int, key: str) -> Path | None:
            return per_rep[key][r] if per_rep[key] else None

        reps = tuple(
            ReplicateFiles(
                r,
                c,
                per_rep["ig_scores"][r],
                of(r, "feature_scores"),
                {k: of(r, k) for k in CHARACTERISE if of(r, k) is not None},
            )
            for r, c in enumerate(checkpoints)
        )
        return cls(
            replicates=reps,
            atlas=Path(inputs["atlas"]),
            label_report=Path(inputs["label_report"]),
            ablation=Path(inputs["ablation"]),
            metadata=Path(inputs["metadata"]),
            scoring_set=Path(inputs["scoring_set"]) if inputs.get("scoring_set") else None,
        )


def _paths(value: Any) -> list[Path]:
    values = [value] if isinstance(value, str | Path) else list(value)
    return [Path(v) for v in values]


def _replicates_present(results: Path) -> list[int]:
    """Replicate indices with a folder under ``results/replicates`` (0, the main run, always)."""
    found = [0]
    folder = results / "replicates"
    if folder.is_dir():
        found += sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name))
    return found


def _expected_replicates(results: Path) -> int | None:
    """How many replicates the run's statistics pooled (``stats/curves.tsv``), or None."""
    path = results / CURVES
    if not path.exists():
        return None
    curves = read_stats_table(path, "curves")
    if "n_replicates" not in curves.columns or curves.empty or curves["n_replicates"].isna().all():
        return None
    return int(curves["n_replicates"].dropna().iloc[0])


def _ablation_table(results: Path) -> Path:
    """The main run's IG ablation table that records its fill: the global scope's, else any scope's."""
    folder = results / ABLATION_DIR
    best = folder / "global.tsv"
    if best.exists() or not folder.is_dir():
        return best
    others = sorted(folder.glob("*.tsv"))
    return others[0] if others else best


def find_run(results: str | Path) -> RunFiles:
    """The files of the finished run in ``results``; InputError naming every one that is missing.

    Required: per replicate the classifier and its IG score table, and the atlas, the label report,
    the IG ablation table and the run metadata of the main run; as many replicates as the run's
    statistics pooled. Read where present: the SAE features' IG score tables, the scoring set (the
    ``mean`` fill needs it) and the class characterisation.
    """
    results = Path(results)
    if not results.is_dir():
        raise InputError(f"{results}: not a folder (give --results the `results` folder of a finished run)")
    reps = _replicates_present(results)
    expected = _expected_replicates(results)
    if expected is not None:
        reps = sorted(set(reps) | set(range(expected)))
    missing: list[str] = []
    replicates = []
    for r in reps:
        pre = replicate_prefix(r)
        files = {"checkpoint": results / pre / CHECKPOINT, "ig_scores": results / pre / IG_SCORES}
        missing += [str(p) for p in files.values() if not p.exists()]
        features = results / pre / FEATURE_IG_SCORES
        char = {k: results / pre / p for k, p in CHARACTERISE.items() if (results / pre / p).exists()}
        replicates.append(
            ReplicateFiles(
                r, **files, feature_scores=features if features.exists() else None, characterise=char
            )
        )
    singles = {
        "atlas": results / ATLAS,
        "label_report": results / LABEL_REPORT,
        "ablation": _ablation_table(results),
        "metadata": results / RUN_METADATA,
    }
    missing += [str(p) for p in singles.values() if not p.exists()]
    if missing:
        raise InputError(
            f"{results}: not a finished kneurons run; missing {', '.join(missing)} "
            "(run the workflow to the end first: snakemake --cores N)"
        )
    scoring_set = results / SCORING_SET
    return RunFiles(
        replicates=tuple(replicates),
        scoring_set=scoring_set if scoring_set.exists() else None,
        results=results,
        **singles,
    )


@dataclass(frozen=True)
class RunSettings:
    """What the run decided that an explanation must follow."""

    labels: list[str]  # the classes, in output order (from the checkpoint: filled in by the job)
    level: int  # the EC level of the labels
    nonstandard: str  # labels.nonstandard: drop | to_x | keep
    long_sequences: str  # labels.long_sequences: crop | drop
    max_length: int  # labels.max_length
    fill: str  # the fill of the run's ablation (the first, where it has several)
    fill_source: str  # where the fill was read, in words
    model: dict[str, Any]  # the run's model section (attention, checkpoint, download)


#: Fills an explanation cannot apply: ``resample`` takes each unit's activation on a donor protein
#: of the run's scoring set, drawn per evaluated protein of the run's test split; a protein a user
#: brings has no donor drawn for it.
NOT_FOR_EXPLAIN = ("resample",)


def run_fill(ablation: str | Path) -> tuple[str, str]:
    """The run's fill and where it came from: the first value of the ablation table's ``fill`` column
    (a run ablating under several fills lists them in order) that an explanation can apply (not
    ``NOT_FOR_EXPLAIN``), else ``zero`` (a table without it, or a run under resample only), said so."""
    table = read_ablation_table(ablation)
    if "fill" not in table.columns or table["fill"].dropna().empty:
        return DEFAULT_FILL, f"{ablation} records no fill; {DEFAULT_FILL} assumed"
    fills = list(dict.fromkeys(str(f) for f in table["fill"].dropna()))
    usable = [f for f in fills if f not in NOT_FOR_EXPLAIN]
    if not usable:
        return DEFAULT_FILL, (
            f"{ablation} records only {', '.join(fills)}, which needs donor proteins of the run's own "
            f"evaluation; {DEFAULT_FILL} used"
        )
    more = f" (the first of {', '.join(fills)})" if len(fills) > 1 else ""
    if usable[0] != fills[0]:
        more = f" (the first of {', '.join(fills)} that needs no donor protein)"
    return usable[0], f"{ablation}, column fill{more}"


def run_settings(files: RunFiles) -> RunSettings:
    """The label policy (``data/label_report.json``), the fill (the IG ablation table) and the model
    section (``model/run_metadata.json``) of the run; ``labels`` is left empty for the job."""
    report = read_label_report(files.label_report)
    policies = report.get("policies") or {}
    need = ("nonstandard", "long_sequences", "max_length")
    lacking = [k for k in need if k not in policies]
    if lacking:
        raise InputError(f"{files.label_report}: policies lack {', '.join(lacking)} (written by older code?)")
    meta = read_json(files.metadata, "run metadata", ("config",))
    fill, source = run_fill(files.ablation)
    return RunSettings(
        labels=[],
        level=int(report.get("level", 1)),
        nonstandard=str(policies["nonstandard"]),
        long_sequences=str(policies["long_sequences"]),
        max_length=int(policies["max_length"]),
        fill=fill,
        fill_source=source,
        model=dict((meta.get("config") or {}).get("model") or {}),
    )


def _same_bytes(path: Path, hashes: Mapping[str, str]) -> bool:
    """True when ``path`` (a file, or an ESM C SAE folder) holds the files of ``hashes`` (name -> sha256)."""
    if path.is_file():
        return hashes.get(path.name) == sha256_file(path)
    return (
        bool(hashes)
        and path.is_dir()
        and all((path / name).is_file() and sha256_file(path / name) == h for name, h in hashes.items())
    )


def resolve_sae_files(
    recorded: Sequence[Mapping[str, Any]], replicate_dir: Path, run_dir: Path, source: str
) -> list[dict[str, Any]]:
    """SAE specs (``kneurons.features.attach``) for the SAEs a feature score table records.

    A trained SAE sits in the replicate's ``features/sae/layer{l}.pt``; a given file at the path
    it was read from, relative to the folder the workflow ran in (the working directory, or the
    results folder's parent). The first whose bytes have the recorded sha256 is taken; none is an
    InputError naming the table.
    """
    specs = []
    for sae in recorded:
        layer = int(sae["layer"])
        hashes = dict(sae.get("sha256") or {})
        origin = Path(str(sae.get("source", "")))
        candidates = [replicate_dir / SAE_DIR / f"layer{layer}.pt", origin, run_dir.parent / origin]
        found = next((c for c in candidates if _same_bytes(c, hashes)), None)
        if found is None:
            raise InputError(
                f"{source}: its SAE at layer {layer} ({origin}) is not at any of "
                f"{', '.join(str(c) for c in dict.fromkeys(candidates))} with the recorded sha256"
            )
        specs.append({"layer": layer, "path": str(found), "format": sae["format"], "k": sae.get("k")})
    return specs


def describe_run(files: RunFiles) -> dict[str, Any]:
    """The run in the words of the page and the JSON: folder, replicates and their files."""
    return {
        "results": str(files.results) if files.results is not None else None,
        "replicates": [
            {
                "replicate": r.replicate,
                "checkpoint": str(r.checkpoint),
                "ig_scores": str(r.ig_scores),
                "feature_scores": str(r.feature_scores) if r.feature_scores else None,
            }
            for r in files.replicates
        ],
        "atlas": str(files.atlas),
    }


def class_knowledge(rep: ReplicateFiles) -> dict[str, dict[str, Any]]:
    """Per unit of the replicate's class neuron sets (``characterise/class_neurons.tsv``): the classes
    whose set holds it, and each set's specificity (``class_specificity.tsv``: the class's own recall
    drop against the other classes' when its set is suppressed, against random sets). Empty when
    the run did not characterise classes."""
    from kneurons.tables import read_characterise_table

    if "class_neurons" not in rep.characterise:
        return {}
    sets = read_characterise_table(rep.characterise["class_neurons"], "class_neurons")
    spec: dict[str, dict[str, Any]] = {}
    if "class_specificity" in rep.characterise:
        table = read_characterise_table(rep.characterise["class_specificity"], "class_specificity")
        cols = [c for c in SPECIFICITY_COLUMNS if c in table.columns]
        for row in table.to_dict("records"):
            spec[str(row["class"])] = {c: (None if pd.isna(row[c]) else float(row[c])) for c in cols}
    out: dict[str, dict[str, Any]] = {}
    for row in sets.itertuples(index=False):
        uid = f"L{int(row.layer)}.{row.module}.{int(row.neuron)}"
        entry = out.setdefault(uid, {"class_sets": [], "specificity": {}})
        entry["class_sets"].append(str(row.label))
        if str(row.label) in spec:
            entry["specificity"][str(row.label)] = spec[str(row.label)]
    return out


#: What a class set's specificity says (``characterise/class_specificity.tsv``), where present.
SPECIFICITY_COLUMNS = ("n_neurons", "drop_own", "drop_other", "specificity_diff", "p_value")
