"""What every model backend provides: the protocol, the resume points, and what rebuilds a backbone.

A **backend** wraps the transformer of one library (fair-esm's ``ESM2``, Hugging Face's
``EsmModel``, ESM C's ``EsmcModel``) and is the only code that knows its insides: tensor layout,
attention internals, module names. ``EsmClassifier`` delegates to it, so scoring, ablation and
characterisation see one API whatever the library: embed, run layers from ``l``, the named
modules ``q_proj`` ... ``fc2`` of every layer, and the **resume points** inside a layer. A new
model family is one new sub-package with a class implementing :class:`Backend`, listed in the
registry (``kneurons.model.backends.BACKENDS``).

The residual stream has hook points too (``stream_point(l)``): the stream entering layer ``l``
for ``l < num_layers`` (Hugging Face's ``hidden_states[l]``) and, for ``l = num_layers``, the
output of the final layer norm (``hidden_states[-1]``), where SAE features are read.

Resume points are where a layer's computation can restart from cached tensors, so that masks on
a module re-run only what comes after it (the ablation engine). Every backend has the same four,
in forward order (``RESUME_POINTS``); ``POSITION`` says at which one each module's output is
produced.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from kneurons.errors import ModelError
from kneurons.model.hooks import HookPoint, StreamPoint
from kneurons.vocabulary import (  # the neuron-bearing modules (every backend names them so)
    FEATURE_MODULE,
    MODULE_TYPES,
)

#: Resume points inside a transformer layer, in forward order (their index is the position):
#: the layer input (q/k/v need the whole attention), the attention context entering
#: ``out_proj``, the residual after attention (``fc1``'s block), and ``fc2``'s input.
RESUME_POINTS: tuple[str, ...] = ("layer_input", "attention_context", "post_attention", "ffn_hidden")

#: The resume point just before each module: masks on it can start from the state cached there.
POSITION: dict[str, int] = {"q_proj": 0, "k_proj": 0, "v_proj": 0, "out_proj": 1, "fc1": 2, "fc2": 3}

#: Tensors a backend caches at the resume points of one layer (its own names and layout).
LayerState = dict[str, "torch.Tensor | None"]


@dataclass(frozen=True)
class BackboneSpec:
    """What is needed to rebuild an ESM-2 backbone: its size, its name (or ``custom``) and its backend.

    ``backend`` is the library (``fair-esm``, ``hf``, ``esmc``); checkpoints written before
    backends were recorded load as fair-esm. ``hf_config`` holds a transformers backbone's
    ``config.json`` values (HF ESM-2: ``kneurons.model.backends.hf.backend.CONFIG_KEYS``; ESM C:
    its whole ``EsmcConfig``), so that the very architecture is rebuilt.
    """

    name: str
    num_layers: int
    embed_dim: int
    attention_heads: int
    token_dropout: bool = True
    backend: str = "fair-esm"
    hf_config: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, model_cfg: dict[str, Any]) -> BackboneSpec:
        """Build the spec from the ``model`` section of the workflow config (``backend: auto`` resolved)."""
        from kneurons.model.architectures import ESM2_ARCHITECTURES
        from kneurons.model.backends import resolve_backend
        from kneurons.model.backends.snapshot import fair_esm_name

        name = model_cfg["name"]
        backend = resolve_backend(model_cfg)
        if fair_esm_name(name) in ESM2_ARCHITECTURES:
            layers, dim, heads = ESM2_ARCHITECTURES[fair_esm_name(name)]
        elif name == "custom":
            c = model_cfg["custom"]
            layers, dim, heads = c["num_layers"], c["embed_dim"], c["attention_heads"]
        else:
            raise ModelError(f"unknown model {name!r}; known: custom, {', '.join(ESM2_ARCHITECTURES)}")
        return cls(name=name, num_layers=layers, embed_dim=dim, attention_heads=heads, backend=backend)


def position_of(module_type: str) -> int:
    """Index in ``RESUME_POINTS`` of the resume point just before ``module_type``.

    SAE features (``"sae"``) read the stream entering their layer: the layer's input, position 0.
    """
    if module_type == FEATURE_MODULE:
        return 0
    try:
        return POSITION[module_type]
    except KeyError:
        raise ModelError(f"unknown module {module_type!r}; one of {', '.join(MODULE_TYPES)}") from None


class Backend(Protocol):
    """The transformer of one library, behind the classifier's API.

    The residual stream keeps the library's own layout; ``batch_dim`` says where the batch is in
    it (fair-esm: time-first ``(T, B, E)``, batch at 1). Module outputs, as hooks see them, are
    time-first ``(T, B, n)`` for every backend (``kneurons.model.hooks``). The padding mask
    returned by ``embed`` is ``(B, T)`` (True = padding) or None when nothing is padded.
    """

    batch_dim: int
    #: The backend's stream points (``StreamPoints``): where hooks read the stream, and the stream
    #: that entered the block before a point in the current pass (``StreamPoints.before``).
    streams: StreamPoints
    #: Whether ``embed`` applies the library's token-dropout rescale of the embeddings where the
    #: backbone has one (ESM-2: x 0.88 without masked tokens); the classifier turns it off for an
    #: SAE trained without it. A backend with no such rescale ignores it.
    embedding_rescale: bool

    # -- what the registry asks of a backend class (kneurons.model.backends) ------------------
    @staticmethod
    def accepts(backbone: nn.Module) -> bool:
        """True when ``backbone`` is this library's model."""

    @classmethod
    def build(cls, spec: BackboneSpec) -> nn.Module:
        """A backbone of ``spec`` with random weights (the very architecture, where ``spec`` records it)."""

    @classmethod
    def load(
        cls, model_cfg: dict[str, Any], download: bool = True, downloader: Any = None
    ) -> tuple[nn.Module, BackboneSpec]:
        """The backbone the ``model`` config section asks for (pretrained weights or random init) and
        its spec; ``download``/``downloader`` where the library can fetch weights."""

    @classmethod
    def weights_path(cls, model_cfg: dict[str, Any]) -> Path | None:
        """Where the pretrained weights of ``model_cfg`` are (``model.checkpoint``, else the library's
        cache), never downloading; None where the library has no place to look."""

    # -- the backbone's API ---------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Transformer layers."""

    @property
    def embed_dim(self) -> int:
        """Width of the residual stream."""

    @property
    def padding_idx(self) -> int:
        """Token id of padding."""

    def tokenize(self, sequences: list[str]) -> torch.Tensor:
        """Token ids ``(B, T)`` with the library's special tokens and right padding, on the CPU."""

    def residue_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` True at residues (special tokens and padding excluded): what mean pooling averages."""

    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters the classifier never uses (language-model, contact heads): fine-tuning freezes them."""

    def bottom_parameters(self, layers: int) -> list[nn.Parameter]:
        """The token embedding and the first ``layers`` layers: what ``train.freeze_layers`` freezes."""

    def embed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Residual stream entering layer 0 and the padding mask."""

    def run_layers(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None, start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        """Layers ``start .. stop-1`` on the residual stream."""

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """Final layer norm of the stream after the last layer, batch-first ``(B, T, E)``."""

    def module(self, layer: int, module_type: str) -> nn.Linear | HookPoint:
        """Hook point of ``module_type`` in layer ``layer``: its forward hooks see ``(T, B, n)`` outputs."""

    def stream_point(self, layer: int) -> nn.Module | HookPoint:
        """Hook point on the residual stream entering layer ``layer`` (``num_layers``: after the final norm).

        Its forward hooks see the stream time-first ``(T, B, E)`` and may return a replacement;
        they fire wherever that stream is consumed: ``run_layers`` from any start,
        ``resume_layer(layer, 0, ...)``, and ``final_norm`` for ``layer = num_layers``.
        """

    def repeat_stream(self, x: torch.Tensor, copies: int) -> torch.Tensor:
        """The residual stream with its batch repeated ``copies`` times (copy-major)."""

    def run_layer_with_states(
        self, layer: int, x: torch.Tensor, padding_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, LayerState]:
        """Output of layer ``layer`` and the tensors cached at each of its resume points."""

    def resume_layer(self, layer: int, position: int, state: LayerState, copies: int = 1) -> torch.Tensor:
        """Output of layer ``layer`` from resume point ``position``, the batch repeated ``copies`` times."""


class StreamPoints:
    """A backend's hook points on its residual stream: entering each layer, and after the final norm.

    ``run(l, x)`` is where the backend's forward pass hands the stream through point ``l`` (the
    hooks there fire); ``point(l)`` is what hooks register on, time-first ``(T, B, E)`` whatever
    the backend's layout. The points are plain identities kept by the backend object, never
    submodules of the backbone: state dicts and checkpoints do not change.
    """

    def __init__(self, num_layers: int, width: int, batch_first: bool) -> None:
        self.modules = [StreamPoint(width) for _ in range(num_layers + 1)]
        self.points: list[nn.Module | HookPoint] = [
            HookPoint(m, batch_first=True) if batch_first else m for m in self.modules
        ]
        self.batch_first = batch_first
        #: Points whose passing stream is kept for the next point's hooks (``before``): the block
        #: inputs that an SAE on the following block's update needs (``EsmClassifier.attach_sae``).
        self.keep: set[int] = set()
        # The last point passed and, where kept, the stream that left it (after its hooks), detached.
        self._last: tuple[int, torch.Tensor | None] | None = None

    def point(self, layer: int) -> nn.Module | HookPoint:
        """Hook point of the stream entering ``layer`` (the last index: after the final norm)."""
        if not 0 <= layer < len(self.points):
            raise ModelError(
                f"no residual stream point {layer}; the model has {len(self.points) - 1} layers "
                f"(stream points 0..{len(self.points) - 1}, the last after the final layer norm)"
            )
        return self.points[layer]

    def run(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """The stream ``x`` passing point ``layer``: its hooks fire and may replace it."""
        out = self.modules[layer](x)
        self._last = (layer, out.detach() if layer in self.keep else None)
        return out

    def before(self, layer: int) -> torch.Tensor:
        """Time-first, the stream that passed point ``layer - 1`` (after its hooks) in the pass whose
        hooks at point ``layer`` ask: the point passed just before. A pass that started at ``layer``
        (point ``layer - 1`` was not its last) is refused: that stream belongs to another pass."""
        last = self._last
        if last is None or last[0] != layer - 1 or last[1] is None:
            passed = "no stream point" if last is None else f"stream point {last[0]}"
            kept = "" if layer - 1 in self.keep else f"; point {layer - 1} is not kept (StreamPoints.keep)"
            raise ModelError(
                f"the stream entering layer {layer - 1} is not known at layer {layer}: the pass came from "
                f"{passed} (a pass over the update of block {layer - 1} must run that block: "
                f"EsmClassifier.unit_start){kept}"
            )
        before = last[1]
        return before.transpose(0, 1) if self.batch_first else before


def run_keeping_inputs(
    run: Callable[[], torch.Tensor],
    state: LayerState,
    taps: Mapping[str, nn.Module],
    first: Collection[str] = (),
) -> torch.Tensor:
    """``run()`` while keeping the first input of each module of ``taps`` in ``state`` under its name.

    What a backend's ``run_layer_with_states`` caches at the resume points. A name in ``first``
    is read before the module's other pre-hooks (e.g. before an ``fc1`` hook point that sits on
    the same module's input), so the state holds the unmasked tensor.
    """

    def keep(name: str) -> Callable:
        def pre_hook(_mod: nn.Module, inputs: tuple) -> None:
            state[name] = inputs[0]

        return pre_hook

    handles = [mod.register_forward_pre_hook(keep(name), prepend=name in first) for name, mod in taps.items()]
    try:
        return run()
    finally:
        for h in handles:
            h.remove()


def repeat_padding(padding_mask: torch.Tensor | None, copies: int) -> torch.Tensor | None:
    """The ``(B, T)`` padding mask of a batch repeated ``copies`` times (copy-major)."""
    return padding_mask if padding_mask is None or copies == 1 else padding_mask.repeat(copies, 1)
