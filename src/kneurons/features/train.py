"""Training an SAE on the fine-tuned classifier's own residual stream (the ``kneurons`` SAE format).

So that features can be studied without downloads (and on any model, fine-tuned or not), the
workflow trains a TopK SAE itself: InterProt's math (inputs z-scored per token, TopK then ReLU,
``kneurons.features.sae``), on the stream entering layer ``l`` at every non-padding token of the
given sequences (BOS and EOS included, like neuron activations). A seeded share of the sequences
is held out; the SAE's quality is measured there: the normalised reconstruction error (FVU, in
the stream's own units) and the share of dead features (never active on a held-out token).

Training follows Gao et al. 2024 ("Scaling and evaluating sparse autoencoders") in its simple
parts: the encoder initialised as the transpose of a random unit-row decoder, the pre-encoder
bias at the mean input, Adam on the mean squared error of the z-scored stream, decoder rows
renormalised to unit length after every step. Deterministic on the CPU for a given seed (its own
generators; the global RNG is not touched).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from kneurons.errors import InputError
from kneurons.features.quality import active_features, fraction_unexplained, reconstruct, stream_tokens
from kneurons.features.sae import SaeCode, SparseAutoencoder
from kneurons.features.sizes import default_sizes
from kneurons.model.classifier import EsmClassifier
from kneurons.progress import eta_text, progress_extra

log = logging.getLogger(__name__)


def split_heldout(n: int, heldout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train, held_out)`` indices of ``n`` sequences; at least one in each."""
    if n < 2:
        raise InputError(f"training an SAE needs at least 2 sequences (one held out), got {n}")
    if not 0 < heldout < 1:
        raise InputError(f"the held-out share must lie in (0, 1), got {heldout}")
    order = np.random.default_rng(seed).permutation(n)
    n_held = min(n - 1, max(1, round(heldout * n)))
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def within_tokens(sequences: list[str], max_tokens: int) -> list[str]:
    """The first sequences whose tokens (residues + BOS + EOS) fit in ``max_tokens`` (at least one)."""
    total = np.cumsum([len(s) + 2 for s in sequences])
    return sequences[: max(1, int(np.searchsorted(total, max_tokens, side="right")))]


def train_sae(
    model: EsmClassifier,
    sequences: Sequence[str],
    layer: int,
    *,
    n_features: int | None = None,
    k: int | None = None,
    epochs: int = 20,
    batch_tokens: int = 512,
    lr: float = 1e-3,
    heldout: float = 0.1,
    max_tokens: int = 200_000,
    seed: int = 0,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    model_sha256: str | None = None,
) -> SparseAutoencoder:
    """A TopK SAE on ``model``'s stream entering ``layer`` (``num_layers``: after the final norm).

    ``n_features`` and ``k`` default to ``default_sizes(d)``. A seeded ``heldout`` share of
    ``sequences`` is held out; the training tokens are those of the other sequences, at most
    ``max_tokens`` (whole sequences, in a seeded order). ``epochs`` passes over them in
    shuffled batches of ``batch_tokens``. ``model_sha256`` identifies the classifier (e.g. the
    sha256 of its ``best.pt``, as score tables record it).

    The SAE's ``meta`` is the training record: held-out ``fvu`` and ``dead_share``, token and
    sequence counts, the settings; ``save_sae`` writes it with the tensors.
    """
    if not 0 <= layer <= model.num_layers:
        raise InputError(f"layer {layer} is not a stream point of this {model.num_layers}-layer model")
    seqs = [str(s) for s in sequences]
    train_idx, held_idx = split_heldout(len(seqs), heldout, seed)
    train_seqs = within_tokens(
        [seqs[i] for i in np.random.default_rng(seed + 1).permutation(train_idx)], max_tokens
    )
    started = time.monotonic()
    h_train = stream_tokens(model, train_seqs, [layer], token_budget, device)[layer]
    h_held = stream_tokens(model, [seqs[i] for i in held_idx], [layer], token_budget, device)[layer]
    d = h_train.shape[1]
    default_f, default_k = default_sizes(d)
    n_features = int(n_features or default_f)
    k = int(k or min(default_k, n_features))

    g = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(n_features, d, generator=g, dtype=torch.float32)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    sae = SparseAutoencoder(
        W_enc=w_dec.T,
        b_enc=torch.zeros(n_features),
        W_dec=w_dec,
        b_pre=torch.zeros(d),
        b_dec=torch.zeros(d),
        layer=layer,
        k=k,
        zscore=True,
        format="kneurons",
        source=f"(SAE being trained on layer {layer})",
    )
    sae.b_dec = sae.b_pre  # tied during training: InterProt's b_pre is both biases
    z = sae.normalise(h_train)[0]
    params = [sae.W_enc, sae.b_enc, sae.W_dec, sae.b_pre]
    with torch.no_grad():
        sae.b_pre.copy_(z.mean(0))
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    n = len(z)
    steps, last_log = 0, time.monotonic()
    fit_start = last_log
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(n, generator=g).split(batch_tokens):
            zb = z[idx]
            z_hat = sae.decode(SaeCode(sae.activate(sae.pre_activations(zb))))
            loss = ((z_hat - zb) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True)
            steps += 1
            total += float(loss.detach()) * len(idx)
        now = time.monotonic()
        if now - last_log >= 5 or epoch == epochs - 1:
            rate = (epoch + 1) / max(now - fit_start, 1e-9)
            log.info(
                "SAE layer %d: epoch %d/%d, training MSE %.4g (z-scored), %.3g epochs/s, ETA %s",
                layer,
                epoch + 1,
                epochs,
                total / n,
                rate,
                eta_text((epochs - epoch - 1) / rate),
                extra=progress_extra(always=epoch == epochs - 1),
            )
            last_log = now

    trained = SparseAutoencoder(
        **{name: getattr(sae, name).detach() for name in ("W_enc", "b_enc", "W_dec", "b_pre")},
        b_dec=sae.b_pre.detach(),
        layer=layer,
        k=k,
        zscore=True,
        format="kneurons",
        source=f"(SAE trained on layer {layer}, not yet saved)",
    )
    fvu = fraction_unexplained(h_held, reconstruct(trained, h_held))
    dead = 1.0 - float(active_features(trained, h_held).float().mean())
    trained.meta = {
        "model_sha256": model_sha256,
        "fvu": fvu,
        "dead_share": dead,
        "n_train_sequences": len(train_seqs),
        "n_heldout_sequences": len(held_idx),
        "n_train_tokens": int(n),
        "n_heldout_tokens": len(h_held),
        "epochs": int(epochs),
        "steps": steps,
        "batch_tokens": int(batch_tokens),
        "lr": float(lr),
        "seed": int(seed),
    }
    log.info(
        "SAE layer %d (d=%d, F=%d, k=%d): held-out FVU %.4f, dead features %.1f%%, %d tokens, %.1f s",
        *(layer, d, n_features, k, fvu, 100 * dead, n, time.monotonic() - started),
    )
    return trained
