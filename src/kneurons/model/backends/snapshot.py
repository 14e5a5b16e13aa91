"""Hugging Face snapshot directories, offline: where they are and what they hold.

Torch-free (the config validation and the Snakefile use it). A **snapshot directory** is what
``huggingface_hub`` leaves in its cache for one revision of a model repository, or what
``save_pretrained`` writes: ``config.json`` beside ``model.safetensors`` (or ``pytorch_model.bin``).
The hub cache is ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``;
repository ``facebook/esm2_t6_8M_UR50D`` lives in ``models--facebook--esm2_t6_8M_UR50D/``, its
revisions in ``snapshots/<commit>/`` and the commit of ``main`` in ``refs/main``. Nothing here
goes online: the cluster nodes this runs on usually cannot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kneurons.errors import ModelError

#: The organisation of the official ESM-2 repositories on the hub (``facebook/esm2_t6_8M_UR50D``).
HF_ORG = "facebook"

#: Weight files of a snapshot, in the order they are preferred.
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")


def fair_esm_name(name: str) -> str:
    """The fair-esm name of an official ESM-2 (``facebook/esm2_t6_8M_UR50D`` -> ``esm2_t6_8M_UR50D``)."""
    prefix = f"{HF_ORG}/"
    return name[len(prefix) :] if name.startswith(prefix) else name


def hub_cache_dir() -> Path:
    """The hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def is_snapshot_dir(path: str | os.PathLike) -> bool:
    """True for a directory holding a ``config.json`` (an HF snapshot or ``save_pretrained`` output)."""
    path = Path(path).expanduser()
    return path.is_dir() and (path / "config.json").is_file()


#: Index files of a sharded snapshot (they name the weight shards).
INDEX_FILES: tuple[str, ...] = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def snapshot_dir_problem(path: str | os.PathLike) -> str | None:
    """What keeps ``path`` from being a snapshot directory, in words (what is missing and what the
    folder holds); None when it has a ``config.json`` and weights (a file of ``WEIGHT_FILES`` or an
    index of ``INDEX_FILES``)."""
    path = Path(path).expanduser()
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is a file, not a snapshot directory"
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / name).is_file() for name in (*WEIGHT_FILES, *INDEX_FILES)):
        missing.append(f"weights ({' or '.join(WEIGHT_FILES)}, or a sharded index)")
    if not missing:
        return None
    held = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    shown = (
        ", ".join(held[:8]) + (f", ... ({len(held)} entries)" if len(held) > 8 else "") if held else "nothing"
    )
    return (
        f"{path} is a directory without {' and without '.join(missing)}: a Hugging Face snapshot holds "
        f"config.json beside its weights (the folder holds: {shown})"
    )


def find_snapshot(repo_id: str) -> Path:
    """The snapshot directory of ``repo_id`` in the hub cache, offline.

    ``refs/main``'s revision when it is there, else the only snapshot. Raises ModelError naming
    every path looked in and how to fill the cache.
    """
    repo_dir = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    snapshots = repo_dir / "snapshots"
    ref = repo_dir / "refs" / "main"
    looked = [str(ref), str(snapshots)]
    if ref.is_file():
        rev = ref.read_text().strip()
        candidate = snapshots / rev
        if is_snapshot_dir(candidate):
            return candidate
        looked.append(str(candidate))
    found = sorted(p for p in snapshots.iterdir() if is_snapshot_dir(p)) if snapshots.is_dir() else []
    if len(found) == 1:
        return found[0]
    why = (
        f"several snapshots ({', '.join(p.name for p in found)}) and no refs/main naming one of them"
        if found
        else "no snapshot with a config.json"
    )
    raise ModelError(
        f"Hugging Face model {repo_id}: {why} in the hub cache {hub_cache_dir()} "
        f"(looked in {', '.join(looked)}; set HF_HOME or HF_HUB_CACHE). Fill the cache on a "
        f"machine with internet (`huggingface-cli download {repo_id}` or "
        f"`snapshot_download('{repo_id}')`) and copy it, or set model.checkpoint to a snapshot directory"
    )


def read_config(snapshot: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of a snapshot directory."""
    path = Path(snapshot).expanduser() / "config.json"
    try:
        with open(path, encoding="utf-8") as fh:
            cfg = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable config.json ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(cfg, dict):
        raise ModelError(f"{path}: config.json holds a {type(cfg).__name__}, not an object")
    return cfg


def snapshot_shape(snapshot: str | os.PathLike) -> tuple[int, int, int]:
    """``(layers, embed_dim, heads)`` of an ESM-2 snapshot, from its ``config.json``."""
    cfg = read_config(snapshot)
    try:
        return int(cfg["num_hidden_layers"]), int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"{Path(snapshot) / 'config.json'}: no ESM-2 shape (num_hidden_layers, hidden_size, "
            f"num_attention_heads): {exc}"
        ) from exc


def weights_file(snapshot: str | os.PathLike) -> Path:
    """The weights of a snapshot directory: ``model.safetensors``, else ``pytorch_model.bin``."""
    snapshot = Path(snapshot).expanduser()
    for name in WEIGHT_FILES:
        if (snapshot / name).is_file():
            return snapshot / name
    raise ModelError(f"{snapshot}: no weights ({' or '.join(WEIGHT_FILES)}) beside config.json")
