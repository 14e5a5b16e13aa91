"""The architecture of a fair-esm ESM-2 checkpoint file, read without torch and without its tensors.

``kneurons.config`` resolves ``model.checkpoint``'s shape when the configuration is validated
(the Snakefile's layer scatter, ``kneurons plan`` and the semantic checks need the number of
layers before any job runs), and config must stay torch-free and cheap. A ``torch.save`` file is
a zip archive whose ``data.pkl`` holds the object with tensors as persistent references to
separate archive members (older files: a few pickles in a row, the object the fourth); so the
object is unpickled here with tensors replaced by their sizes, reading a few kilobytes whatever
the size of the weights. The unpickler resolves only ``argparse.Namespace`` and
``collections.OrderedDict``, and stands in inert placeholders for torch's rebuild functions and
storage types: a checkpoint cannot run code here either.
"""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: First pickle of torch's legacy (non-zip) serialisation format.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_LAYER_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class CheckpointShapeError(ValueError):
    """The file is not a readable fair-esm ESM-2 checkpoint (the message says why)."""


@dataclass(frozen=True)
class TensorSize:
    """A tensor of the checkpoint, by its size only."""

    size: tuple[int, ...]


class _Inert:
    """Stand-in for a torch global (storage types, rebuild helpers other than tensors')."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert()

    def __setstate__(self, state: Any) -> None:
        pass


def _rebuild_tensor(storage: Any, offset: int, size: Any, *args: Any, **kwargs: Any) -> TensorSize:
    return TensorSize(tuple(int(s) for s in size))


class _ShapeUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("argparse", "Namespace"): argparse.Namespace,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" or module.startswith("torch."):
            return _Inert
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an ESM checkpoint")

    def persistent_load(self, pid: Any) -> Any:
        return _Inert()


def _load_object(fh: IO[bytes], path: Path) -> Any:
    if zipfile.is_zipfile(fh):
        fh.seek(0)
        with zipfile.ZipFile(fh) as zf:
            names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names:
                raise CheckpointShapeError(f"{path}: a zip archive without data.pkl (not a torch.save file)")
            with zf.open(names[0]) as pkl:
                return _ShapeUnpickler(pkl).load()
    fh.seek(0)
    if _ShapeUnpickler(fh).load() != _LEGACY_MAGIC:
        raise CheckpointShapeError(f"{path}: not a torch.save file")
    _ShapeUnpickler(fh).load()  # protocol version
    _ShapeUnpickler(fh).load()  # sys info
    return _ShapeUnpickler(fh).load()


def read_checkpoint_shape(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """``(layers, embed_dim, heads)`` of a fair-esm ESM-2 checkpoint, or None for another kind of file.

    None: the file is a torch pickle without fair-esm's ``cfg["model"]`` Namespace (a state
    dict of another library, a kneurons classifier). Raises CheckpointShapeError when the file
    cannot be read, or when its config disagrees with its tensors (layers, embedding width).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = _load_object(fh, path)
    except CheckpointShapeError:
        raise
    except (OSError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError) as exc:
        raise CheckpointShapeError(f"{path}: not readable as a torch checkpoint ({exc})") from exc
    if not isinstance(data, dict):
        return None
    cfg = data.get("cfg")
    args = cfg.get("model") if isinstance(cfg, dict) else None
    if not isinstance(args, argparse.Namespace):
        return None
    try:
        shape = (int(args.encoder_layers), int(args.encoder_embed_dim), int(args.encoder_attention_heads))
    except (AttributeError, TypeError, ValueError) as exc:
        raise CheckpointShapeError(f"{path}: its cfg['model'] lacks the ESM-2 sizes ({exc})") from exc
    state = data.get("model")
    if isinstance(state, dict):
        _check_tensors(path, shape, state)
    return shape


def _check_tensors(path: Path, shape: tuple[int, int, int], state: dict) -> None:
    layers = {int(m.group(1)) for key in state if (m := _LAYER_KEY.search(str(key)))}
    if layers and max(layers) + 1 != shape[0]:
        raise CheckpointShapeError(
            f"{path}: cfg says {shape[0]} layers but the weights hold {max(layers) + 1}"
        )
    for key, value in state.items():
        wide = isinstance(value, TensorSize) and len(value.size) == 2 and value.size[1] != shape[1]
        if str(key).endswith("embed_tokens.weight") and wide:
            raise CheckpointShapeError(
                f"{path}: cfg says embed_dim {shape[1]} but embed_tokens is {value.size[1]} wide"
            )
