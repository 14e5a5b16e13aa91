"""MMseqs2: sequence clusters for the homology split, and the test-vs-train identity search.

Both run the ``mmseqs`` executable in a temporary directory; a missing executable is an
``InputError`` that says how to install it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.errors import ConfigError, InputError

log = logging.getLogger(__name__)

MMSEQS_INSTALL_HINT = (
    "install MMseqs2: `sudo apt-get install mmseqs2` (Debian/Ubuntu), "
    "`conda install -c conda-forge -c bioconda mmseqs2`, or a static binary from "
    "https://github.com/soedinglab/MMseqs2/releases; set split.mmseqs.executable if it is not on PATH"
)


def find_mmseqs(executable: str = "mmseqs") -> str:
    """Path of the MMseqs2 executable, or an InputError saying how to install it."""
    path = shutil.which(executable)
    if path is None:
        raise InputError(f"MMseqs2 executable {executable!r} not found; {MMSEQS_INSTALL_HINT}")
    return path


def check_mmseqs_for_config(config: dict[str, Any], conda: bool) -> str | None:
    """Before any job runs: the MMseqs2 executable when ``split.method: homology`` needs it.

    With ``conda`` (``--sdm conda``) Snakemake installs it from envs/data.yaml into the split
    job's environment, so nothing is checked here. ``split.identity`` alone needs no check: the
    leakage report then says the identity was not computed. Returns the executable's path (or
    None when nothing was checked); raises ConfigError naming both ways to get MMseqs2.
    """
    split = config["split"]
    if split["method"] != "homology" or conda:
        return None
    executable = split["mmseqs"]["executable"]
    path = shutil.which(executable)
    if path is None:
        raise ConfigError(
            f"split.method: homology needs MMseqs2, and {executable!r} (split.mmseqs.executable) is not "
            "on PATH; either run Snakemake with `--sdm conda` (it installs MMseqs2 from envs/data.yaml) "
            f"or {MMSEQS_INSTALL_HINT}"
        )
    return path


def _write_fasta(df: pd.DataFrame, path: Path) -> None:
    with open(path, "w") as fh:
        fh.writelines(f">{acc}\n{seq}\n" for acc, seq in zip(df["accession"], df["sequence"], strict=False))


def _run(cmd: list[str], what: str) -> None:
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RuntimeError(f"MMseqs2 {what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    log.debug("%s", proc.stdout[-2000:])


def mmseqs_clusters(
    labels_df: pd.DataFrame,
    min_seq_id: float = 0.3,
    coverage: float = 0.8,
    cov_mode: int = 0,
    executable: str = "mmseqs",
    threads: int = 1,
    workdir: str | Path | None = None,
) -> dict[str, str]:
    """Cluster the sequences with ``mmseqs easy-cluster``; return ``{accession: representative}``."""
    exe = find_mmseqs(executable)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="kneurons-mmseqs-") as tmp:
        tmp = Path(tmp)
        _write_fasta(labels_df, tmp / "seqs.fasta")
        _run(
            [
                exe,
                "easy-cluster",
                str(tmp / "seqs.fasta"),
                str(tmp / "clu"),
                str(tmp / "work"),
                "--min-seq-id",
                str(min_seq_id),
                "-c",
                str(coverage),
                "--cov-mode",
                str(cov_mode),
                "--threads",
                str(threads),
                "-v",
                "1",
            ],
            "easy-cluster",
        )
        table = pd.read_csv(
            tmp / "clu_cluster.tsv", sep="\t", header=None, names=["rep", "member"], dtype=str
        )
    clusters = dict(zip(table["member"], table["rep"], strict=False))
    missing = set(labels_df["accession"]) - set(clusters)
    if missing:
        raise RuntimeError(f"MMseqs2 left {len(missing)} sequences unclustered, e.g. {sorted(missing)[:3]}")
    return clusters


def best_hits(
    query: pd.DataFrame,
    target: pd.DataFrame,
    executable: str = "mmseqs",
    threads: int = 1,
    workdir: str | Path | None = None,
    coverage: float = 0.8,
    cov_mode: int = 0,
) -> pd.DataFrame:
    """Each query protein's best hit among the targets (one ``mmseqs easy-search``): columns
    ``query, target, fident, alnlen, qcov, tcov``, best identity first; proteins without a hit that
    meets the coverage criterion are absent."""
    exe = find_mmseqs(executable)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="kneurons-mmseqs-") as tmp:
        tmp = Path(tmp)
        _write_fasta(query, tmp / "q.fasta")
        _write_fasta(target, tmp / "t.fasta")
        _run(
            [
                exe,
                "easy-search",
                str(tmp / "q.fasta"),
                str(tmp / "t.fasta"),
                str(tmp / "hits.m8"),
                str(tmp / "work"),
                "--format-output",
                "query,target,fident,alnlen,qcov,tcov",
                "-c",
                str(coverage),
                "--cov-mode",
                str(cov_mode),
                "--threads",
                str(threads),
                "-v",
                "1",
            ],
            "easy-search",
        )
        names = ["query", "target", "fident", "alnlen", "qcov", "tcov"]
        hits = pd.read_csv(
            tmp / "hits.m8", sep="\t", header=None, names=names, dtype={"query": str, "target": str}
        )
    return hits.sort_values(["fident", "alnlen"], ascending=False).drop_duplicates("query")


def max_identity_vs_train(
    split_df: pd.DataFrame,
    executable: str = "mmseqs",
    threads: int = 1,
    workdir: str | Path | None = None,
    coverage: float = 0.8,
    cov_mode: int = 0,
) -> dict[str, dict[str, Any]]:
    """Search the val and test proteins against train with one ``mmseqs easy-search``.

    Only alignments meeting the clustering's coverage criterion (``-c coverage --cov-mode``)
    count: a 100% identical 11-residue local hit says nothing about homology. Per query
    split (``test``, ``val``): the highest identity (``fident``) of any of its proteins to
    any training protein, the mean of each protein's best identity over proteins with a
    hit, the number of proteins whose best hit reaches 0.3 / 0.5 / 0.9 identity, and the
    worst pair.
    """
    query = split_df[split_df["split"] != "train"]
    train = split_df[split_df["split"] == "train"]
    best_all = best_hits(query, train, executable, threads, workdir, coverage, cov_mode)
    split_of = dict(zip(query["accession"], query["split"], strict=False))
    out: dict[str, dict[str, Any]] = {}
    for name in ("test", "val"):
        best = best_all[best_all["query"].map(split_of) == name]
        result: dict[str, Any] = {
            "queries": int((query["split"] == name).sum()),
            "coverage": coverage,
            "cov_mode": cov_mode,
            "queries_with_hit": len(best),
            "max_identity": None,
        }
        if len(best):
            top = best.iloc[0]
            result.update(
                max_identity=float(top["fident"]),
                mean_best_identity=float(best["fident"].mean()),
                queries_at_least={str(t): int((best["fident"] >= t).sum()) for t in (0.3, 0.5, 0.9)},
                worst_pair={
                    "query": top["query"],
                    "target": top["target"],
                    "identity": float(top["fident"]),
                    "alnlen": int(top["alnlen"]),
                    "qcov": float(top["qcov"]),
                    "tcov": float(top["tcov"]),
                },
            )
        out[f"{name}_vs_train"] = result
    return out
