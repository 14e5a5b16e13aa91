"""Weights files whatever the backend: their identity (sha256, memoised), reading a Hugging
Face-layout snapshot folder (ESM-2 and ESM C alike: one ``model.safetensors`` or
``pytorch_model.bin`` read with ``weights_only=True``, or the shards an index names), and the
refusal of weights that hold NaN or inf."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from kneurons.errors import ModelError
from kneurons.io import sha256_file
from kneurons.model.backends import snapshot as hf_snapshot

#: ``downloader(url, dest)``: fetches a weights file to ``dest`` (a library's own download by default;
#: tests pass their own).
Downloader = Callable[[str, Path], None]

#: What to install when safetensors (an optional dependency of the hf and esmc extras) is missing.
SAFETENSORS_HINT = "pip install 'kneurons[hf]'"


def require_safetensors(path: Path) -> None:
    """A ModelError naming ``path`` and the extra to install unless safetensors is importable."""
    try:
        import safetensors.torch  # noqa: F401  (what reading the file needs)
    except ImportError as exc:
        raise ModelError(
            f"{path}: reading a .safetensors file needs the safetensors package, which is not installed "
            f"({exc}); install it with: {SAFETENSORS_HINT}"
        ) from exc


def non_finite(key: str, value: object) -> str | None:
    """What is wrong with tensor ``key`` when it holds NaN or inf (``tensor k (shape) holds ...``),
    else None."""
    if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
        n_nan, n_inf = int(torch.isnan(value).sum()), int(torch.isinf(value).sum())
        return f"tensor {key} {tuple(value.shape)} holds {n_nan} NaN and {n_inf} inf value(s)"
    return None


def refuse_non_finite(state: Mapping[str, object], where: str | Path) -> None:
    """A ModelError naming the tensor and the file (``where``) when a weight holds NaN or inf: such
    weights give NaN logits, and every score and verdict after them would be noise."""
    for key, value in state.items():
        problem = non_finite(key, value)
        if problem:
            raise ModelError(f"{where}: {problem}; the weights are corrupt (download or convert them again)")


def read_weights(path: Path, check_finite: bool = True) -> dict[str, torch.Tensor]:
    """Tensors of one weights file: safetensors, or ``pytorch_model.bin`` read with ``weights_only=True``;
    NaN or inf refused (``refuse_non_finite``) unless ``check_finite`` is False (a caller that
    checks the tensors it uses itself, with its own error)."""
    if path.name.endswith(".safetensors"):
        require_safetensors(path)
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            data = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not readable as weights ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: holds a {type(data).__name__}, not a state dict")
    if check_finite:
        refuse_non_finite(data, path)
    return data


def snapshot_state_dict(snapshot: Path) -> dict[str, torch.Tensor]:
    """The state dict of a snapshot directory (one weights file, or the shards its index names)."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = snapshot / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map", {})
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                state.update(read_weights(snapshot / shard))
            return state
    return read_weights(hf_snapshot.weights_file(snapshot))


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: str | os.PathLike) -> str:
    """sha256 of a weights file; of a directory (a Hugging Face snapshot), of its files' names and sha256s.

    Memoised per (path, size, mtime), so verifying a file on load and recording its identity in
    the outputs hash a multi-GB file once per process.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        lines = [
            f"{f.relative_to(path).as_posix()}\t{weights_sha256(f)}\n"
            for f in sorted(path.rglob("*"))
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)
        ]
        return hashlib.sha256("".join(lines).encode()).hexdigest()
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]
