"""SAE files: a reader per format (``load_sae``) and the writer of the workflow's own (``save_sae``).

Offline and safe: a local file or folder, tensors read with ``torch.load(weights_only=True)`` or
safetensors (an optional dependency: ``pip install 'kneurons[hf]'``). Every error names the file,
and the tensor where one is at fault (missing, unexpected, misshapen, NaN or inf); a file of the
wrong layout is told the tensors it holds.

Each reader also says where the SAE reads the model (its input point,
``kneurons.features.sae.InputPoint``) and on which scale its activations are reported: the
per-feature maximum where the file gives it (every feature then peaks at 1, whichever release
wrote the file), else the SAE's own units.

The formats (the math: ``kneurons.features.sae``): ``interplm``, ``interprot`` and ``esmc``, as their
projects' public code writes the files, are read in ``kneurons.features.published`` (its docstring
says what each file holds and where each reads the model); what all readers share is in
``kneurons.features.files``; and

* ``kneurons``: what ``kneurons.features.train.train_sae`` writes (``save_sae``): a ``torch.save``'d
  dict of plain values and tensors (``format``, ``layer``, ``k``, ``d``, ``n_features``,
  ``model_sha256``, ``tensors``: ``W_enc``, ``b_enc``, ``W_dec``, ``b_pre``, and ``meta``: the training
  record); z-scored TopK like InterProt, at every non-padding token of the model's own run (as
  trained), in its own units.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from kneurons.errors import InputError, ModelError
from kneurons.features.files import FORMAT_TENSORS, check_tensors, read_sae_file, resolve_k, zscored_topk
from kneurons.features.published import read_esmc, read_interplm, read_interprot
from kneurons.features.sae import SAE_FORMATS, SparseAutoencoder

#: ``format`` of the files ``save_sae`` writes.
KNEURONS_SAE_FORMAT = "kneurons-sae/1"


def load_sae(path: str | Path, format: str, layer: int, k: int | None = None) -> SparseAutoencoder:
    """The SAE in ``path`` (a file or folder, by ``format``) for the stream entering ``layer``.

    ``format`` is one of ``SAE_FORMATS``; ``k`` is TopK's k where the file does not store it
    (InterProt) and must agree with it where it does. The width and the layer's range are
    checked against a model when the SAE is attached (``EsmClassifier.attach_sae``).
    """
    path = Path(path).expanduser()
    if format not in SAE_FORMATS:
        raise InputError(f"{path}: unknown SAE format {format!r}; one of {', '.join(SAE_FORMATS)}")
    if not path.exists():
        raise InputError(f"{path}: no such SAE file or folder ({format})")
    if int(layer) < 0:
        raise InputError(f"{path}: layer {layer} is not a stream point (layers count from 0)")
    reader = {
        "interplm": read_interplm,
        "interprot": read_interprot,
        "esmc": read_esmc,
        "kneurons": _kneurons,
    }[format]
    return reader(path, int(layer), k)


def _kneurons(path: Path, layer: int, k: int | None) -> SparseAutoencoder:
    if path.is_dir():
        raise InputError(f"{path}: a kneurons SAE is one file (what train_sae writes), not a folder")
    payload = read_sae_file(path)
    if payload.get("format") != KNEURONS_SAE_FORMAT:
        raise InputError(f"{path}: not a kneurons SAE file (format {payload.get('format')!r})")
    tensors = payload.get("tensors")
    if not isinstance(tensors, Mapping):
        raise InputError(f"{path}: a kneurons SAE file without its tensors")
    sizes = check_tensors(path, tensors, "kneurons")
    recorded = {"d": payload.get("d"), "F": payload.get("n_features")}
    if recorded != sizes:
        raise InputError(
            f"{path}: records d = {recorded['d']}, F = {recorded['F']}, but its tensors give {sizes}"
        )
    if payload.get("layer") != layer:
        raise InputError(
            f"{path}: trained on the stream entering layer {payload.get('layer')}, asked for layer {layer}"
        )
    k = resolve_k(path, payload.get("k"), k, "the file")
    meta = {"model_sha256": payload.get("model_sha256"), **dict(payload.get("meta") or {})}
    return zscored_topk(
        *(tensors[name] for name in FORMAT_TENSORS["kneurons"]), layer, k, "kneurons", path, meta
    )


def save_sae(path: str | Path, sae: SparseAutoencoder) -> None:
    """Write ``sae`` (a z-scored TopK SAE, as ``train_sae`` makes) in the kneurons format, atomically.

    Tensors and plain values only, so ``load_sae(path, "kneurons", layer)`` reads it with
    ``weights_only=True``; ``sae.meta["model_sha256"]`` (the classifier it was trained on, when
    known) is stored as ``model_sha256``, the rest of ``sae.meta`` as ``meta``.
    """
    from kneurons.model.checkpoint import save_tensors

    if not sae.zscore or sae.k is None or sae.relu_first or not torch.equal(sae.b_pre, sae.b_dec):
        raise ModelError(f"{sae.source}: only a z-scored TopK SAE (InterProt's math) has the kneurons format")
    save_tensors(
        path,
        {
            "format": KNEURONS_SAE_FORMAT,
            "layer": sae.layer,
            "k": sae.k,
            "d": sae.d,
            "n_features": sae.n_features,
            "model_sha256": sae.meta.get("model_sha256"),
            "tensors": {
                name: getattr(sae, name).detach().cpu().clone() for name in FORMAT_TENSORS["kneurons"]
            },
            "meta": {key: value for key, value in sae.meta.items() if key != "model_sha256"},
        },
    )
