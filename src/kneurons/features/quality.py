"""How well an SAE reconstructs the stream it is attached to, and the wrong-layer check.

The measure is the normalised reconstruction error, the fraction of variance unexplained
``FVU = sum ||h - h_hat||^2 / sum ||h - mean(h)||^2`` over the non-padding tokens (BOS and EOS
included, the tokens neuron activations cover), in the stream's own units. An SAE attached to
the wrong layer betrays itself: it reconstructs a neighbouring layer's stream far better than
its own. ``reconstruction_report`` measures the error at the SAE's layer and at its neighbours
and refuses an SAE whose own error exceeds ``WRONG_LAYER_RATIO`` times a neighbour's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from kneurons.errors import InputError
from kneurons.features.sae import SparseAutoencoder
from kneurons.model.classifier import EsmClassifier
from kneurons.model.hooks import module_output_hooks
from kneurons.model.inference import Batch, run_batches

#: An SAE whose FVU at its own layer is more than this many times its FVU at a neighbouring layer
#: is refused as attached to the wrong layer. Residual streams of adjacent layers are alike, so a
#: correctly placed SAE does worse next door, never far better; one trained for the neighbour
#: does several times better there. Measured on the tests' fine-tuned 2-layer model: an SAE
#: trained on layer 1 has FVU 0.035 there and 0.28 / 0.48 at layers 0 / 2; one trained on layer 0,
#: attached at layer 1, has 0.38 there and 0.017 at layer 0 (tests/test_sae.py refuses the layer-1
#: SAE attached at layers 0 and 2).
WRONG_LAYER_RATIO = 2.0
#: Tokens encoded at once when measuring (bounds the ``(tokens, F)`` feature matrix).
CHUNK_TOKENS = 4096


def stream_tokens(
    model: EsmClassifier,
    sequences: Sequence[str],
    layers: Sequence[int],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    residues: bool = False,
) -> dict[int, torch.Tensor]:
    """The residual stream at stream points ``layers`` over every non-padding token: ``{layer: (N, E)}``.

    Float32 on the CPU, one row per token (BOS and EOS included; ``residues``: the residues' tokens
    only), sequences in the batches' length-sorted order; one forward pass per batch, without grad.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    layers = sorted({int(layer) for layer in layers})
    points = {layer: model.stream_point(layer) for layer in layers}
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}

    def step(batch: Batch) -> dict[int, torch.Tensor]:
        mask = (
            model.residue_mask(batch.tokens).T if residues else model.token_mask(batch.tokens)[..., 0]
        )  # (T, B)
        held: dict[int, torch.Tensor] = {}

        def keep(layer: int):
            def fn(h: torch.Tensor) -> None:
                held[layer] = h[mask].float().cpu()

            return fn

        with torch.no_grad(), module_output_hooks([(points[layer], keep(layer)) for layer in layers]):
            x, pm = model.embed(batch.tokens)
            model.run_through(x, pm, layers[-1])
        return held

    for _batch, held in run_batches(model, sequences, step, token_budget, device, bf16=False, what="stream"):
        for layer in layers:
            out[layer].append(held[layer])
    return {
        layer: torch.cat(parts) if parts else torch.zeros(0, model.embed_dim) for layer, parts in out.items()
    }


def reconstruct(sae: SparseAutoencoder, h: torch.Tensor, chunk: int = CHUNK_TOKENS) -> torch.Tensor:
    """``sae``'s reconstruction of the tokens ``h`` ``(N, d)``, encoded ``chunk`` tokens at a time."""
    if not len(h):
        return h.clone()
    with torch.no_grad():  # on the SAE's device and dtype (an attached SAE stays where its model is)
        return torch.cat([sae.decode(sae.code(part.to(sae.W_enc))).to(h) for part in h.split(chunk)])


def active_features(sae: SparseAutoencoder, h: torch.Tensor, chunk: int = CHUNK_TOKENS) -> torch.Tensor:
    """``(F,)`` True for the features that fire (are nonzero) on at least one of the tokens ``h``."""
    active = torch.zeros(sae.n_features, dtype=torch.bool)
    with torch.no_grad():
        for part in h.split(chunk):
            active |= (sae.encode(part.to(sae.W_enc)) != 0).any(0).cpu()
    return active


def fraction_unexplained(h: torch.Tensor, h_hat: torch.Tensor) -> float:
    """FVU: ``sum ||h - h_hat||^2 / sum ||h - mean(h)||^2`` over the rows of ``h`` (float64)."""
    h, h_hat = h.double(), h_hat.double()
    total = float(((h - h.mean(0)) ** 2).sum())
    return float(((h - h_hat) ** 2).sum()) / total if total > 0 else float("nan")


def reconstruction_errors(
    model: EsmClassifier,
    sae: SparseAutoencoder,
    sequences: Sequence[str],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
) -> dict[int, float]:
    """FVU of ``sae`` on the stream at its layer and at the neighbouring stream points that exist."""
    return _errors(sae, _streams_around(model, sae, sequences, token_budget, device))


def _streams_around(
    model: EsmClassifier, sae: SparseAutoencoder, sequences: Sequence[str], token_budget: int, device
) -> dict[int, torch.Tensor]:
    """The stream tokens at the SAE's layer and at the neighbouring stream points that exist (one pass)."""
    layers = [layer for layer in (sae.layer - 1, sae.layer, sae.layer + 1) if 0 <= layer <= model.num_layers]
    return stream_tokens(model, sequences, layers, token_budget, device)


def _errors(sae: SparseAutoencoder, tokens: dict[int, torch.Tensor]) -> dict[int, float]:
    return {layer: fraction_unexplained(h, reconstruct(sae, h)) for layer, h in tokens.items()}


def check_layer_fit(sae: SparseAutoencoder, errors: dict[int, float]) -> None:
    """Refuse, naming the file and the errors, an SAE that reconstructs a neighbouring layer far better.

    ``errors`` is ``reconstruction_errors``'s ``{layer: FVU}``; refused when the FVU at the SAE's
    layer exceeds ``WRONG_LAYER_RATIO`` times the FVU at a neighbour.
    """
    own = errors[sae.layer]
    for layer, err in errors.items():
        if layer != sae.layer and own > WRONG_LAYER_RATIO * err:
            shown = ", ".join(f"layer {n}: {e:.3g}" for n, e in sorted(errors.items()))
            raise InputError(
                f"{sae.source}: attached to layer {sae.layer}, this SAE reconstructs layer {layer} far "
                f"better (FVU {shown}; more than {WRONG_LAYER_RATIO:g}x worse at its own layer): "
                f"an SAE of another layer? (layer l reads the stream entering layer l)"
            )


def reconstruction_report(
    model: EsmClassifier,
    sae: SparseAutoencoder,
    sequences: Sequence[str],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The SAE's reconstruction errors at its layer and its neighbours, after the wrong-layer check,
    and on the same tokens of its own layer the share of its features that never fire.

    ``{"layer": l, "source": file, "format": ..., "fvu": {layer: FVU}, "dead_share": share,
    "n_tokens": tokens at its layer}`` (a table row per SAE); an InputError (``check_layer_fit``)
    for an SAE that fits a neighbouring layer far better. The stream is read once.
    """
    tokens = _streams_around(model, sae, sequences, token_budget, device)
    errors = _errors(sae, tokens)
    check_layer_fit(sae, errors)
    own = tokens[sae.layer]
    return {
        "layer": sae.layer,
        "source": sae.source,
        "format": sae.format,
        "fvu": errors,
        "dead_share": 1.0 - float(active_features(sae, own).float().mean()),
        "n_tokens": len(own),
    }
