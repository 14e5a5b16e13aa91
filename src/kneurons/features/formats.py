"""SAE files: a reader per format (``load_sae``) and the writer of the workflow's own (``save_sae``).

Offline and safe: a local file or folder, tensors read with ``torch.load(weights_only=True)`` or
safetensors (an optional dependency: ``pip install 'kneurons[hf]'``). Every error names the file,
and the tensor where one is at fault (missing, unexpected, misshapen, NaN or inf); a file of the
wrong layout is told the tensors it holds.

Each reader also says where the SAE reads the model (its input point,
``kneurons.features.sae.InputPoint``) and on which scale its activations are reported: the
per-feature maximum where the file gives it (every feature then peaks at 1, whichever release
wrote the file), else the SAE's own units.

The formats, as their projects' public code defines them (the math: ``kneurons.features.sae``):

* ``interplm``: InterPLM's ``ReLUSAE`` (``interplm/sae/dictionary.py``, ElanaPearl/InterPLM), one
  ``torch.save``'d state dict per layer (``layer_<N>/ae_normalized.pt`` / ``ae_unnormalized.pt``):
  ``bias`` ``[d]``, ``encoder.weight`` ``[F, d]`` and ``encoder.bias`` ``[F]`` (an
  ``nn.Linear(d, F)``), ``decoder.weight`` ``[d, F]`` (``nn.Linear(F, d, bias=False)``);
  ``encode = ReLU(encoder(x - bias))``, ``decode = decoder(f) + bias``. Two releases:

  - v1.0 keeps the buffer ``activation_rescale_factor`` ``[F]`` (ones until
    ``interplm/sae/normalize.py`` stores each feature's maximum activation there, for
    ``encode(normalize_features=True)`` to divide by) and ``normalize_to_sqrt_d`` (a bool: inputs
    scaled to norm sqrt(d), outputs scaled back). A factor other than ones divides the activations
    here too; a feature whose factor is 0 (it never fired where the maximum was measured) keeps
    its own units, counted in the SAE's ``meta``.
  - the first release has neither; its ``normalize.py`` folded each feature's maximum into the
    weights of ``ae_normalized.pt`` (encoder rows and bias divided, decoder columns multiplied),
    so that file's activations are already on the per-feature-maximum scale; ``ae_unnormalized.pt``
    (and any file of either release without a maximum) is in the SAE's own units.

  Its embedder (``interplm/embedders/esm.py``) keeps residue tokens only: BOS and EOS are dropped,
  so the SAE's input tokens are the residues. A ``layer_<N>`` folder in the path must name the
  layer asked for.
* ``interprot``: InterProt's TopK ``SparseAutoencoder`` (``interprot/sae_model.py``,
  etowahadams/interprot): ``w_enc`` ``[d, F]``, ``w_dec`` ``[F, d]``, ``b_enc`` ``[F]``, ``b_pre``
  ``[d]``, buffer ``stats_last_nonzero`` ``[F]`` (training statistics, ignored); a plain state
  dict (``.pt``, ``.safetensors``) or a Lightning checkpoint whose ``state_dict`` prefixes them with
  ``sae_model.``. Inputs z-scored per token (its ``LN``: unbiased std, ``+ 1e-5``); TopK, then ReLU
  on the kept values; ``recon = (latents @ w_dec + b_pre) * std + mu``. Its ``encode()`` returns the
  pre-TopK value: the feature here is the latent. k is not stored: the file name's ``_k<k>``
  (names like ``esm2_plm1280_l24_sae4096_k64_auxk640.ckpt`` also give d, the layer and F, which
  are checked), else the caller's k, else 128. Its ESM-2 wrapper (``interprot/esm_wrapper.py``)
  feeds the SAE the output of ``layers[:l]`` (the stream entering layer l) at every token, from
  embeddings without ESM-2's token-dropout rescale (``embed_scale = 1``, no ``x 0.88``): that run
  of the model is its input point. Activations are in its own units (no maximum is stored).
* ``esmc``: the ESM C SAEs of Biohub's fork of ``esm`` (``esm/models/esmc/sae.py``: ``EsmcSaeModel``,
  ``EsmcSaeLayer``, ``EsmcSaeConfig``), a folder of ``config.json`` (``d_model``, ``codebook_dim``,
  ``k``, ``available_layers``, and ``use_residual_update_instead_of_states``, absent in the configs
  published before it existed: false) and one ``layer_{N}.safetensors`` per layer, as
  ``save_pretrained`` writes them: ``W_enc`` ``[d, C]``, ``W_dec`` ``[C, d]``, ``b_dec`` ``[d]`` (no
  encoder bias) and the buffers ``idf`` and ``max`` ``[C]`` (ones where a variant ships none).
  Z-scored as InterProt, ``f = TopK_k(ReLU((z - b_dec) W_enc))``, ``z_hat = f W_dec + b_dec``, at
  every non-padding token (``get_sae_output``'s token mask). Layer N reads the input of block N, or
  with the flag the update ``h[N] - h[N-1]`` (``EsmcModel._get_sae_outputs``; ``h[0]`` itself at
  layer 0). Its ``normalize_sae`` option reports ``f / max * idf``: ``max`` (each feature's
  maximum) puts activations on the per-feature-maximum scale here too; ``idf`` (an inverse
  document frequency, a weight for search, not a scale) is described in the SAE's ``meta`` and
  not applied.
* ``kneurons``: what ``kneurons.features.train.train_sae`` writes (``save_sae``): a ``torch.save``'d
  dict of plain values and tensors (``format``, ``layer``, ``k``, ``d``, ``n_features``,
  ``model_sha256``, ``tensors``: ``W_enc``, ``b_enc``, ``W_dec``, ``b_pre``, and ``meta``: the training
  record); z-scored TopK like InterProt, at every non-padding token of the model's own run (as
  trained), in its own units.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kneurons.errors import InputError, ModelError
from kneurons.features.sae import OWN_UNITS, SAE_FORMATS, InputPoint, SparseAutoencoder
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
#: ``activation_scale`` of activations divided by (or folded with) each feature's maximum.
MAX_SCALE = "per-feature maximum 1"
#: InterPLM's first-release file whose weights hold each feature's maximum (module docstring).
INTERPLM_FOLDED_FILE = "ae_normalized.pt"
#: A ``layer_<N>`` folder in a path (InterPLM's layout): it names the layer.
LAYER_FOLDER = re.compile(r"layer_(\d+)")
#: The ``config.json`` key of an ESM C SAE trained on each block's update (false when absent).
ESMC_UPDATE_KEY = "use_residual_update_instead_of_states"
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


def _read(path: Path) -> dict[str, Any]:
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


def _per_feature_max(source: Path, name: str, t: Any, n: int) -> tuple[torch.Tensor | None, int]:
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


def _layer_folder(path: Path, layer: int) -> None:
    """Refuse a path whose ``layer_<N>`` folder names another layer than ``layer``."""
    for part in (path, *path.parents):
        named = LAYER_FOLDER.fullmatch(part.name)
        if named:
            if int(named[1]) != layer:
                raise InputError(
                    f"{path}: the folder {part.name} says layer {named[1]}, but the SAE is attached at "
                    f"layer {layer} (units.features): an SAE of another layer?"
                )
            return


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
    _layer_folder(path, layer)
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
    sizes = check_tensors(path, t, "interplm")
    sqrt_d = "normalize_to_sqrt_d" in t and bool(torch.as_tensor(t["normalize_to_sqrt_d"]).any())
    scale, unscaled = None, 0
    if "activation_rescale_factor" in t:
        scale, unscaled = _per_feature_max(
            path, "activation_rescale_factor", t["activation_rescale_factor"], sizes["F"]
        )
    if scale is not None:
        release = "v1.0"
        activation_scale = f"{MAX_SCALE} (activations divided by the file's activation_rescale_factor)"
    elif path.name == INTERPLM_FOLDED_FILE and "activation_rescale_factor" not in t:
        release = "first release"
        activation_scale = f"{MAX_SCALE} (folded into the weights of {INTERPLM_FOLDED_FILE})"
    else:
        release = "v1.0" if "activation_rescale_factor" in t else "first release"
        activation_scale = OWN_UNITS
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
        normalize_to_sqrt_d=sqrt_d,
        feature_scale=scale,
        activation_scale=activation_scale,
        input_point=InputPoint(positions="residues"),
        meta={"release": release, "normalize_to_sqrt_d": sqrt_d, "features_unscaled": unscaled},
    )


def _interprot(path: Path, layer: int, k: int | None) -> SparseAutoencoder:
    if path.is_dir():
        raise InputError(f"{path}: an InterProt SAE is one file (.safetensors, .pt or .ckpt), not a folder")
    data = _read(path)
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
    # trained on ESM-2 run without the token-dropout rescale of its embeddings (esm_wrapper.py)
    point = InputPoint(rescaled_embeddings=False)
    return _zscored_topk(
        *tensors, layer, INTERPROT_DEFAULT_K if k is None else k, "interprot", path, None, point
    )


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
    update = cfg.get(ESMC_UPDATE_KEY, False)
    if not isinstance(update, bool):
        raise InputError(f"{config_path}: {ESMC_UPDATE_KEY} must be true or false, not {update!r}")
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
    scale, unscaled = (None, 0) if "max" not in t else _per_feature_max(file, "max", t["max"], sizes["F"])
    by_max = f"{MAX_SCALE} (activations divided by the file's max)"
    meta: dict[str, Any] = {ESMC_UPDATE_KEY: update, "features_unscaled": unscaled}
    if "idf" in t:
        idf = _per_feature_max(file, "idf", t["idf"], sizes["F"])[0]
        meta["idf"] = (
            "ones (not shipped)"
            if idf is None
            else "per-feature inverse document frequency (ESM C's normalize_sae weight), held, not applied"
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
        feature_scale=scale,
        activation_scale=OWN_UNITS if scale is None else by_max,
        input_point=InputPoint(update=update),
        meta=meta,
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
