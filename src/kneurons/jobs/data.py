"""The data jobs: the download rules, the contract table data/proteins.tsv, EC labels, the split,
its leakage report and the scoring subset (rules in workflow/rules/download.smk, labels.smk,
split.smk and score.smk).

Torch-free, as all data work: these jobs run in the data environment (envs/data.yaml), which has
no torch. Each takes plain paths and the rule's params (``settings``, built by
``kneurons.settings``); the logic stays in ``kneurons.data`` and ``kneurons.scoring.subset``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.data.brenda import brenda_proteins
from kneurons.data.expasy import expasy_proteins
from kneurons.data.labels import LabelPolicyError, label_proteins
from kneurons.data.local import read_proteins, source_report
from kneurons.data.split import leakage_report, split_labels
from kneurons.data.synthetic import generate_synthetic
from kneurons.data.uniprot import download_uniprot
from kneurons.io import write_json_atomic, write_table_atomic
from kneurons.scoring.subset import select_scoring_set
from kneurons.tables import (
    read_classes,
    read_labels,
    read_proteins_table,
    read_source_report,
    read_split,
    write_classes,
    write_dropped,
    write_label_report,
    write_labels,
    write_leakage_report,
    write_proteins,
    write_scoring_set,
    write_source_report,
    write_split,
)

log = logging.getLogger(__name__)


def run_download_synthetic(
    settings: Mapping[str, Any], proteins_out: str | Path, motifs_out: str | Path
) -> pd.DataFrame:
    """Generate the synthetic planted-motif proteins (the embedded default's data); write them to
    ``proteins_out`` and the motif table to ``motifs_out``.

    ``settings``: the rule's params (``synthetic``: the ``data.synthetic`` section, ``seed``).
    """
    proteins, motifs = generate_synthetic(**settings["synthetic"], seed=settings["seed"])
    write_table_atomic(motifs, motifs_out)
    write_proteins(proteins, proteins_out)
    log.info("synthetic: %d proteins, %d classes", len(proteins), len(motifs))
    return proteins


def run_download_uniprot(
    settings: Mapping[str, Any], data_out: str | Path, meta_out: str | Path
) -> dict[str, Any]:
    """Download reviewed enzymes (and, where configured, non-enzymes) from the UniProt REST API
    into ``data_out`` (gzip TSV) and its metadata (release, entries) into ``meta_out``.

    ``settings``: the rule's params (``uniprot``: the ``data.uniprot`` section).
    """
    meta = download_uniprot(settings["uniprot"], data_out, meta_out)
    log.info("UniProt release %s: %d entries", meta["release"], meta["entries"])
    return meta


def _write_ec_pairs(
    name: str, proteins: pd.DataFrame, meta: dict[str, Any], data_out: str | Path, meta_out: str | Path
) -> pd.DataFrame:
    """Write the proteins read from an EC <-> accession file (ExPASy, BRENDA) and its metadata."""
    write_json_atomic(meta_out, meta)
    write_proteins(proteins, data_out)
    log.info("%s: %d proteins; %d accessions without sequence", name, len(proteins), meta["without_sequence"])
    return proteins


def run_download_expasy(
    enzyme_dat: str | Path, sequences: str | Path, data_out: str | Path, meta_out: str | Path
) -> pd.DataFrame:
    """EC <-> Swiss-Prot pairs from ExPASy ``enzyme_dat``, joined with the ``sequences`` file;
    writes the proteins to ``data_out`` and what was read (counts, files) to ``meta_out``."""
    proteins, meta = expasy_proteins(enzyme_dat, sequences)
    return _write_ec_pairs("ExPASy", proteins, meta, data_out, meta_out)


def run_download_brenda(
    brenda: str | Path, sequences: str | Path, data_out: str | Path, meta_out: str | Path
) -> pd.DataFrame:
    """EC <-> UniProt pairs from a local BRENDA flat file ``brenda``, joined with the ``sequences``
    file; writes the proteins to ``data_out`` and what was read (counts, files) to ``meta_out``."""
    proteins, meta = brenda_proteins(brenda, sequences)
    return _write_ec_pairs("BRENDA", proteins, meta, data_out, meta_out)


def run_proteins(
    source: str | Path, settings: Mapping[str, Any], proteins_out: str | Path, report_out: str | Path
) -> pd.DataFrame:
    """Normalise the selected source file into the contract table ``proteins_out``
    (data/proteins.tsv), and say what reading it rewrote in ``report_out``
    (provenance/source_report.json, which the labels job reads).

    ``settings``: the rule's params (``source``: ``data.source``; ``fasta`` reads FASTA, anything
    else a TSV: a download's output or the user's own export).
    """
    fmt = "fasta" if settings["source"] == "fasta" else "tsv"
    proteins = read_proteins(source, fmt)
    report = source_report(source, fmt, proteins)
    write_source_report(report_out, report)
    write_proteins(proteins, proteins_out)
    log.info("%s: %d proteins (%d with EC numbers)", source, len(proteins), (proteins["ec"] != "").sum())
    log.info("%s: normalised %s", source, report["normalised"])
    return proteins


def run_labels(
    proteins_path: str | Path,
    source_path: str | Path,
    enzclass_path: str | Path | None,
    settings: Mapping[str, Any],
    out: Mapping[str, str | Path],
    dropped_log: str | Path,
) -> pd.DataFrame:
    """EC labels, the class table, the label report and the dropped proteins from the proteins
    table ``proteins_path`` and its source report ``source_path``; ``enzclass_path``: ExPASy's
    enzclass.txt (class names), or None.

    ``out``: ``labels``, ``classes``, ``report``, ``dropped``. ``dropped_log`` (a log file of the
    rule, which Snakemake keeps when the job fails and removes its outputs) also receives the
    dropped proteins and why, also when a label policy leaves too little to train on.
    ``settings``: the rule's params (``labels``: the ``labels`` section).
    """
    proteins = read_proteins_table(proteins_path)
    source = read_source_report(source_path)
    try:
        result = label_proteins(
            proteins,
            settings["labels"],
            str(enzclass_path) if enzclass_path is not None else None,
            source=str(proteins_path),
            origin=source["file"],
        )
    except LabelPolicyError as exc:
        # Snakemake removes a failed job's outputs but keeps its logs: the dropped proteins go there.
        write_dropped(exc.dropped, dropped_log)
        raise LabelPolicyError(f"{exc}; dropped proteins and why: {dropped_log}", exc.dropped) from None
    result.report["source"] = source
    write_dropped(result.dropped, dropped_log)
    write_dropped(result.dropped, out["dropped"])
    write_label_report(out["report"], result.report)
    write_classes(result.classes, out["classes"])
    write_labels(result.labels, out["labels"])
    log.info(
        "labels: %d proteins in %d classes %s; %d dropped (%s)",
        len(result.labels),
        len(result.classes),
        result.report["output"]["class_counts"],
        len(result.dropped),
        out["dropped"],
    )
    return result.labels


def run_split(
    labels_path: str | Path,
    settings: Mapping[str, Any],
    out: str | Path,
    threads: int = 1,
    workdir: str | Path | None = None,
    proteins_path: str | Path | None = None,
) -> pd.DataFrame:
    """Split the labelled proteins ``labels_path`` into train/val/test (stratified random, or
    homology-aware: whole MMseqs2 clusters per split, with ``threads`` in ``workdir``, of the
    full-length sequences of ``proteins_path``, data/proteins.tsv); write ``out`` (the labels'
    sequences, as the model reads them).

    ``settings``: the rule's params (``split``: method, fractions, mmseqs; ``seed``).
    """
    proteins = read_proteins_table(proteins_path) if proteins_path is not None else None
    split = split_labels(
        read_labels(labels_path),
        settings["split"],
        settings["seed"],
        threads=threads,
        workdir=workdir,
        proteins=proteins,
    )
    write_split(split, out)
    log.info("split: %s", split["split"].value_counts().to_dict())
    return split


def run_leakage(
    split_path: str | Path,
    settings: Mapping[str, Any],
    out: str | Path,
    threads: int = 1,
    workdir: str | Path | None = None,
    proteins_path: str | Path | None = None,
) -> dict[str, Any]:
    """The leakage report of the split ``split_path`` (class counts per split, shared clusters,
    max test-vs-train identity of the full-length sequences of ``proteins_path``, data/proteins.tsv;
    MMseqs2 runs with ``threads`` in ``workdir``); write ``out``.

    ``settings``: the rule's params (``split``: method, mmseqs, identity).
    """
    cfg = settings["split"]
    report = leakage_report(
        read_split(split_path),
        cfg["method"],
        cfg["mmseqs"],
        threads=threads,
        workdir=workdir,
        compute_identity=cfg["identity"],
        proteins=read_proteins_table(proteins_path) if proteins_path is not None else None,
    )
    write_leakage_report(out, report)
    log.info("leakage: %s", report.get("identity"))
    return report


def run_scoring_set(
    split_path: str | Path, classes_path: str | Path, settings: Mapping[str, Any], out: str | Path
) -> pd.DataFrame:
    """Pick the scoring subset (stratified by label, seeded) from the split ``split_path`` and the
    class table ``classes_path``; write ``out`` (scores/scoring_set.tsv).

    ``settings``: the rule's params (``split``: which part of the split, ``max_sequences``, ``seed``).
    """
    subset = select_scoring_set(
        read_split(split_path),
        read_classes(classes_path),
        split=settings["split"],
        max_sequences=settings["max_sequences"],
        seed=settings["seed"],
    )
    log.info(
        "scoring subset: %d sequences from split %r; per class: %s",
        len(subset),
        settings["split"],
        subset["label"].value_counts().sort_index().to_dict(),
    )
    write_scoring_set(subset, out)
    return subset
