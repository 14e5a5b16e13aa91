"""ESM-2 backbone + classification head, with the residual-stream API that scoring and ablation use.

``EsmClassifier`` splits its forward pass into ``embed`` -> ``run_layers`` -> ``classify`` so that
a caller can compute the residual stream entering layer ``l`` once and re-run only layers
``>= l``; inside a layer it offers the resume points (``RESUME_POINTS``, ``position_of``,
``run_layer_with_states``, ``resume_layer``) and the named modules ``q_proj`` ... ``fc2``.
Sparse autoencoders attached to the residual stream (``attach_sae``) add one more unit name,
``"sae"`` (``kneurons.vocabulary.FEATURE_MODULE``): ``module(layer, "sae")`` is the hook point of
the features of the SAE on the stream entering ``layer`` (``kneurons.features``). An SAE reads the
model at its input point (``kneurons.features.sae.InputPoint``), which the classifier serves:
the tokens of the batch last embedded (``sae_positions``), the stream that entered the block
before a layer in the same pass (``stream_before``), and whether the embeddings get ESM-2's
token-dropout rescale (``embedding_rescale``, set by the attached SAEs).

What the backbone library does inside is its backend's business (``kneurons.model.backends``: the
registry, ``base`` the protocol, one sub-package per family): callers never reach into ``model.esm``.
The stream keeps the backend's layout; ``batch_dim`` says where the batch is (fair-esm:
time-first ``(T, B, E)``; HF: batch-first). Module outputs, as hooks see them, are ``(T, B, n)``.
Checkpoints record the backend (``BackboneSpec.backend``), so ``load_classifier`` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from kneurons.errors import InputError, ModelError
from kneurons.model.backends import backend_class, backend_for
from kneurons.model.backends.base import (
    MODULE_TYPES,
    RESUME_POINTS,
    BackboneSpec,
    LayerState,
    position_of,
    repeat_padding,
)
from kneurons.model.backends.fair_esm.backend import get_alphabet, tokenize
from kneurons.model.hooks import HookPoint
from kneurons.vocabulary import FEATURE_MODULE

if TYPE_CHECKING:  # features sit above the model: named for types only
    from kneurons.features.hook import SaeHookPoint
    from kneurons.features.sae import SparseAutoencoder

# Stages import the module names and fair-esm's tokenizer from here (model.tokenize is the API);
# checkpoints of a classifier are ``kneurons.model.checkpoint``'s.
__all__ = [
    "MODULE_TYPES",
    "RESUME_POINTS",
    "BackboneSpec",
    "EsmClassifier",
    "build_backbone",
    "get_alphabet",
    "tokenize",
]


def build_backbone(spec: BackboneSpec) -> nn.Module:
    """The backbone of ``spec`` with random weights, in its backend's library."""
    return backend_class(spec.backend).build(spec)


class EsmClassifier(nn.Module):
    """ESM-2 with a linear classification head on pooled token representations.

    ``pooling='mean'`` averages the final representations over residues (BOS, EOS and padding
    excluded); ``pooling='bos'`` takes the BOS token. ``attention`` picks the self-attention
    implementation (``sdpa`` fast path or the library's ``reference``; each backend's
    ``set_attention``).
    The backbone stays the registered submodule ``esm`` (checkpoint keys ``esm.*``); ``backend``
    is the plain object that knows its insides.
    """

    #: Resume points inside a layer, in forward order (``kneurons.model.backends.base``).
    RESUME_POINTS = RESUME_POINTS

    def __init__(self, backbone: nn.Module, num_classes: int, pooling: str = "mean", attention: str = "sdpa"):
        super().__init__()
        if pooling not in ("mean", "bos"):
            raise ModelError(f"unknown pooling {pooling!r}; use 'mean' or 'bos'")
        self.backend = backend_for(backbone)
        self.backend.set_attention(attention)
        self.esm = backbone
        self.pooling = pooling
        self.num_classes = int(num_classes)
        self.head = nn.Linear(self.backend.embed_dim, self.num_classes)
        # Plain dicts, not submodules: attached SAEs are never part of the classifier's state dict
        # (checkpoints stay the same); ``_apply`` moves them with the model.
        self.saes: dict[int, SparseAutoencoder] = {}
        self._sae_points: dict[int, SaeHookPoint] = {}
        # The tokens of the batch last embedded: which tokens an SAE's features exist at.
        self._batch_tokens: torch.Tensor | None = None

    # -- the residual-stream API --------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Transformer layers."""
        return self.backend.num_layers

    @property
    def embed_dim(self) -> int:
        """Width of the residual stream."""
        return self.backend.embed_dim

    @property
    def batch_dim(self) -> int:
        """Where the batch is in the residual stream (hooked module outputs are always time-first)."""
        return self.backend.batch_dim

    @property
    def qk_bilinear(self) -> bool:
        """True when attention logits are bilinear in the ``q_proj`` and ``k_proj`` outputs (no norm between).

        A backend that does not say so is taken not to be (the exact, slower choice).
        """
        return bool(getattr(self.backend, "qk_bilinear", False))

    def embed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Residual stream entering layer 0 and the padding mask ``(B, T)`` (None when nothing is padded).

        The tokens are kept until the next batch is embedded: every pass over a batch starts here,
        and the attached SAEs' features exist only at their input tokens (``sae_positions``).
        """
        self._batch_tokens = tokens
        return self.backend.embed(tokens)

    @property
    def embedding_rescale(self) -> bool:
        """Whether the embeddings get ESM-2's token-dropout rescale (x 0.88 without masked tokens),
        as the model computes them; False while an SAE trained without it is attached (InterProt's
        input point). A backbone without token dropout has no rescale either way."""
        return bool(getattr(self.backend, "embedding_rescale", True))

    @embedding_rescale.setter
    def embedding_rescale(self, value: bool) -> None:
        self.backend.embedding_rescale = bool(value)

    def run_layers(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None,
        start: int = 0,
        stop: int | None = None,
    ) -> torch.Tensor:
        """Run transformer layers ``start .. stop-1`` on the residual stream ``x``."""
        return self.backend.run_layers(x, padding_mask, start, stop)

    def run_through(self, x: torch.Tensor, padding_mask: torch.Tensor | None, layer: int) -> torch.Tensor:
        """Run from ``x`` entering layer 0 until every unit of ``layer`` is computed (its hooks fired).

        Layers ``0..layer``; for ``layer = num_layers`` (where only stream units live: the
        features of an SAE after the final norm) all layers and the final norm. Returns the
        stream reached (after the final norm, batch-first, for ``num_layers``).
        """
        x = self.run_layers(x, padding_mask, 0, layer + 1)
        return self.backend.final_norm(x) if layer >= self.num_layers else x

    def classify(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Final layer norm, pooling and head on the residual stream after the last layer."""
        return self.head(self.pool(self.backend.final_norm(x), tokens))

    def pool(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Pool (B,T,E) representations to (B,E)."""
        if self.pooling == "bos":
            return h[:, 0]
        w = self.residue_mask(tokens).unsqueeze(-1).to(h.dtype)
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        x, padding_mask = self.embed(tokens)
        return self.classify(self.run_layers(x, padding_mask), tokens)

    # -- resume points inside a layer ------------------------------------------------------
    @staticmethod
    def position_of(module_type: str) -> int:
        """Index in ``RESUME_POINTS`` of the resume point just before ``module_type``'s output."""
        return position_of(module_type)

    def run_layer_with_states(
        self, layer: int, x: torch.Tensor, padding_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, LayerState]:
        """Output of layer ``layer`` on ``x`` and the state cached at each of its resume points."""
        return self.backend.run_layer_with_states(layer, x, padding_mask)

    def resume_layer(self, layer: int, position: int, state: LayerState, copies: int = 1) -> torch.Tensor:
        """Output of layer ``layer`` recomputed from resume point ``position`` of ``state``.

        The batch is repeated ``copies`` times (copy-major, as ``repeat_stream``); forward hooks
        on the modules at and after the resume point fire. Bit-identical to the layer's own pass.
        """
        return self.backend.resume_layer(layer, position, state, copies)

    def repeat_stream(self, x: torch.Tensor, copies: int) -> torch.Tensor:
        """The residual stream with its batch repeated ``copies`` times (copy-major); ``x`` itself for 1."""
        return self.backend.repeat_stream(x, copies)

    @staticmethod
    def repeat_padding(padding_mask: torch.Tensor | None, copies: int) -> torch.Tensor | None:
        """The padding mask repeated like ``repeat_stream``."""
        return repeat_padding(padding_mask, copies)

    # -- units: neurons and features ------------------------------------------------------
    def module(self, layer: int, module_type: str) -> nn.Linear | HookPoint | SaeHookPoint:
        """Hook point of the units ``module_type`` of layer ``layer`` (0-based); hooks see ``(T, B, n)``.

        ``module_type`` is a neuron-bearing module (``MODULE_TYPES``) or ``"sae"``: the features of
        the SAE attached to the stream entering ``layer`` (``attach_sae``).
        """
        if module_type == FEATURE_MODULE:
            if layer not in self._sae_points:
                raise ModelError(
                    f"no SAE is attached at layer {layer}; attached at layers {sorted(self.saes) or 'none'}"
                )
            return self._sae_points[layer]
        return self.backend.module(layer, module_type)

    def unit_start(self, layer: int, module_type: str) -> tuple[int, int]:
        """``(layer, resume point)`` from which a pass computes the units ``module_type`` of ``layer``
        with all they need: the resume point before a neuron's module; for SAE features the layer's
        input, or the input of the layer before for an SAE that reads that block's update
        (``InputPoint.update``: its pass must carry the stream entering that block)."""
        if module_type == FEATURE_MODULE and layer > 0:
            sae = self.saes.get(layer)
            if sae is not None and sae.input_point.update:
                return layer - 1, 0
        return layer, position_of(module_type)

    def unit_layers(self, module_type: str) -> list[int]:
        """The layers that have units ``module_type``: every layer for a neuron-bearing module, the
        layers of the attached SAEs (``0..num_layers``) for ``"sae"``."""
        if module_type == FEATURE_MODULE:
            return sorted(self.saes)
        position_of(module_type)  # an unknown module is an error
        return list(range(self.num_layers))

    def stream_point(self, layer: int) -> nn.Module | HookPoint:
        """Hook point on the residual stream entering ``layer`` (``num_layers``: after the final norm).

        Its hooks see the stream time-first ``(T, B, E)`` (``Backend.stream_point`` in
        ``kneurons.model.backends.base``).
        """
        return self.backend.stream_point(layer)

    def attach_sae(self, sae: SparseAutoencoder) -> None:
        """Attach ``sae`` to the stream point of its layer (replacing any SAE there).

        Its features become the units ``"sae"`` of that layer, read at its input point. Refused
        (``InputError`` naming the SAE's file) when its width is not the stream's, its layer is not
        a stream point, or it needs the model run otherwise than an SAE already attached (with and
        without the embeddings' rescale: one run cannot serve both).
        """
        sae.check_fits(self.embed_dim, self.num_layers)
        rescaled = sae.input_point.rescaled_embeddings
        for other in self.saes.values():
            if other.layer != sae.layer and other.input_point.rescaled_embeddings != rescaled:
                raise InputError(
                    f"{sae.source}: reads the model run {'with' if rescaled else 'without'} ESM-2's "
                    f"token-dropout rescale of the embeddings, {other.source} (layer {other.layer}) "
                    f"{'without' if rescaled else 'with'} it; one run of the model cannot serve both: "
                    f"study them in separate runs"
                )
        self.saes[sae.layer] = sae
        self.embedding_rescale = rescaled
        self._sae_points[sae.layer] = sae.hook_point(self.stream_point(sae.layer), self)
        self._keep_streams()
        sae.to(self.head.weight)  # the model's device and dtype

    def detach_sae(self, layer: int) -> None:
        """Remove the SAE attached at ``layer`` (a no-op when there is none)."""
        self.saes.pop(layer, None)
        self._sae_points.pop(layer, None)
        self._keep_streams()
        if not self.saes:
            self.embedding_rescale = True

    def _keep_streams(self) -> None:
        """Keep, in each pass, the stream entering the block before an SAE on that block's update."""
        self.backend.streams.keep = {
            s.layer - 1 for s in self.saes.values() if s.input_point.update and s.layer
        }

    def sae_positions(self, positions: str, h: torch.Tensor) -> torch.Tensor | None:
        """``(T, rows, 1)`` True at the tokens ``positions`` (``"tokens"``: None, every token;
        ``"residues"``: BOS, EOS and padding excluded) of the batch last embedded, repeated to the
        ``rows`` (copies x batch, copy-major) of the time-first stream ``h``."""
        if positions == "tokens":
            return None
        tokens = self._batch_tokens
        if tokens is None or tokens.shape[1] != h.shape[0] or h.shape[1] % tokens.shape[0]:
            raise ModelError(
                f"the stream's {tuple(h.shape[:2])} (tokens, rows) do not belong to the batch last embedded "
                f"{None if tokens is None else tuple(tokens.shape[::-1])}: an SAE's input tokens are unknown"
            )
        if positions != "residues":
            raise ModelError(f"unknown SAE positions {positions!r}")
        mask = self.residue_mask(tokens).to(h.device).T  # (T, B)
        return mask.repeat(1, h.shape[1] // tokens.shape[0]).unsqueeze(-1)

    def stream_before(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """The stream, time-first, that entered block ``layer - 1`` in the pass now at stream point
        ``layer`` with stream ``h`` (the update of that block is ``h - stream_before``). A pass that
        did not come through block ``layer - 1`` is refused (``unit_start`` says where to start)."""
        before = self.backend.streams.before(layer)
        if before.shape != h.shape:
            raise ModelError(
                f"the stream entering layer {layer - 1} in this pass is {tuple(before.shape)}, the stream "
                f"at layer {layer} {tuple(h.shape)}: not one pass"
            )
        return before

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> EsmClassifier:
        # Moves and casts (.to, .double(), ...) carry the attached SAEs along with the model.
        super()._apply(fn, recurse)
        for sae in self.saes.values():
            sae._apply(fn, recurse)
        return self

    def neuron_count(self, module_type: str) -> int:
        """Output units of a module type (the same in every layer)."""
        return self.module(0, module_type).out_features

    # -- tokens --------------------------------------------------------------------------
    @property
    def padding_idx(self) -> int:
        """Token id of padding (never part of a neuron's activation)."""
        return self.backend.padding_idx

    def tokenize(self, sequences: list[str]) -> torch.Tensor:
        """Token ids ``(B, T)`` of ``sequences`` with BOS/EOS and right padding, on the CPU."""
        return self.backend.tokenize(list(sequences))

    def residue_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` True at residues: BOS, EOS and padding excluded (what mean pooling averages)."""
        return self.backend.residue_mask(tokens)

    def token_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(T, B, 1)`` True at non-padding tokens (BOS/EOS included): broadcasts against hooked outputs."""
        return tokens.ne(self.padding_idx).T.unsqueeze(-1)

    def unit_mask(self, tokens: torch.Tensor, layer: int, module_type: str) -> torch.Tensor:
        """``(T, B, 1)`` True at the tokens where the units ``module_type`` of ``layer`` exist: every
        non-padding token for neurons, the SAE's input tokens for its features (residues only for
        an InterPLM SAE). What per-token statistics of the units average over."""
        mask = self.token_mask(tokens)
        sae = self.saes.get(layer) if module_type == FEATURE_MODULE else None
        if sae is not None and sae.input_point.positions == "residues":
            return self.residue_mask(tokens).T.unsqueeze(-1) & mask
        return mask
