"""A sparse autoencoder: the math of every supported format in one class (DESIGN.md, "Features"),
and where it reads the model (its input point).

All four formats are one computation with format-specific tensors and switches::

    z      = (h - mu) / (sigma + eps)             normalised formats; else z = h
                                                  (z-score: mu the token's mean, sigma its unbiased
                                                  std, eps 1e-5; InterPLM's sqrt(d) scaling: mu = 0,
                                                  sigma = ||h|| / sqrt(d), eps 0)
    pre    = (z - b_pre) @ W_enc + b_enc
    f      = ReLU(TopK_k(pre)) / c                TopK formats; ReLU(pre) / c without k; pre itself if linear
    z_hat  = (f * c) @ W_dec + b_dec
    h_hat  = z_hat * sigma + mu                   normalised formats; else h_hat = z_hat

``c`` is the per-feature scale that puts activations on one scale (``activation_scale`` says
which: a file's per-feature maximum, so that every feature peaks at 1, or the SAE's own units);
it changes what a feature's activation reads, never the reconstruction or an edit's effect.

A **linear** dictionary (``linear=True``) has no nonlinearity: ``f = pre``. An orthonormal basis of
the stream (``W_enc`` = the basis, ``W_dec`` its transpose, ``b_pre = b_dec``) is one: its
coordinates reconstruct the stream exactly, and negative coordinates stay (``kneurons.features.bases``).

``W_enc`` is ``(d, F)`` and ``W_dec`` ``(F, d)`` whatever the file's layout (``kneurons.features.load``
maps each format's tensors here, with the file's names in every error). An edit of the features
keeps the SAE's error term: ``h' = h + (((f' - f) * c) @ W_dec) * s``, ``s = sigma + eps`` for
normalised formats (the inverse of the encoder's normalisation of the clean run), 1 otherwise;
TopK never runs again after an edit, so ``f' = f`` gives the intact model bit for bit.

**Input points** (``InputPoint``): an SAE reads the model where it was trained to. Which tokens
(every non-padding token, or residues only: InterPLM drops BOS and EOS), which run of the model
(its own, or without ESM-2's token-dropout rescale of the embeddings: InterProt), and which
tensor (the stream entering layer ``l``, or the update ``h[l] - h[l-1]`` of the block before it:
ESM C's residual-update SAEs). Features exist only at the SAE's input tokens: elsewhere they are
neither encoded (they read 0) nor edited. ``kneurons.features.hook`` applies it.

Feature tensors are time-first ``(T, B, F)`` like every hooked unit; the math itself works on
any leading dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from kneurons.errors import InputError

if TYPE_CHECKING:  # the hook point sits beside the SAE; imported where it is built
    from kneurons.features.hook import SaeHookPoint, StreamContext
    from kneurons.model.hooks import HookPoint

#: The SAE file formats ``load_sae`` reads (DESIGN.md, "Features").
SAE_FORMATS: tuple[str, ...] = ("interplm", "interprot", "esmc", "kneurons")
#: Added to the per-token standard deviation by the z-scored formats (InterProt's ``LN``).
ZSCORE_EPS = 1e-5
#: InterPLM's floor on a token's norm when it scales inputs to norm sqrt(d) (``normalize_to_sqrt_d``).
SQRT_D_MIN_NORM = 1e-8
#: Which tokens an SAE reads: every non-padding token (BOS and EOS included), or residues only.
POSITIONS: tuple[str, ...] = ("tokens", "residues")
#: ``activation_scale`` of an SAE whose file gives no per-feature scale.
OWN_UNITS = "the SAE's own units (its file gives no per-feature scale)"


@dataclass(frozen=True)
class InputPoint:
    """Where an SAE reads the model (module docstring): ``positions`` (``POSITIONS``), whether the
    model runs with its embeddings as it computes them (``rescaled_embeddings``; False: without
    ESM-2's token-dropout rescale, as InterProt trained on), and whether it reads the stream or
    the update of the block before its layer (``update``: ``h[l] - h[l-1]``; ``h[0]`` at layer 0)."""

    positions: str = "tokens"
    rescaled_embeddings: bool = True
    update: bool = False

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ValueError(f"unknown SAE positions {self.positions!r}; one of {', '.join(POSITIONS)}")

    @property
    def plain(self) -> InputPoint:
        """The same tensor (stream or update) at every token of the model's own run."""
        return InputPoint(update=self.update)

    def describe(self) -> str:
        """In words, for reports: e.g. ``stream entering the layer; residue tokens only (no BOS/EOS)``."""
        parts = [
            "update h[l] - h[l-1] of the block before the layer"
            if self.update
            else "stream entering the layer",
            "every token (BOS/EOS included)"
            if self.positions == "tokens"
            else "residue tokens only (no BOS/EOS)",
        ]
        if not self.rescaled_embeddings:
            parts.append("the model run without ESM-2's token-dropout rescale of the embeddings (x 0.88)")
        return "; ".join(parts)


@dataclass(frozen=True)
class SaeCode:
    """The clean run's encoding of a stream ``h``: features ``f`` and the per-token normalisation.

    ``mu`` and ``sigma`` (``(..., 1)``) are None for formats without input scaling.
    """

    f: torch.Tensor
    mu: torch.Tensor | None = None
    sigma: torch.Tensor | None = None


class SparseAutoencoder(nn.Module):
    """One SAE on the residual stream entering layer ``layer`` (``num_layers``: after the final norm).

    ``k`` is TopK's k (None: a ReLU SAE); ``zscore`` says whether inputs are z-scored per token,
    ``normalize_to_sqrt_d`` whether they are scaled to norm sqrt(d) instead (InterPLM's option).
    ``relu_first`` applies ReLU before TopK (ESM C's order) rather than after (InterProt's); the
    nonzero features are the same either way, the flag keeps each format's own order.
    ``linear``: no nonlinearity at all (``f = pre``; a basis of the stream, ``k`` must be None).
    ``feature_scale`` (``(F,)``, positive; None: 1) divides every activation, and
    ``activation_scale`` says in words what scale that gives (module docstring);
    ``input_point`` is where it reads the model (None: the stream at every token of the model's
    own run). ``source`` names the file the SAE came from (every error about it says it);
    ``meta`` holds what the file records besides tensors (a trained SAE's training record).

    The tensors are parameters that require no grad: attached to a classifier they are no part
    of its state dict or of its parameters; ``train_sae`` turns their gradients on.
    """

    def __init__(
        self,
        *,
        W_enc: torch.Tensor,
        b_enc: torch.Tensor,
        W_dec: torch.Tensor,
        b_pre: torch.Tensor,
        b_dec: torch.Tensor,
        layer: int,
        k: int | None,
        zscore: bool,
        format: str,
        source: str,
        relu_first: bool = False,
        meta: dict[str, Any] | None = None,
        normalize_to_sqrt_d: bool = False,
        feature_scale: torch.Tensor | None = None,
        activation_scale: str = OWN_UNITS,
        input_point: InputPoint | None = None,
        linear: bool = False,
    ) -> None:
        super().__init__()
        d, n = W_enc.shape
        shapes = {"W_enc": (d, n), "b_enc": (n,), "W_dec": (n, d), "b_pre": (d,), "b_dec": (d,)}
        given = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_pre": b_pre, "b_dec": b_dec}
        for name, t in given.items():
            if tuple(t.shape) != shapes[name]:
                raise InputError(f"{source}: SAE tensor {name} is {tuple(t.shape)}, expected {shapes[name]}")
            self.register_parameter(name, nn.Parameter(t.detach().clone().float(), requires_grad=False))
        if k is not None and not 1 <= int(k) <= n:
            raise InputError(f"{source}: TopK k = {k} must lie in 1..{n} (the SAE's features)")
        if linear and k is not None:
            raise InputError(f"{source}: a linear dictionary has no TopK (k = {k})")
        if zscore and normalize_to_sqrt_d:
            raise InputError(f"{source}: an SAE z-scores its inputs or scales them to sqrt(d), not both")
        self.feature_scale: torch.Tensor | None
        if feature_scale is None:
            self.register_buffer("feature_scale", None)
        else:
            scale = torch.as_tensor(feature_scale).detach().clone().float()
            if tuple(scale.shape) != (n,) or not bool((scale > 0).all()) or not bool(scale.isfinite().all()):
                raise InputError(f"{source}: the per-feature scale must be {n} positive finite values")
            self.register_buffer("feature_scale", scale)
        self.normalize_to_sqrt_d = bool(normalize_to_sqrt_d)
        self.activation_scale = str(activation_scale)
        self.input_point = input_point or InputPoint()
        self.layer = int(layer)
        self.k = None if k is None else int(k)
        self.zscore = bool(zscore)
        self.relu_first = bool(relu_first)
        self.linear = bool(linear)
        self.format = format
        self.source = str(source)
        self.meta = dict(meta or {})

    # -- sizes ----------------------------------------------------------------------------
    @property
    def d(self) -> int:
        """Width of the stream it reads."""
        return int(self.W_enc.shape[0])

    @property
    def n_features(self) -> int:
        """Number of features ``F``."""
        return int(self.W_enc.shape[1])

    def describe(self) -> dict[str, Any]:
        """Plain description (format, file, layer, d, F, k, the scale of its activations, its input
        point): what reports and tables record."""
        return {
            "format": self.format,
            "source": self.source,
            "layer": self.layer,
            "d": self.d,
            "n_features": self.n_features,
            "k": self.k,
            "activation_scale": self.activation_scale,
            "input_point": self.input_point.describe(),
        }

    # -- the math -------------------------------------------------------------------------
    @property
    def sigma_eps(self) -> float:
        """``eps`` of the normalisation: ``ZSCORE_EPS`` for z-scored SAEs, 0 otherwise."""
        return ZSCORE_EPS if self.zscore else 0.0

    def normalise(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(z, mu, sigma)``: the per-token z-score of ``h`` (InterProt's ``LN``), its scaling to norm
        sqrt(d) (InterPLM's ``normalize_to_sqrt_d``: ``mu = 0``, ``sigma = ||h|| / sqrt(d)``), or
        ``(h, None, None)``."""
        if self.normalize_to_sqrt_d:
            sigma = h.norm(dim=-1, keepdim=True).clamp_min(SQRT_D_MIN_NORM) / math.sqrt(h.shape[-1])
            return h / sigma, torch.zeros_like(sigma), sigma
        if not self.zscore:
            return h, None, None
        mu = h.mean(dim=-1, keepdim=True)
        centred = h - mu
        sigma = centred.std(dim=-1, keepdim=True)  # unbiased, as InterProt's LN
        return centred / (sigma + ZSCORE_EPS), mu, sigma

    def pre_activations(self, z: torch.Tensor) -> torch.Tensor:
        """``(z - b_pre) @ W_enc + b_enc``: the encoder before its nonlinearity."""
        return (z - self.b_pre) @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """The features from the pre-activations: ReLU, or TopK with ReLU (in the format's order),
        divided by the per-feature scale (after TopK: the scale never changes which features win);
        for a linear dictionary, the pre-activations themselves (so divided)."""
        if self.linear:
            return pre if self.feature_scale is None else pre / self.feature_scale
        if self.k is None:
            f = F.relu(pre)
        else:
            if self.relu_first:
                pre = F.relu(pre)
            top = pre.topk(self.k, dim=-1, sorted=False)
            f = torch.zeros_like(pre).scatter(-1, top.indices, F.relu(top.values))
        return f if self.feature_scale is None else f / self.feature_scale

    def code(self, h: torch.Tensor) -> SaeCode:
        """The features of stream ``h`` (``(..., d)`` -> ``(..., F)``), with the normalisation edits need."""
        z, mu, sigma = self.normalise(h)
        return SaeCode(self.activate(self.pre_activations(z)), mu, sigma)

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """The features ``f`` of stream ``h``."""
        return self.code(h).f

    def unscale(self, f: torch.Tensor) -> torch.Tensor:
        """Features (or their changes) back in the SAE's own units: ``f * c``, what ``W_dec`` decodes."""
        return f if self.feature_scale is None else f * self.feature_scale

    def decode(self, code: SaeCode) -> torch.Tensor:
        """The reconstruction ``h_hat`` of the stream from ``code`` (its features and normalisation)."""
        z_hat = self.unscale(code.f) @ self.W_dec + self.b_dec
        if code.sigma is None:
            return z_hat
        return z_hat * code.sigma + code.mu

    def edit_scale(self, code: SaeCode) -> torch.Tensor | float:
        """``s`` of the edit: ``sigma + eps`` of the clean run for normalised SAEs, 1 otherwise."""
        return 1.0 if code.sigma is None else code.sigma + self.sigma_eps

    def edit_delta(self, code: SaeCode, f_new: torch.Tensor) -> torch.Tensor:
        """``(((f_new - f) * c) @ W_dec) * s``: what replacing the features ``code.f`` by ``f_new``
        adds to the SAE's input (exactly 0 where ``f_new = f``)."""
        return self.change_delta(code, f_new - code.f)

    def change_delta(self, code: SaeCode, change: torch.Tensor) -> torch.Tensor:
        """``((change * c) @ W_dec) * s``: what a change of the features of ``code`` adds to the input."""
        return (self.unscale(change) @ self.W_dec) * self.edit_scale(code)

    def edit(self, h: torch.Tensor, code: SaeCode, f_new: torch.Tensor) -> torch.Tensor:
        """The stream with the features ``code.f`` of the clean run ``h`` replaced by ``f_new``.

        ``h + (((f_new - f) * c) @ W_dec) * s``: the error term ``h - h_hat`` is kept, so ``f_new = f``
        returns ``h`` exactly, and TopK is not re-run on the edited features.
        """
        return h + self.edit_delta(code, f_new)

    # -- attachment -----------------------------------------------------------------------
    def check_fits(self, embed_dim: int, num_layers: int) -> None:
        """Refuse (naming the file) an SAE of another width, or one at a layer the model lacks."""
        if self.d != embed_dim:
            raise InputError(
                f"{self.source}: the SAE reads a {self.d}-dim stream, but the model's residual stream "
                f"is {embed_dim}-dim (an SAE of another model size?)"
            )
        if not 0 <= self.layer <= num_layers:
            raise InputError(
                f"{self.source}: layer {self.layer} is not a stream point of this {num_layers}-layer "
                f"model (0..{num_layers}; {num_layers} is the output of the final layer norm)"
            )

    def hook_point(self, stream: nn.Module | HookPoint, context: StreamContext | None = None) -> SaeHookPoint:
        """The hook point of this SAE's features on ``stream`` (a classifier's ``stream_point(layer)``);
        ``context`` (the classifier) tells it the batch's tokens and the stream before the layer,
        which an input point other than the plain stream needs (``kneurons.features.hook``)."""
        from kneurons.features.hook import SaeHookPoint

        return SaeHookPoint(stream, self, context)
