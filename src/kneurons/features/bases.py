"""Bases of an SAE's stream: the same-site comparison of claim 6 (DESIGN.md, "Fair comparisons").

Claim 6 asks whether an SAE's features hold the knowledge more compactly than other units. The
fair comparison is at the same place, with the same intervention: the residual stream entering the
SAE's layer, edited by the same edit (``h' = h + ((f' - f) W_dec) s``), under the same fill. At each
SAE's stream the workflow compares four dictionaries of that one vector:

* ``features``: the SAE's own (TopK, sparse; its error term kept);
* ``dimensions``: the stream's own ``d`` coordinates (the neurons of that vector);
* ``pca``: its principal components, fitted on the scoring set's residue tokens (BOS and EOS left
  out: their stream is unlike a residue's and would take the first components), largest variance
  first;
* ``random_basis``: a random orthogonal basis (Haar: the QR of a Gaussian matrix, seeded by the
  run's seed and the layer), the null: what any basis of that width gives.

Each linear basis is a ``SparseAutoencoder`` with ``linear=True``: encoder = the basis ``Q``
(``d x d``, orthonormal columns), decoder = its transpose, no nonlinearity (ReLU would drop the
negative coordinates), ``b_pre = b_dec = mu`` (the scoring set's residue mean): the coordinates are
``c = (h - mu) Q`` and ``c Q^T + mu = h`` exactly, so there is no error term to keep, and the edit
formula is the SAE's. Centring every linear basis on the same mean makes their empty sets agree:
all coordinates filled with 0 gives the stream ``mu`` in every linear basis (an SAE with every
feature off gives its decoder bias, near the mean for a trained SAE). In a centred basis the
``zero`` and ``mean`` fills nearly agree (a coordinate's mean over the scoring tokens, BOS and EOS
included, is near 0). Scoring, ablation, fills and figures use the units code unchanged (module
``sae`` of the layer).

Sizes differ: 5% of an SAE's 512 features is 26 directions, 5% of 64 dimensions is 3. So every
basis is evaluated on the fraction grid (``ablate.fractions``) and on a grid of absolute numbers of
directions kept (``direction_counts``), and a compactness claim must hold in both readings
(``kneurons.stats.compactness``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kneurons.errors import InputError
from kneurons.features.sae import InputPoint, SparseAutoencoder
from kneurons.vocabulary import BASIS_NAMES, LINEAR_BASES


def linear_basis(
    q: np.ndarray,
    mean: np.ndarray,
    layer: int,
    name: str,
    source: str,
    input_point: InputPoint | None = None,
) -> SparseAutoencoder:
    """The linear dictionary of an orthonormal basis ``q`` (``d x d``, one direction per column)
    centred on ``mean`` (module docstring), reading the model at ``input_point`` (None: the stream
    at every token of the model's own run; the SAE's own point, so that both edit the same vector)."""
    q = np.asarray(q, dtype=np.float64)
    d = q.shape[0]
    if q.shape != (d, d) or not np.allclose(q.T @ q, np.eye(d), atol=1e-6):
        raise InputError(f"{source}: the {name} basis is not a {d} x {d} orthonormal matrix")
    w = torch.from_numpy(q).float()
    mu = torch.from_numpy(np.asarray(mean, dtype=np.float64)).float()
    return SparseAutoencoder(
        W_enc=w,
        b_enc=torch.zeros(d),
        W_dec=w.T.contiguous(),
        b_pre=mu,
        b_dec=mu,
        layer=layer,
        k=None,
        zscore=False,
        format="basis",
        source=source,
        linear=True,
        meta={"basis": name},
        input_point=input_point,
    )


def pca_directions(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(components, explained variance ratio)`` of the rows of ``h`` (``(N, d)``): the eigenvectors
    of their covariance as columns, largest variance first, each signed so that its largest-magnitude
    entry is positive (a fixed sign, whatever the solver returns)."""
    x = np.asarray(h, dtype=np.float64)
    x = x - x.mean(0)
    cov = x.T @ x / max(len(x) - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(-values, kind="stable")
    values, vectors = np.clip(values[order], 0, None), vectors[:, order]
    signs = np.sign(vectors[np.abs(vectors).argmax(0), np.arange(vectors.shape[1])])
    total = values.sum()
    return vectors * np.where(signs == 0, 1, signs), values / total if total > 0 else values


def random_rotation(d: int, seed: int, layer: int) -> np.ndarray:
    """A random orthogonal ``d x d`` matrix, uniform over the orthogonal group (the QR of a Gaussian
    matrix with R's diagonal made positive), from ``numpy.random.default_rng([seed, layer])``."""
    g = np.random.default_rng([int(seed), int(layer)]).standard_normal((d, d))
    q, r = np.linalg.qr(g)
    return q * np.sign(np.diag(r))


def fit_bases(
    h: torch.Tensor | np.ndarray,
    layer: int,
    kinds: Sequence[str] = LINEAR_BASES,
    seed: int = 0,
    where: str = "",
    input_point: InputPoint | None = None,
) -> dict[str, SparseAutoencoder]:
    """The linear bases ``kinds`` of the stream entering ``layer``, from its residue tokens ``h``
    ``(N, d)`` (the scoring set's), each centred on their mean; ``where`` says whose stream it is
    (named in each basis's ``source``); ``input_point``: where the bases read and edit the model (the
    SAE's, whose tokens ``h`` are). PCA's explained variance ratio is in its ``meta``."""
    x = h.detach().double().cpu().numpy() if isinstance(h, torch.Tensor) else np.asarray(h, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise InputError(f"the bases of layer {layer}: need at least 2 residue tokens, got {x.shape}")
    d = x.shape[1]
    mean = x.mean(0)
    unknown = sorted(set(kinds) - set(LINEAR_BASES))
    if unknown:
        raise InputError(f"unknown basis/bases {unknown}; one of {', '.join(LINEAR_BASES)}")
    out: dict[str, SparseAutoencoder] = {}
    for kind in kinds:
        source = f"{BASIS_NAMES[kind]} of the stream entering layer {layer}{where}"
        if kind == "dimensions":
            out[kind] = linear_basis(np.eye(d), mean, layer, kind, source, input_point)
        elif kind == "pca":
            q, ratio = pca_directions(x)
            out[kind] = linear_basis(q, mean, layer, kind, source, input_point)
            out[kind].meta["explained_variance_ratio"] = ratio.tolist()
        else:
            out[kind] = linear_basis(random_rotation(d, seed, layer), mean, layer, kind, source, input_point)
    return out
