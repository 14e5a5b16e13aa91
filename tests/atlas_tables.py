"""Result tables for the atlas tests, written through the kneurons.tables writers (no model).

A 2-layer model with 8-dim modules (fc1: 32): 144 neurons. Scores are seeded random numbers;
four IG neurons are "characterised" with windows, responses and position frequency matrices.
``write_feature_tables``: an SAE of ``N_FEATURES`` features on the stream entering layer 2, its
score tables, two characterised features, the SAE report, gap to random and claim 6's table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kneurons.stats.density import density, with_q_values
from kneurons.tables import (
    write_json_result,
    write_result_table,
    write_score_table,
    write_stats_tables,
)
from kneurons.vocabulary import MODULE_TYPES

SIZES = {"q_proj": 8, "k_proj": 8, "v_proj": 8, "out_proj": 8, "fc1": 32, "fc2": 8}
LAYERS = 2
CLASSES = ["1", "2", "3"]
METHODS = ["activation", "ig", "random"]
WIDTH = 7
#: Four characterised neurons: (layer, module, neuron, top class).
CHARACTERISED = [(1, "k_proj", 3, "1"), (0, "fc1", 17, "2"), (1, "fc2", 5, "3"), (0, "k_proj", 0, "1")]
N_FEATURES, SAE_LAYER = 40, 2
#: Two characterised SAE features (units L2.sae.i).
CHARACTERISED_FEATURES = [(SAE_LAYER, "sae", 31, "2"), (SAE_LAYER, "sae", 4, "3")]


def _keys() -> pd.DataFrame:
    rows = [(layer, m, n) for layer in range(LAYERS) for m in MODULE_TYPES for n in range(SIZES[m])]
    return pd.DataFrame(rows, columns=["layer", "module", "neuron"])


def _feature_keys() -> pd.DataFrame:
    return pd.DataFrame({"layer": SAE_LAYER, "module": "sae", "neuron": np.arange(N_FEATURES)})


def _score_rows(method: str, rng: np.random.Generator, label=None, seed=None, keys=_keys) -> pd.DataFrame:
    df = keys()
    df.insert(0, "method", method)
    df["label"] = pd.array([label] * len(df), dtype="string")
    df["seed"] = pd.array([seed] * len(df), dtype="Int64")
    # fc1 activations on another scale: normalisation per module matters for the ranks.
    scale = np.where(df["module"] == "fc1", 5.0, 1.0) if method == "activation" else 1.0
    df["score"] = rng.gamma(2.0, 1.0, len(df)) * scale
    return df


def _write_scores(root: Path, rng: np.random.Generator, keys=_keys) -> dict[str, pd.DataFrame]:
    """One score table per method under ``root/scores`` (random: two seeds; IG: class rows)."""
    tables = {}
    for method in METHODS:
        if method == "random":
            df = pd.concat([_score_rows(method, rng, seed=s, keys=keys) for s in (0, 1)], ignore_index=True)
        elif method == "ig":
            parts = [_score_rows(method, rng, keys=keys)]
            parts += [_score_rows(method, rng, label=c, keys=keys) for c in CLASSES]
            df = pd.concat(parts, ignore_index=True)
        else:
            df = _score_rows(method, rng, keys=keys)
        path = root / f"scores/{method}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_score_table(df, path, {"method": method})
        tables[method] = df
    return tables


def write_tables(root: Path, with_characterise: bool = True, claims: bool = False) -> dict:
    """Write every atlas input under ``root``; returns the job's named inputs."""
    rng = np.random.default_rng(7)
    root.mkdir(parents=True, exist_ok=True)
    tables = _write_scores(root, rng)
    scores = {m: root / f"scores/{m}.parquet" for m in METHODS}
    dens = [density(df, m, top_fraction=0.1) for m, df in tables.items()]
    stats = {"density": root / "stats/density.tsv", "random_gap": root / "stats/random_gap.tsv"}
    stats["density"].parent.mkdir(parents=True, exist_ok=True)
    gap = pd.DataFrame(
        {
            "method": ["activation", "ig"],
            "scope": "global",
            "scope_name": "global",
            "mode": "preserve",
            "auc_gap": [0.21, 0.34],
            "ci_lo": [0.1, 0.2],
            "ci_hi": [0.3, 0.45],
        }
    )
    write_stats_tables(
        {"density": with_q_values(pd.concat(dens, ignore_index=True)), "random_gap": gap}, stats
    )
    metrics = root / "model/metrics.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    cm = [[10, 1, 0], [0, 11, 1], [1, 0, 12]]
    write_json_result(
        metrics,
        {"test": {"accuracy": 0.917, "macro_f1": 0.915, "n": 36, "confusion_matrix": cm, "labels": CLASSES}},
    )
    inputs = {
        "scores": [str(scores[m]) for m in METHODS],
        **{k: str(v) for k, v in stats.items()},
        "metrics": str(metrics),
    }
    if with_characterise:
        inputs.update(_characterise(root / "characterise", rng))
    if claims:
        path = root / "stats/claims.tsv"
        write_result_table(
            pd.DataFrame(
                {
                    "claim": ["activation beats random", "dense in k_proj"],
                    "verdict": ["supported", "not supported"],
                }
            ),
            path,
        )
        inputs["claims"] = str(path)
    return inputs


def write_feature_tables(root: Path, with_characterise: bool = True) -> dict:
    """Write the SAE feature inputs under ``root/features``; returns the job's named inputs
    (``feature_scores``, ``sae_report``, ``feature_random_gap``, ``compactness``, ``feature_<name>``)."""
    rng = np.random.default_rng(11)
    out = root / "features"
    _write_scores(out, rng, keys=_feature_keys)
    report = out / "saes.json"
    sae = {
        "layer": SAE_LAYER,
        "format": "kneurons",
        "n_features": N_FEATURES,
        "k": 4,
        "d": 8,
        "fvu": {"1": 0.4321, "2": 0.0456, "3": 0.3789},
        "fvu_own": 0.0456,
        "dead_share": 0.125,
        "n_tokens": 512,
        "training": {"epochs": 7, "fvu": 0.0512},
    }
    write_json_result(report, {"split": "val", "n_sequences": 12, "saes": [sae]})
    stats = {"random_gap": out / "stats/random_gap.tsv", "compactness": root / "stats/compactness.tsv"}
    for path in stats.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    gap = pd.DataFrame(
        {
            "method": ["activation", "ig"],
            "scope": "global",
            "scope_name": "global",
            "mode": "preserve",
            "auc_gap": [0.123, -0.0456],
            "ci_lo": [0.05, -0.1],
            "ci_hi": [0.2, 0.01],
        }
    )
    # claim 6 at the same site: activation's features beat the stream's dimensions, lose to its PCA
    compact = pd.DataFrame(
        {
            "layer": SAE_LAYER,
            "method": ["activation", "activation", "ig", "ig"],
            "comparison": ["dimensions", "pca", "dimensions", "random_basis"],
            "fill": "zero",
            "estimate": [0.3, -0.2, 0.05, 0.01],
            "ci_lo": [0.2, -0.3, -0.1, -0.2],
            "ci_hi": [0.4, -0.1, 0.2, 0.2],
            "p_value": [0.001, 1.0, 0.3, 0.4],
            "p_floor": 0.001,
            "gap_fraction": [0.35, 0.1, 0.08, 0.02],
            "gap_directions": [0.3, -0.2, 0.05, 0.01],
            "k95_features": [4.0, 4.0, np.nan, np.nan],
            "k95_other": [32.0, 2.0, np.nan, np.nan],
            "n_features": N_FEATURES,
            "n_other": 8,
            "note": "",
        }
    )
    write_stats_tables({"random_gap": gap, "compactness": compact}, stats)
    inputs = {
        "feature_scores": [str(out / f"scores/{m}.parquet") for m in METHODS],
        "sae_report": str(report),
        "feature_random_gap": str(stats["random_gap"]),
        "compactness": str(stats["compactness"]),
    }
    if with_characterise:
        tables = _characterise(out / "characterise", rng, CHARACTERISED_FEATURES)
        names = ("neurons", "windows", "pfm", "window_activations")
        inputs.update({f"feature_{k}": tables[k] for k in names})
    return inputs


def _characterise(out: Path, rng: np.random.Generator, units=CHARACTERISED) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    neurons, windows, acts, pfm = [], [], [], []
    residues = list("ACDEFGHIKLMNPQRSTVWY")
    for rank, (layer, m, n, cls) in enumerate(units, start=1):
        key = {"rank": rank, "layer": layer, "module": m, "neuron": n}
        neurons.append(
            {
                **key,
                "ig_score": 1.0 / rank,
                "ig_norm_score": 1.0 / rank,
                "top_class": cls,
                "class_share": 0.8,
                "window_consensus": "--GHK--",
                "site_auroc": 0.7 + 0.05 * rank,
                "site_q": 0.01 * rank,
            }
        )
        for w in range(3):
            seq = "".join(rng.choice(residues, WIDTH))
            center = 10 + w
            windows.append(
                {
                    **key,
                    "accession": f"P{rank}{w:04d}",
                    "label": cls,
                    "center": center,
                    "value": 3.0 - w,
                    "window": seq,
                }
            )
            resp = rng.normal(0, 0.5, WIDTH)
            resp[WIDTH // 2] = 3.0 - w
            acts += [
                {
                    **key,
                    "accession": f"P{rank}{w:04d}",
                    "center": center,
                    "position": i,
                    "residue": seq[i],
                    "response": float(resp[i]),
                }
                for i in range(WIDTH)
            ]
        for pos in range(WIDTH):
            # The peak position is all G (a tall letter), the others uniform noise.
            peak = np.eye(20, dtype=int)[residues.index("G")] * 20
            counts = peak if pos == WIDTH // 2 else rng.multinomial(20, np.full(20, 1 / 20))
            pfm += [
                {**key, "position": pos, "residue": r, "count": int(c)}
                for r, c in zip(residues, counts, strict=True)
            ]
    class_neurons = pd.DataFrame(
        [{"label": c, "layer": la, "module": m, "neuron": n} for la, m, n, c in units]
    )
    matrix = pd.DataFrame(
        [
            {"suppressed": s, "evaluated": e, "recall_base": 0.9, "recall": 0.9 - d, "recall_change": -d}
            for s in CLASSES
            for e in CLASSES
            for d in [0.5 if s == e else 0.05]
        ]
    )
    spec = pd.DataFrame(
        [
            {
                "class": c,
                "n_neurons": 2,
                "support": 12,
                "recall_base": 0.9,
                "drop_own": 0.5,
                "drop_other": 0.05,
                "specificity_diff": 0.45,
                "random_diff_lo": -0.1,
                "random_diff_hi": 0.1,
                "p_value": 0.05,
            }
            for c in CLASSES
        ]
    )
    tables = {
        "neurons": pd.DataFrame(neurons),
        "windows": pd.DataFrame(windows),
        "window_activations": pd.DataFrame(acts),
        "pfm": pd.DataFrame(pfm),
        "class_neurons": class_neurons,
        "class_suppression": matrix,
        "class_specificity": spec,
    }
    paths = {}
    for name, df in tables.items():
        paths[name] = str(out / f"{name}.tsv")
        write_result_table(df, paths[name])
    return paths


#: The concept stage's units in the atlas tests: (layer, module, index, kind, aligned concepts).
CONCEPT_UNITS = [
    (0, "q_proj", 6, "neurons", ["Binding site: ATP", "Helix"]),
    (1, "fc1", 30, "neurons", ["Helix"]),
    (0, "k_proj", 1, "neurons", []),
    (SAE_LAYER, "sae", 7, "features", ["Binding site: ATP"]),
]


def write_concept_tables(root: Path) -> dict:
    """Write the concept stage's tables under ``root/concepts`` (units aligned as ``CONCEPT_UNITS``
    says, each also with a control row that is not aligned); returns the job's named inputs."""
    from kneurons.concepts.alignment import NULL_COLUMNS
    from kneurons.concepts.results import ALIGNMENT_COLUMNS, SUMMARY_COLUMNS, UNIT_COLUMNS
    from kneurons.tables import write_concept_tables as write
    from kneurons.tables import write_concepts_info

    out = root / "concepts"
    out.mkdir(parents=True, exist_ok=True)
    units, align = [], []
    for layer, module, index, kind, aligned in CONCEPT_UNITS:
        key = {"layer": layer, "module": module, "neuron": index, "units": kind}
        best = aligned[0] if aligned else "Turn"
        units.append(
            key
            | {
                "max_train": 2.0,
                "best_concept": best,
                "best_f1": 0.8123 if aligned else 0.2,
                "catalytic_concept": "Binding site: ATP",
                "catalytic_f1": 0.7 if "Binding site: ATP" in aligned else 0.1,
                "catalytic_aligned": "Binding site: ATP" in aligned,
                "n_aligned": len(aligned),
                "aligned_concepts": ";".join(aligned),
                "n_aligned_controls": 0,
                "ig_score": 1.0,
                "random_score": 0.5,
                "knowledge": False,
            }
        )
        for concept, control in [(c, "") for c in aligned or ["Turn"]] + [(f"{best} [within]", "within")]:
            f1 = 0.8123 if concept in aligned else 0.2
            align.append(
                key
                | {"concept": concept, "control": control, "threshold": 0.5, "precision_val": 0.8}
                | {"recall_val": 0.9, "f1_val": 0.85, "precision": 0.75, "recall": 0.88, "f1": f1}
                | dict.fromkeys(NULL_COLUMNS, 0.3)
                | {"aligned": concept in aligned}
            )
    summary = pd.DataFrame(
        [
            ["neurons", "all", "all", 144, 2, 2 / 144, 3, 3, 2, 0.61, 0, 0],
            ["features", "all", "all", N_FEATURES, 1, 1 / N_FEATURES, 1, 3, 1, 0.55, 0, 0],
        ],
        columns=SUMMARY_COLUMNS,
    )
    knowledge = pd.DataFrame(
        [
            [
                "neurons",
                144,
                15,
                2,
                0.42,
                0.2,
                0.22,
                0.1,
                0.33,
                0.004,
                0.001,
                1000,
                0.95,
                0.31,
                0.2,
                0.4,
                0.01,
            ]
            + [1, 0.07, 0.014]
        ],
        columns=[
            "units",
            "n_units",
            "n_knowledge",
            "catalytic_concepts",
            "f1_knowledge",
            "f1_random",
            "f1_gap",
            "ci_lo",
            "ci_hi",
            "p_value",
            "p_floor",
            "n_boot",
            "confidence",
            "spearman_ig",
            "spearman_ci_lo",
            "spearman_ci_hi",
            "spearman_random",
            "aligned_knowledge",
            "aligned_share_knowledge",
            "aligned_share_all",
        ],
    )
    paths = {n: out / f"{n}.tsv" for n in ("units", "alignment", "summary", "knowledge")}
    write(
        {
            "units": pd.DataFrame(units)[UNIT_COLUMNS],
            "alignment": pd.DataFrame(align)[ALIGNMENT_COLUMNS],
            "summary": summary,
            "knowledge": knowledge,
        },
        paths,
    )
    write_concepts_info(
        out / "info.json", {"status": "3 concepts from helix, binding_site", "f1_floor": 0.5, "shuffles": 100}
    )
    return {f"concept_{n}": str(p) for n, p in paths.items()} | {"concept_info": str(out / "info.json")}
