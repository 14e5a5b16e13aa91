"""SAE files: a reader per format (``load_sae``) and the writer of the workflow's own (``save_sae``).

Offline and safe: a local file or folder, tensors read with ``torch.load(weights_only=True)`` or
safetensors (an optional dependency: ``pip install 'kneurons[hf]'``). Every error names the file,
and the tensor where one is at fault (missing, unexpected, misshapen, NaN or inf).

The formats, as their projects' public code defines them (the math: ``kneurons.features.sae``):

* ``interplm``: InterPLM's ``ReLUSAE`` (``interplm/sae/dictionary.py``, ElanaPearl/InterPLM), one
  ``torch.save``'d state dict per layer (``ae_normalized.pt`` / ``ae_unnormalized.pt``): ``bias``
  ``[d]``, ``encoder.weight`` ``[F, d]`` and ``encoder.bias`` ``[F]`` (an ``nn.Linear(d, F)``),
  ``decoder.weight`` ``[d, F]`` (``nn.Linear(F, d, bias=False)``); buffers
  ``activation_rescale_factor`` ``[F]`` (only its optional feature normalisation reads it; not
  used here) and, in newer files, ``normalize_to_sqrt_d`` (a bool: the input L2-normalised to
  sqrt(d); the published files have no input scaling, and a file that sets it is refused).
  ``encode = ReLU(encoder(x - bias))``, ``decode = decoder(f) + bias``.
* ``interprot``: InterProt's TopK ``SparseAutoencoder`` (``interprot/sae_model.py``,
  etowahadams/interprot): ``w_enc`` ``[d, F]``, ``w_dec`` ``[F, d]``, ``b_enc`` ``[F]``, ``b_pre``
  ``[d]``, buffer ``stats_last_nonzero`` ``[F]`` (training statistics, ignored); a plain state
  dict (``.pt``, ``.safetensors``) or a Lightning checkpoint whose ``state_dict`` prefixes them with
  ``sae_model.``. Inputs z-scored per token (its ``LN``: unbiased std, ``+ 1e-5``); TopK, then ReLU
  on the kept values; ``recon = (latents @ w_dec + b_pre) * std + mu``. Its ``encode()`` returns the
  pre-TopK value: the feature here is the latent. k is not stored: the file name's ``_k<k>``
  (names like ``esm2_plm1280_l24_sae4096_k64_auxk640.ckpt`` also give d, the layer and F, which
  are checked), else the caller's k, else 128. Its ESM-2 wrapper feeds the SAE the output of
  ``layers[:l]``: the stream entering layer l.
* ``esmc``: EvolutionaryScale's ESM C SAEs, a folder of ``config.json`` (``d_model``,
  ``codebook_dim``, ``k``, ``available_layers``) and ``layer_{N}.safetensors`` (``W_enc`` ``[d, C]``,
  ``W_dec`` ``[C, d]``, ``b_dec`` ``[d]``, no encoder bias); z-scored as InterProt,
  ``f = TopK_k(ReLU((z - b_dec) W_enc))``, ``z_hat = f W_dec + b_dec``; layer N reads the input of
  block N. This format is taken from the design notes (DESIGN.md, "Features"); it was not
  confirmed against public code.
* ``kneurons``: what ``kneurons.features.train.train_sae`` writes (``save_sae``): a ``torch.save``'d
  dict of plain values and tensors (``format``, ``layer``, ``k``, ``d``, ``n_features``,
  ``model_sha256``, ``tensors``: ``W_enc``, ``b_enc``, ``W_dec``, ``b_pre``, and ``meta``: the training
  record); z-scored TopK like InterProt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kneurons.errors import InputError, ModelError
from kneurons.features.sae import SAE_FORMATS, SparseAutoencoder
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
    "esmc": frozenset(),
    "kneurons": frozenset(),
}
#: InterPLM's per-layer file names.
INTERPLM_FILES = ("ae_normalized.pt", "ae_unnormalized.pt")
#: InterProt's k when neither the file name nor the caller gives one (its ``SparseAutoencoder`` default).
INTERPROT_DEFAULT_K = 128
#: InterProt file names: ``plm<d>`` ... ``l<layer>`` ... ``sae<F>``, and ``_k<k>``.
INTERPROT_NAME = re.compile(r"plm(\d+).*?l(\d+).*?sae(\d+)")
INTERPROT_K = re.compile(r"_k(\d+)")
#: The prefix of the SAE's tensors in InterProt's Lightning checkpoints.
LIGHTNING_PREFIX = "sae_model."
#: The ``config.json`` keys of an ESM C SAE folder.
ESMC_CONFIG_KEYS = ("d_model", "codebook_dim", "k", "available_layers")
#: ``format`` of the files ``save_sae`` writes.
KNEURONS_SAE_FORMAT = "kneurons-sae/1"


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
        raise InputError(f"{source}: not a {fmt} SAE: {'; '.join(problems)} (it holds {list(expected)})")
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


def _read(path: Path, hint: str = "") -> dict[str, Any]:
    """The dict stored in ``path`` (safetensors or ``torch.load(weights_only=True)``), or an InputError."""
    if path.name.endswith(".safetensors"):
        require_safetensors(path)
    try:
        return read_weights(path, check_finite=False)  # the tensors used are checked by _check
    except ModelError as exc:
        raise InputError(f"{exc}{hint}") from exc


def _resolve_k(source: Path, stored: int | None, given: int | None, what: str) -> int | None:
    """The TopK k: the file's (``stored``) and the caller's must agree where both are given."""
    if stored is not None and given is not None and int(stored) != int(given):
        raise InputError(f"{source}: {what} says k = {stored}, but k = {given} was asked for")
    return stored if stored is not None else given


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
    reader = {"interplm": _interplm, "interprot": _interprot, "esmc": _esmc, "kneurons": _kneurons}[format]
    return reader(path, int(layer), k)


def _interplm(path: Path, layer: int, k: int | None) -> SparseAutoencoder:
    if path.is_dir():
        found = [path / name for name in INTERPLM_FILES if (path / name).is_file()]
        if len(found) != 1:
            raise InputError(
                f"{path}: an InterPLM layer folder must hold one of {', '.join(INTERPLM_FILES)}; "
                f"found {[f.name for f in found] or 'none'} (name the file)"
            )
        path = found[0]
    if k is not None:
        raise InputError(f"{path}: an InterPLM ReLU SAE has no TopK; k = {k} does not apply")
    t = _read(path)
    check_tensors(path, t, "interplm")
    if "normalize_to_sqrt_d" in t and bool(torch.as_tensor(t["normalize_to_sqrt_d"]).any()):
        raise InputError(
            f"{path}: normalize_to_sqrt_d is set (inputs L2-normalised to sqrt(d)); the published "
            f"InterPLM SAEs have no input scaling and this one is not supported"
        )
    return SparseAutoencoder(
        W_enc=t["encoder.weight"].T,
        b_enc=t["encoder.bias"],
        W_dec=t["decoder.weight"].T,
        b_pre=t["bias"],
        b_dec=t["bias"],
        layer=layer,
        k=None,
        zscore=False,
        format="interplm",
        source=str(path),
    )


def _interprot(path: Path, layer: int, k: int | None) -> SparseAutoencoder:
    if path.is_dir():
        raise InputError(f"{path}: an InterProt SAE is one file (.safetensors, .pt or .ckpt), not a folder")
    data = _read(
        path,
        hint="; a Lightning checkpoint whose hyper-parameters hold Python objects cannot be read "
        "safely: save its state_dict with torch.save and give that file",
    )
    state = data.get("state_dict") if isinstance(data.get("state_dict"), Mapping) else None
    if state is not None:  # Lightning: the SAE's tensors under sae_model., the wrapper's others ignored
        data = {n[len(LIGHTNING_PREFIX) :]: v for n, v in state.items() if n.startswith(LIGHTNING_PREFIX)}
        if not data:
            raise InputError(f"{path}: a checkpoint with a state_dict but no {LIGHTNING_PREFIX}* tensors")
    sizes = check_tensors(path, data, "interprot")
    name_k = INTERPROT_K.search(path.name)
    named = INTERPROT_NAME.search(path.name)
    if named:
        said = {"d": int(named[1]), "layer": int(named[2]), "F": int(named[3])}
        found = {"d": sizes["d"], "layer": layer, "F": sizes["F"]}
        wrong = [f"{key} = {said[key]}, not {found[key]}" for key in said if said[key] != found[key]]
        if wrong:
            raise InputError(
                f"{path}: the file name says {', '.join(wrong)} (d and F from its tensors, the layer "
                f"asked for): an SAE of another model or layer?"
            )
    k = _resolve_k(path, int(name_k[1]) if name_k else None, k, "the file name")
    tensors = (data["w_enc"], data["b_enc"], data["w_dec"], data["b_pre"])
    return _zscored_topk(*tensors, layer, INTERPROT_DEFAULT_K if k is None else k, "interprot", path)


def _zscored_topk(
    w_enc: torch.Tensor,
    b_enc: torch.Tensor,
    w_dec: torch.Tensor,
    b_pre: torch.Tensor,
    layer: int,
    k: int,
    fmt: str,
    path: Path,
    meta: dict[str, Any] | None = None,
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
    )


def _esmc(path: Path, layer: int, k: int | None) -> SparseAutoencoder:
    config_path = path / "config.json"
    if not path.is_dir() or not config_path.is_file():
        raise InputError(f"{path}: an ESM C SAE is a folder with config.json and layer_{{N}}.safetensors")
    try:
        cfg = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{config_path}: not readable as JSON ({exc})") from exc
    missing = [key for key in ESMC_CONFIG_KEYS if key not in cfg]
    if missing:
        raise InputError(
            f"{config_path}: missing {missing} (an ESM C SAE config has {list(ESMC_CONFIG_KEYS)})"
        )
    available = list(cfg["available_layers"])
    file = path / f"layer_{layer}.safetensors"
    if layer not in available or not file.is_file():
        raise InputError(f"{path}: no SAE for layer {layer} (no {file.name}); available_layers {available}")
    t = _read(file)
    sizes = check_tensors(file, t, "esmc")
    if (sizes["d"], sizes["F"]) != (int(cfg["d_model"]), int(cfg["codebook_dim"])):
        raise InputError(
            f"{file}: tensors give d = {sizes['d']}, C = {sizes['F']}, but {config_path.name} says "
            f"d_model = {cfg['d_model']}, codebook_dim = {cfg['codebook_dim']}"
        )
    return SparseAutoencoder(
        W_enc=t["W_enc"],
        b_enc=torch.zeros(sizes["F"]),
        W_dec=t["W_dec"],
        b_pre=t["b_dec"],
        b_dec=t["b_dec"],
        layer=layer,
        k=_resolve_k(file, int(cfg["k"]), k, config_path.name),
        zscore=True,
        format="esmc",
        source=str(file),
        relu_first=True,
    )


def _kneurons(path: Path, layer: int, k: int | None) -> SparseAutoencoder:
    if path.is_dir():
        raise InputError(f"{path}: a kneurons SAE is one file (what train_sae writes), not a folder")
    payload = _read(path)
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
    k = _resolve_k(path, payload.get("k"), k, "the file")
    meta = {"model_sha256": payload.get("model_sha256"), **dict(payload.get("meta") or {})}
    return _zscored_topk(
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
