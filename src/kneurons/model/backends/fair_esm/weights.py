"""fair-esm's pretrained weights: the official files with their sha256 pins, the torch hub cache, the
download, and safe loading.

Official fair-esm checkpoints are pickles holding an ``argparse.Namespace`` (the training
config in ``cfg["model"]``) next to the tensors. fair-esm 2.0.0 loads them with a bare
``torch.load`` (and its hub helper with ``weights_only=False``), which either fails on
torch >= 2.6 or unpickles arbitrary code. Here every checkpoint is read with
``torch.load(weights_only=True)`` inside ``torch.serialization.safe_globals`` allowing only
``argparse.Namespace``; the model is then built by fair-esm's own
``load_model_and_alphabet_core`` from the already-loaded data.
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import esm
import torch

from kneurons.errors import ModelError
from kneurons.model.architectures import ESM2_ARCHITECTURES
from kneurons.model.backends.snapshot import snapshot_dir_problem
from kneurons.model.weights import Downloader, refuse_non_finite, weights_sha256

log = logging.getLogger(__name__)

#: fair-esm's download location of the model weights (the contact-regression file is not needed
#: for classification and is not fetched).
MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"

#: (size in bytes or None, sha256) of the official fair-esm checkpoint files, by file name. A pin
#: needs two independent public sources that agree (different projects recording the file they
#: downloaded from MODEL_URL); a size with fewer sources is None (not checked). The sources are
#: files of the public code index searched for this (cited by what they are and their index id;
#: the index did not name their repositories). A file is recognised by its sha256 whatever its
#: name (``verify_checkpoint``).
KNOWN_CHECKPOINTS: dict[str, tuple[int | None, str]] = {
    # sha256: a ProteinGym ESM-2 replication module's MODELS table (index 70710214855), an ESM-2
    # adapter pinning CHECKPOINT_SHA256 (69179131469), a FLIP baseline's CHECKPOINTS dict
    # (70665176995). Size: an AMP-diffusion bundle verifier's _REQUIRED_ARTIFACTS (70685886600) and
    # a benchmark protocol that rehashed its local copy (70150835813). The earlier pin here
    # (30,104,453 bytes, sha256 c3c11451...) had no public source and is gone.
    "esm2_t6_8M_UR50D.pt": (30_099_493, "46f002a9870c9bdecd0ea887acb1f9a38a6b561e8f8bf8a6990b679b9d31b928"),
    # sha256: the ProteinGym module (70710214855), a data fetch script (70447925813), a FLIP
    # README's checksum table (70121770308). Size: no public source found (the earlier
    # 134,095,705 had none), so unchecked.
    "esm2_t12_35M_UR50D.pt": (None, "7f21e80e61d16a71735163ef555d3009afb0c98da74c48e29df08606973cc55e"),
    # sha256: the ProteinGym module (70710214855), a codon-model weights table (70418766533), a
    # drug-target embedding report (65860610637). Size: that weights table (70418766533) and a
    # phase-4 run log's hub-cache listing (70882299836).
    "esm2_t30_150M_UR50D.pt": (
        592_774_773,
        "881c7176cf198ef8dec26a3c375d40eb58d0c33df95c22562ca6cc6d3f812c62",
    ),
    # sha256: the ProteinGym module (70710214855), deeprank-gnn-esm's EXPECTED_CHECKSUMS
    # (17903604704), a peptide benchmark's DIFFPEPBUILDER_MODEL_ASSETS (67261791225). Size and
    # sha256 together: a GeoDock weights table (66661218247), an RBP embedding record (70107142280).
    "esm2_t33_650M_UR50D.pt": (
        2_604_537_549,
        "ea9d0522b335a8778dea6535a65301f10208dece28cd5865482b0b1fc446168c",
    ),
    # sha256: a SimpleFold workbench's artifact table (62508620278), a Protenix run note
    # (68916794358), a geometry audit's ESM_SHA256 (59881402791), an ESMFold baseline's table
    # (65755644178). Size: the SimpleFold table (62508620278), Protenix's weight list (55222812030),
    # an HTTP HEAD record (69111151216).
    "esm2_t36_3B_UR50D.pt": (
        5_678_116_398,
        "7de8b4082ba15891959ab368b77ce3886697af1efb16d3c9e9e7b0c5d3f07500",
    ),
    # esm2_t48_15B_UR50D.pt: no public sha256 or size found; loaded unverified (logged).
}

#: The only non-tensor globals an official ESM-2 checkpoint needs.
CHECKPOINT_SAFE_GLOBALS: list[Any] = [argparse.Namespace]


def hub_checkpoint_dir() -> Path:
    """Where fair-esm (via torch hub) keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def official_name_of(sha: str) -> str | None:
    """The official model (e.g. ``esm2_t6_8M_UR50D``) whose pinned sha256 is ``sha``, else None."""
    for file_name, (_size, pinned) in KNOWN_CHECKPOINTS.items():
        if pinned == sha:
            return file_name.removesuffix(".pt")
    return None


def verify_checkpoint(path: str | os.PathLike, name: str | None = None) -> str | None:
    """The official model ``path`` holds, recognised by its sha256 whatever the file name; None if unknown.

    Raises ModelError when a file named like an official one holds other content (both
    checksums, and what to do), or when the recognised model is not ``name`` (an official name;
    ``custom`` and None take any model).
    """
    path = Path(path)
    actual = weights_sha256(path)
    recognised = official_name_of(actual)
    if recognised is not None:
        if path.name != f"{recognised}.pt":
            log.info("%s: content is the official %s.pt (sha256 %s)", path, recognised, actual)
        else:
            log.info("%s: sha256 matches the official file", path)
        if name is not None and name != "custom" and recognised != name:
            raise ModelError(
                f"{path} holds the official {recognised} weights (by sha256), but model.name is {name}; "
                f"set model.name: {recognised}, or point model.checkpoint at the {name} file"
            )
        return recognised
    known = KNOWN_CHECKPOINTS.get(path.name)
    if known is not None:
        size, sha = known
        actual_size = path.stat().st_size
        size_note = (
            f"; size {actual_size} bytes, the official file has {size}"
            if size is not None and size != actual_size
            else ""
        )
        raise ModelError(
            f"{path}: sha256 {actual} does not match the official {path.name} ({sha}){size_note}; "
            f"the file is truncated or another file: delete it and download "
            f"{MODEL_URL.format(name=path.stem)} again "
            "(weights of your own: give the file another name; it then loads unverified)"
        )
    log.info("%s: sha256 %s is not that of an official checkpoint; loaded unverified", path, actual)
    return None


def load_esm_checkpoint(path: str | os.PathLike) -> dict:
    """Read an official-layout ESM checkpoint safely (tensors, containers and argparse.Namespace only);
    weights with NaN or inf are refused, naming the tensor."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"{path}: cannot be read as an ESM checkpoint with weights_only=True and only "
            f"argparse.Namespace allowed "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(data, dict) or "model" not in data:
        raise ModelError(f"{path}: not an ESM checkpoint (expected a dict with a 'model' state dict)")
    if isinstance(data["model"], dict):
        refuse_non_finite(data["model"], path)
    return data


def _download(url: str, dest: Path) -> None:
    """Fetch ``url`` to ``dest`` (torch hub writes a temporary file and renames it)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(dest), progress=False)


def resolve_checkpoint(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    download: bool = True,
    downloader: Downloader | None = None,
) -> Path:
    """Path of the weights of ``name``: the local ``checkpoint``, else the hub cache, downloading if allowed.

    Raises ModelError naming the model, the cache path looked in, and how to provide the file.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if path.is_dir():
            raise ModelError(
                f"model.checkpoint: {path} is a directory, not a fair-esm .pt file (weights of {name}); "
                f"{snapshot_dir_problem(path) or 'a Hugging Face snapshot: set model.backend hf or auto'}"
            )
        if not path.is_file():
            raise ModelError(f"model.checkpoint: {path} does not exist (weights of {name})")
        return path
    path = hub_checkpoint_dir() / f"{name}.pt"
    if path.is_file():
        return path
    url = MODEL_URL.format(name=name)
    how = (
        f"download {url} on a machine with internet and copy it to {path} (or set TORCH_HOME), "
        f"or set model.checkpoint to its path"
    )
    if not download:
        raise ModelError(f"pretrained weights of {name} not found at {path}; {how}")
    try:
        log.info("downloading %s to %s", url, path)
        (downloader or _download)(url, path)
    except Exception as exc:
        raise ModelError(
            f"pretrained weights of {name} not found at {path} and the download failed "
            f"({exc.__class__.__name__}: {exc}); {how}"
        ) from exc
    if not path.is_file():
        raise ModelError(f"pretrained weights of {name}: the download left no file at {path}; {how}")
    return path


def load_pretrained_backbone(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    download: bool = True,
    downloader: Downloader | None = None,
) -> esm.model.esm2.ESM2:
    """The pretrained fair-esm ESM-2 ``name`` (hub cache, download, or a local official-layout file).

    ``name`` ``custom`` takes the architecture of the local ``checkpoint`` (which it needs).
    """
    if name != "custom" and name not in ESM2_ARCHITECTURES:
        raise ModelError(f"no pretrained weights for {name!r}; known: {', '.join(ESM2_ARCHITECTURES)}")
    if name == "custom" and checkpoint is None:
        raise ModelError(
            "model.checkpoint: a custom-size model has pretrained weights only from a local file"
        )
    path = resolve_checkpoint(name, checkpoint, download=download, downloader=downloader)
    recognised = verify_checkpoint(path, name)
    data = load_esm_checkpoint(path)
    # fair-esm picks its ESM-2 loader by the name's prefix; a custom file is an ESM-2 as well.
    loader_name = name if name != "custom" else recognised or "esm2_custom"
    try:
        with warnings.catch_warnings():
            # The contact-regression weights are not loaded on purpose (no contact prediction here).
            warnings.filterwarnings("ignore", message="Regression weights not found")
            backbone, _ = esm.pretrained.load_model_and_alphabet_core(loader_name, data, None)
    except Exception as exc:
        raise ModelError(f"{path}: not a valid {name} checkpoint ({exc.__class__.__name__}: {exc})") from exc
    got = (backbone.num_layers, backbone.embed_dim, backbone.attention_heads)
    if name != "custom" and got != ESM2_ARCHITECTURES[name]:
        raise ModelError(
            f"{path}: holds an ESM-2 with (layers, embed_dim, heads) = {got}, "
            f"but {name} has {ESM2_ARCHITECTURES[name]}"
        )
    return backbone
