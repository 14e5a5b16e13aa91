"""How well an SAE fits the model it is attached to: reconstruction at every layer, loss recovered,
dead and dense features, and the wrong-layer check (DESIGN.md, "Features").

All of it is measured at the SAE's input point (``kneurons.features.sae.InputPoint``): its input
tokens, its run of the model, the stream or the block's update it reads (``sae_inputs``).

* **FVU**, the fraction of variance unexplained ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over
  the input tokens, in the input's own units, at the SAE's layer and at every other stream point
  (the same SAE read there). Where the input point is not the plain one (every token of the
  model's own run), the FVU at the plain point too: what reading the model otherwise would give.
* **Loss recovered**, the field's standard (e.g. Gao et al. 2024): the classifier's cross-entropy
  with the SAE's input replaced by its reconstruction (the error term dropped), against zero
  ablation of that input (the stream, or the block's update, zeroed at the input tokens):
  ``(L_zero - L_recon) / (L_zero - L_clean)``; 1 = the reconstruction loses nothing, 0 = no better
  than nothing. NaN when zeroing does not change the loss.
* **Dead** features never fire on the input tokens; **dense** ones fire on more than
  ``DENSE_FREQUENCY`` of them.

An SAE attached to the wrong layer betrays itself: it reconstructs another layer's stream far
better than its own. ``check_layer_fit`` refuses an SAE whose FVU at its own layer exceeds
``WRONG_LAYER_RATIO`` times its FVU at a layer where it fits (FVU at most the quality rule's
``max_fvu``), and one that is worse than predicting every token by the mean (FVU above
``MAX_USEFUL_FVU``): it describes nothing of this model. Whether an SAE that passes fits well
enough for its features to carry claims is the quality rule's (``kneurons.stats.sae_quality``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from kneurons.errors import InputError
from kneurons.features.sae import InputPoint, SparseAutoencoder
from kneurons.model.classifier import EsmClassifier
from kneurons.model.hooks import module_output_hooks
from kneurons.model.inference import Batch, run_batches
from kneurons.vocabulary import FEATURE_MODULE

#: An SAE whose FVU at its own layer is more than this many times its FVU at a layer where it fits
#: is refused as attached to the wrong layer. Residual streams of nearby layers are alike, so a
#: correctly placed SAE does worse elsewhere, never far better; one trained for another layer does
#: several times better there. Measured on the tests' fine-tuned 2-layer model: an SAE trained on
#: layer 1 has FVU 0.035 there and 0.28 / 0.48 at layers 0 / 2; one trained on layer 0, attached
#: at layer 1, has 0.38 there and 0.017 at layer 0 (tests/test_sae.py refuses the layer-1 SAE
#: attached at layers 0 and 2).
WRONG_LAYER_RATIO = 2.0
#: FVU 1 is what predicting every token by the mean input achieves: above it an SAE describes
#: nothing of the stream it reads, and is refused whatever its layer.
MAX_USEFUL_FVU = 1.0
#: A feature firing on more than this share of the input tokens counts as dense.
DENSE_FREQUENCY = 0.1
#: Tokens encoded at once when measuring (bounds the ``(tokens, F)`` feature matrix).
CHUNK_TOKENS = 4096


@contextlib.contextmanager
def model_run(model: EsmClassifier, rescaled_embeddings: bool) -> Iterator[None]:
    """Within the block, the model runs with (or without) the token-dropout rescale of its
    embeddings; the setting the attached SAEs chose comes back after it."""
    before = model.embedding_rescale
    model.embedding_rescale = rescaled_embeddings
    try:
        yield
    finally:
        model.embedding_rescale = before


def stream_tokens(
    model: EsmClassifier,
    sequences: Sequence[str],
    layers: Sequence[int],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    point: InputPoint | None = None,
) -> dict[int, torch.Tensor]:
    """The residual stream (or what ``point`` reads: the block's update, residues only) at stream
    points ``layers`` over every token ``point`` reads: ``{layer: (N, E)}``.

    ``point`` None: the stream at every non-padding token (BOS and EOS included) of the model's run
    as it is set. Float32 on the CPU, one row per token, sequences in the batches' length-sorted
    order; one forward pass per batch, without grad. The model's run is ``point``'s while it runs.
    """
    point = point or InputPoint(rescaled_embeddings=model.embedding_rescale)
    device = torch.device(device)
    model = model.to(device).eval()
    layers = sorted({int(layer) for layer in layers})
    needed = sorted(set(layers) | ({layer - 1 for layer in layers if layer > 0} if point.update else set()))
    points = {layer: model.stream_point(layer) for layer in needed}
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}

    def step(batch: Batch) -> dict[int, torch.Tensor]:
        if point.positions == "residues":
            mask = model.residue_mask(batch.tokens).T  # (T, B)
        else:
            mask = model.token_mask(batch.tokens)[..., 0]
        seen: dict[int, torch.Tensor] = {}

        def keep(layer: int):
            def fn(h: torch.Tensor) -> None:
                seen[layer] = h.float()

            return fn

        with torch.no_grad(), module_output_hooks([(points[layer], keep(layer)) for layer in needed]):
            x, pm = model.embed(batch.tokens)
            model.run_through(x, pm, needed[-1])
        held = {}
        for layer in layers:
            h = seen[layer] - seen[layer - 1] if point.update and layer > 0 else seen[layer]
            held[layer] = h[mask].cpu()
        return held

    with model_run(model, point.rescaled_embeddings):
        batches = run_batches(model, sequences, step, token_budget, device, bf16=False, what="stream")
        for _batch, held in batches:
            for layer in layers:
                out[layer].append(held[layer])
    return {
        layer: torch.cat(parts) if parts else torch.zeros(0, model.embed_dim) for layer, parts in out.items()
    }


def sae_inputs(
    model: EsmClassifier,
    sae: SparseAutoencoder,
    sequences: Sequence[str],
    layers: Sequence[int] | None = None,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    plain: bool = False,
) -> dict[int, torch.Tensor]:
    """What ``sae`` reads at stream points ``layers`` (None: its own layer) over its input tokens,
    at its input point (``plain``: every token of the model's own run, the same tensor kind)."""
    point = sae.input_point.plain if plain else sae.input_point
    return stream_tokens(
        model, sequences, [sae.layer] if layers is None else layers, token_budget, device, point
    )


def reconstruct(sae: SparseAutoencoder, h: torch.Tensor, chunk: int = CHUNK_TOKENS) -> torch.Tensor:
    """``sae``'s reconstruction of the tokens ``h`` ``(N, d)``, encoded ``chunk`` tokens at a time."""
    if not len(h):
        return h.clone()
    with torch.no_grad():  # on the SAE's device and dtype (an attached SAE stays where its model is)
        return torch.cat([sae.decode(sae.code(part.to(sae.W_enc))).to(h) for part in h.split(chunk)])


def firing_counts(sae: SparseAutoencoder, h: torch.Tensor, chunk: int = CHUNK_TOKENS) -> torch.Tensor:
    """``(F,)`` on how many of the tokens ``h`` each feature fires (is nonzero)."""
    counts = torch.zeros(sae.n_features, dtype=torch.long)
    with torch.no_grad():
        for part in h.split(chunk):
            counts += (sae.encode(part.to(sae.W_enc)) != 0).sum(0).cpu()
    return counts


def active_features(sae: SparseAutoencoder, h: torch.Tensor, chunk: int = CHUNK_TOKENS) -> torch.Tensor:
    """``(F,)`` True for the features that fire (are nonzero) on at least one of the tokens ``h``."""
    return firing_counts(sae, h, chunk) > 0


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
    """FVU of ``sae`` at its input point on every stream point ``0..L`` of the model (one pass)."""
    return _errors(sae, sae_inputs(model, sae, sequences, range(model.num_layers + 1), token_budget, device))


def _errors(sae: SparseAutoencoder, tokens: dict[int, torch.Tensor]) -> dict[int, float]:
    return {layer: fraction_unexplained(h, reconstruct(sae, h)) for layer, h in tokens.items()}


def check_layer_fit(sae: SparseAutoencoder, errors: dict[int, float], max_fvu: float) -> None:
    """Refuse, naming the file and the errors, an SAE that reconstructs another layer far better
    (its FVU there at most ``max_fvu``, and ``WRONG_LAYER_RATIO`` times below its own layer's), or
    one whose FVU at its own layer exceeds ``MAX_USEFUL_FVU``. ``errors``: ``{layer: FVU}``."""
    own = errors[sae.layer]
    shown = ", ".join(f"layer {n}: {e:.3g}" for n, e in sorted(errors.items()))
    if not own <= MAX_USEFUL_FVU:
        raise InputError(
            f"{sae.source}: attached to layer {sae.layer}, this SAE reconstructs the model worse than "
            f"predicting every token by the mean (FVU {shown}; above {MAX_USEFUL_FVU:g} at its own "
            f"layer): an SAE of another model? (it reads {sae.input_point.describe()})"
        )
    for layer, err in errors.items():
        if layer != sae.layer and err <= max_fvu and own > WRONG_LAYER_RATIO * err:
            raise InputError(
                f"{sae.source}: attached to layer {sae.layer}, this SAE reconstructs layer {layer} far "
                f"better (FVU {shown}; more than {WRONG_LAYER_RATIO:g}x worse at its own layer): "
                f"an SAE of another layer? (layer l reads the stream entering layer l)"
            )


def loss_recovered(
    model: EsmClassifier,
    sae: SparseAutoencoder,
    sequences: Sequence[str],
    gold: Sequence[int],
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """The classifier's mean cross-entropy on ``sequences`` (gold classes ``gold``) intact
    (``clean``), with the SAE's input replaced by its reconstruction (``reconstruction``) and by
    zero (``zero``), and ``recovered = (zero - reconstruction) / (zero - clean)`` (module docstring).
    ``sae`` must be attached to ``model``; its run of the model is the one measured."""
    if len(gold) != len(sequences):
        raise InputError(f"{len(gold)} gold classes for {len(sequences)} sequences")
    device = torch.device(device)
    model = model.to(device).eval()
    point = model.module(sae.layer, FEATURE_MODULE)
    labels = torch.as_tensor(list(gold), dtype=torch.long)
    totals = {"clean": 0.0, "reconstruction": 0.0, "zero": 0.0}

    def step(batch: Batch) -> dict[str, float]:
        target = labels[torch.as_tensor(batch.index)].to(device)
        losses = {}
        with torch.no_grad():
            losses["clean"] = float(F.cross_entropy(model(batch.tokens).float(), target, reduction="sum"))
            for what in ("reconstruction", "zero"):
                with point.replacing(what):
                    logits = model(batch.tokens).float()
                losses[what] = float(F.cross_entropy(logits, target, reduction="sum"))
        return losses

    for _batch, losses in run_batches(model, sequences, step, token_budget, device, bf16=False, what="loss"):
        for key, value in losses.items():
            totals[key] += value
    n = max(1, len(sequences))
    mean = {key: value / n for key, value in totals.items()}
    span = mean["zero"] - mean["clean"]
    recovered = (mean["zero"] - mean["reconstruction"]) / span if span != 0 else math.nan
    return {**mean, "recovered": recovered}


def reconstruction_report(
    model: EsmClassifier,
    sae: SparseAutoencoder,
    sequences: Sequence[str],
    gold: Sequence[int] | None = None,
    token_budget: int = 8192,
    device: torch.device | str = "cpu",
    max_fvu: float = 0.2,
) -> dict[str, Any]:
    """How ``sae`` (attached to ``model``) fits it on ``sequences``, after the wrong-layer check
    (``check_layer_fit`` with ``max_fvu``; an InputError for an SAE that fits another layer far
    better or nothing at all).

    ``{"layer", "source", "format", "input_point", "fvu": {layer: FVU at every stream point},
    "fvu_plain": FVU at its layer read at the plain point (None when that is its own),
    "dead_share", "dense_share", "n_tokens": its input tokens at its layer, "loss": the
    ``loss_recovered`` figures (None without ``gold``)}``. The stream is read once per point.
    """
    layers = range(model.num_layers + 1)
    tokens = sae_inputs(model, sae, sequences, layers, token_budget, device)
    errors = _errors(sae, tokens)
    check_layer_fit(sae, errors, max_fvu)
    own = tokens[sae.layer]
    fired = firing_counts(sae, own)
    plain = None
    if sae.input_point.plain != sae.input_point:
        seen = sae_inputs(model, sae, sequences, None, token_budget, device, plain=True)[sae.layer]
        plain = fraction_unexplained(seen, reconstruct(sae, seen))
    n = max(1, len(own))
    return {
        "layer": sae.layer,
        "source": sae.source,
        "format": sae.format,
        "input_point": sae.input_point.describe(),
        "fvu": errors,
        "fvu_plain": plain,
        "dead_share": float((fired == 0).float().mean()),
        "dense_share": float((fired > DENSE_FREQUENCY * n).float().mean()),
        "n_tokens": len(own),
        "loss": None if gold is None else loss_recovered(model, sae, sequences, gold, token_budget, device),
    }
