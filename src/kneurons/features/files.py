"""What every SAE file reader shares (``kneurons.features.formats``): the tensors each format holds,
their check (missing, unexpected, misshapen, NaN or inf: every error names the file and the
tensor, and a file of the wrong layout is told the tensors it holds), the safe read (safetensors or
``torch.load(weights_only=True)``), a file's per-feature maximum as the SAE's activation scale, and
InterProt's math, which the workflow's own format shares.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kneurons.errors import InputError, ModelError
from kneurons.features.sae import InputPoint, SparseAutoencoder
from kneurons.model.weights import non_finite, read_weights, require_safetensors

#: The tensors each format's file must hold (by the file's names), their shapes in ``d`` (the
#: stream's width) and ``F`` (features), in the order the sizes are read from them.
FORMAT_TENSORS: dict[str, dict[str, tuple[str, ...]]] = {
    "interplm": {
        "bias": ("d",),
        "encoder.weight": ("F", "d"),
        "encoder.bias": ("F",),
        "decoder.weight": ("d", "F"),
    },
    "interprot": {"w_enc": ("d", "F"), "w_dec": ("F", "d"), "b_enc": ("F",), "b_pre": ("d",)},
    "esmc": {"W_enc": ("d", "F"), "W_dec": ("F", "d"), "b_dec": ("d",)},
    "kneurons": {"W_enc": ("d", "F"), "b_enc": ("F",), "W_dec": ("F", "d"), "b_pre": ("d",)},
}
#: Tensors a format's file may hold besides those (buffers the math does not use).
OPTIONAL_TENSORS: dict[str, frozenset[str]] = {
    "interplm": frozenset({"activation_rescale_factor", "normalize_to_sqrt_d"}),
    "interprot": frozenset({"stats_last_nonzero"}),
    "esmc": frozenset({"idf", "max"}),
    "kneurons": frozenset(),
}
#: How each format is named in errors ("not an interplm SAE").
FORMAT_ARTICLE = {"interplm": "an", "interprot": "an", "esmc": "an", "kneurons": "a"}


def check_tensors(source: Path | str, tensors: Mapping[str, Any], fmt: str) -> dict[str, int]:
    """Check a file's tensors against ``FORMAT_TENSORS[fmt]``; the sizes ``{"d": d, "F": F}``.

    Refused, naming ``source`` and the tensor: a missing or unexpected tensor, a wrong number of
    dimensions, sizes that disagree between tensors, NaN or inf values.
    """
    expected, optional = FORMAT_TENSORS[fmt], OPTIONAL_TENSORS[fmt]
    missing = [name for name in expected if name not in tensors]
    extra = sorted(name for name in tensors if name not in expected and name not in optional)
    problems = [f"missing tensors {missing}"] if missing else []
    problems += [f"unexpected tensors {extra}"] if extra else []
    if problems:
        may = f", and may hold {sorted(optional)}" if optional else ""
        raise InputError(
            f"{source}: not {FORMAT_ARTICLE[fmt]} {fmt} SAE: {'; '.join(problems)} (the file holds "
            f"{sorted(tensors)}; {FORMAT_ARTICLE[fmt]} {fmt} SAE holds {list(expected)}{may})"
        )
    sizes: dict[str, int] = {}
    for name, dims in expected.items():
        t = tensors[name]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise InputError(f"{source}: {name} is a {type(t).__name__}, not a floating-point tensor")
        wanted = "(" + ", ".join(f"{s} = {sizes[s]}" if s in sizes else s for s in dims) + ")"
        if t.dim() != len(dims) or any(
            sizes.setdefault(s, n) != n for s, n in zip(dims, t.shape, strict=False)
        ):
            raise InputError(f"{source}: tensor {name} is {tuple(t.shape)}, expected {wanted}")
        problem = non_finite(name, t)
        if problem:
            raise InputError(f"{source}: {problem}")
    return sizes


def read_sae_file(path: Path) -> dict[str, Any]:
    """The dict stored in ``path`` (safetensors or ``torch.load(weights_only=True)``), or an InputError
    (with what to do where the file is a Lightning checkpoint, ``is_lightning_checkpoint``)."""
    if path.name.endswith(".safetensors"):
        require_safetensors(path)
    try:
        return read_weights(path, check_finite=False)  # the tensors used are checked by _check
    except ModelError as exc:
        hint = (
            "; a Lightning checkpoint whose hyper-parameters hold Python objects cannot be read "
            "safely: save its state_dict with torch.save and give that file"
            if is_lightning_checkpoint(path)
            else ""
        )
        raise InputError(f"{exc}{hint}") from exc


def is_lightning_checkpoint(path: Path) -> bool:
    """True for a ``torch.save`` archive written by (PyTorch) Lightning: its pickle names the
    ``pytorch-lightning_version`` key every Lightning checkpoint carries. Read without unpickling."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
            return any(b"pytorch-lightning_version" in archive.read(name) for name in pickles)
    except (OSError, zipfile.BadZipFile):
        return False


def per_feature_max(source: Path, name: str, t: Any, n: int) -> tuple[torch.Tensor | None, int]:
    """A file's per-feature maximum ``name`` as the SAE's scale: ``(scale, features left unscaled)``;
    ``(None, 0)`` when it is all ones (no maximum was stored). Zeros (features that never fired
    where it was measured) become 1; a negative, NaN or misshapen one is refused naming the tensor."""
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != (n,) or not t.is_floating_point():
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise InputError(f"{source}: tensor {name} is {shape}, expected ({n},) floats (one per feature)")
    t = t.detach().float()
    if not bool(t.isfinite().all()) or bool((t < 0).any()):
        raise InputError(f"{source}: tensor {name} must hold finite values >= 0 (one per feature)")
    if bool((t == 1).all()):
        return None, 0
    zero = t == 0
    return torch.where(zero, torch.ones_like(t), t), int(zero.sum())


def resolve_k(source: Path, stored: int | None, given: int | None, what: str) -> int | None:
    """The TopK k: the file's (``stored``) and the caller's must agree where both are given."""
    if stored is not None and given is not None and int(stored) != int(given):
        raise InputError(f"{source}: {what} says k = {stored}, but k = {given} was asked for")
    return stored if stored is not None else given


def zscored_topk(
    w_enc: torch.Tensor,
    b_enc: torch.Tensor,
    w_dec: torch.Tensor,
    b_pre: torch.Tensor,
    layer: int,
    k: int,
    fmt: str,
    path: Path,
    meta: dict[str, Any] | None = None,
    input_point: InputPoint | None = None,
) -> SparseAutoencoder:
    """InterProt's math (z-scored, TopK then ReLU, ``b_pre`` both biases): formats interprot, kneurons."""
    return SparseAutoencoder(
        W_enc=w_enc,
        b_enc=b_enc,
        W_dec=w_dec,
        b_pre=b_pre,
        b_dec=b_pre,
        layer=layer,
        k=k,
        zscore=True,
        format=fmt,
        source=str(path),
        meta=meta,
        input_point=input_point,
    )
