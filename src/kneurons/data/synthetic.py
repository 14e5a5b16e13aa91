"""Synthetic enzyme-like proteins with planted class-specific motifs: ground truth for the science tests.

Each class gets its own motif; every protein of the class carries ``motifs_per_sequence``
copies of it at random, non-overlapping positions in a background drawn from Swiss-Prot
amino-acid frequencies. Motif residues are mutated to background with probability
``motif_noise``. The planted positions are recorded (1-based) in ``motif_sites``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Amino-acid composition of UniProtKB/Swiss-Prot (percent; release statistics).
SWISSPROT_FREQUENCIES: dict[str, float] = {
    "A": 8.25,
    "R": 5.53,
    "N": 4.06,
    "D": 5.45,
    "C": 1.37,
    "Q": 3.93,
    "E": 6.75,
    "G": 7.07,
    "H": 2.27,
    "I": 5.96,
    "L": 9.66,
    "K": 5.84,
    "M": 2.42,
    "F": 3.86,
    "P": 4.70,
    "S": 6.56,
    "T": 5.34,
    "W": 1.08,
    "Y": 2.92,
    "V": 6.87,
}


def _class_motifs(rng: np.random.Generator, n_classes: int, length: int) -> list[str]:
    """Distinct motifs drawn uniformly from the 20 residues (so they stand out of the background)."""
    residues = list(SWISSPROT_FREQUENCIES)
    motifs: list[str] = []
    while len(motifs) < n_classes:
        m = "".join(rng.choice(residues, size=length))
        # Require motifs to differ in most positions so classes are separable by motif alone.
        if all(sum(a != b for a, b in zip(m, o, strict=False)) >= length - 1 for o in motifs):
            motifs.append(m)
    return motifs


def _plant(
    rng: np.random.Generator,
    seq: np.ndarray,
    motifs: list[np.ndarray],
    noise: float,
    residues: np.ndarray,
    p: np.ndarray,
) -> list[int]:
    """Put ``motifs`` (in that order) into ``seq`` at random non-overlapping slots of the motif
    length, each residue mutated to background with probability ``noise``; the 1-based sites."""
    if not motifs:
        return []
    length = len(motifs[0])
    # Non-overlapping starts: pick from slots of width motif_length.
    slots = rng.choice(len(seq) // length, size=len(motifs), replace=False)
    sites: list[int] = []
    for s, motif in zip(sorted(slots), motifs, strict=True):
        start = int(s) * length
        planted = motif.copy()
        noisy = rng.random(length) < noise
        planted[noisy] = rng.choice(residues, size=int(noisy.sum()), p=p)
        seq[start : start + length] = planted
        sites.extend(range(start + 1, start + length + 1))
    return sites


def generate_synthetic(
    n_classes: int = 4,
    n_per_class: int = 100,
    length_min: int = 60,
    length_max: int = 120,
    motif_length: int = 6,
    motifs_per_sequence: int = 2,
    motif_noise: float = 0.05,
    non_enzyme_fraction: float = 0.0,
    seed: int = 0,
    sequence_seed: int | None = None,
    accession_prefix: str = "SYN",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate the proteins table and the motif table.

    Returns ``(proteins, motifs)``: ``proteins`` has the normalised columns ``accession, ec,
    sequence`` plus ``protein_name, organism, motif_sites``; class ``c`` (1-based) gets EC
    numbers ``c.x.y.z`` so every label level is defined. ``motifs`` has ``ec_class, motif``.
    The motifs come from ``seed``; ``sequence_seed`` draws new proteins carrying those motifs
    (an independent test set of the same task), else the sequences continue ``seed``'s stream.
    """
    if length_min > length_max:
        raise ValueError("length_min must not exceed length_max")
    if motif_length * motifs_per_sequence > length_min // 2:
        raise ValueError("motifs take more than half of the shortest sequence")
    rng = np.random.default_rng(seed)
    residues = np.array(list(SWISSPROT_FREQUENCIES))
    p = np.array(list(SWISSPROT_FREQUENCIES.values()))
    p = p / p.sum()
    motifs = _class_motifs(rng, n_classes, motif_length)
    if sequence_seed is not None:
        rng = np.random.default_rng([seed, sequence_seed])

    rows = []
    n_non = round(non_enzyme_fraction * n_classes * n_per_class)
    plan = [(c, i) for c in range(1, n_classes + 1) for i in range(n_per_class)] + [
        (0, i) for i in range(n_non)
    ]
    for k, (c, i) in enumerate(plan):
        length = int(rng.integers(length_min, length_max + 1))
        seq = rng.choice(residues, size=length, p=p)
        sites: list[int] = []
        if c:
            motif = np.array(list(motifs[c - 1]))
            sites = _plant(rng, seq, [motif] * motifs_per_sequence, motif_noise, residues, p)
            ec = f"{c}.{1 + i % 3}.{1 + i % 2}.{1 + i % 5}"
            name = f"synthetic class {c} enzyme"
        else:
            ec, name = "", "synthetic non-enzyme"
        rows.append(
            {
                "accession": f"{accession_prefix}{k:06d}",
                "ec": ec,
                "sequence": "".join(seq),
                "protein_name": name,
                "organism": "synthetic",
                "motif_sites": ";".join(map(str, sites)),
            }
        )
    proteins = pd.DataFrame(rows)
    motif_table = pd.DataFrame({"ec_class": [str(c) for c in range(1, n_classes + 1)], "motif": motifs})
    return proteins, motif_table


#: The classes of the parity task (``generate_parity_task``): how many of its motifs a protein carries.
PARITY_LABELS: tuple[str, str] = ("even", "odd")


def generate_parity_task(
    n_per_class: int = 200,
    motifs: int = 2,
    copies: int = 2,
    length_min: int = 60,
    length_max: int = 100,
    motif_length: int = 6,
    motif_noise: float = 0.05,
    seed: int = 0,
    accession_prefix: str = "PLT",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Proteins of the parity task: class ``odd`` when a protein carries an odd number of ``motifs``
    distinct motifs, ``even`` otherwise (two motifs: their XOR). The planted-knowledge benchmark's
    task (``kneurons.planted``).

    Every motif present is planted ``copies`` times, the copies of all present motifs in a random
    order, at non-overlapping slots in a Swiss-Prot-frequency background (as ``generate_synthetic``).
    Each class cycles through the motif subsets of its parity, so they are equally frequent. A
    model that only sums which motifs are present (a linear read-out of mean-pooled residues, as a
    random network roughly gives) cannot tell the classes apart: the class needs the combination.

    Returns ``(proteins, motifs)``: ``proteins`` has ``accession, sequence, label, present``
    (the motifs carried, ``;``-joined indices) and ``motif_sites`` (1-based); ``motifs`` has
    ``motif_index, motif``.
    """
    if motifs < 1:
        raise ValueError("the parity task needs at least one motif")
    if length_min > length_max:
        raise ValueError("length_min must not exceed length_max")
    if motif_length * motifs * copies > length_min // 2:
        raise ValueError("motifs take more than half of the shortest sequence")
    rng = np.random.default_rng([seed, 35])
    residues = np.array(list(SWISSPROT_FREQUENCIES))
    p = np.array(list(SWISSPROT_FREQUENCIES.values()))
    p = p / p.sum()
    drawn = [np.array(list(m)) for m in _class_motifs(rng, motifs, motif_length)]
    subsets = [[j for j in range(motifs) if s >> j & 1] for s in range(2**motifs)]
    rows = []
    for c, label in enumerate(PARITY_LABELS):
        mine = [sub for sub in subsets if len(sub) % 2 == c]
        for i in range(n_per_class):
            present = mine[i % len(mine)]
            seq = rng.choice(residues, size=int(rng.integers(length_min, length_max + 1)), p=p)
            kinds = rng.permutation([j for j in present for _ in range(copies)]).tolist()
            sites = _plant(rng, seq, [drawn[j] for j in kinds], motif_noise, residues, p)
            rows.append(
                {
                    "accession": f"{accession_prefix}{len(rows):06d}",
                    "sequence": "".join(seq),
                    "label": label,
                    "present": ";".join(map(str, present)),
                    "motif_sites": ";".join(map(str, sites)),
                }
            )
    motif_table = pd.DataFrame({"motif_index": range(motifs), "motif": ["".join(m) for m in drawn]})
    return pd.DataFrame(rows), motif_table
