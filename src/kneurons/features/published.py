"""The readers of the published SAE formats (``kneurons.features.formats.load_sae`` dispatches here),
as their projects' public code writes the files (the math: ``kneurons.features.sae``):

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
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kneurons.errors import InputError
from kneurons.features.files import check_tensors, per_feature_max, read_sae_file, resolve_k, zscored_topk
from kneurons.features.sae import OWN_UNITS, InputPoint, SparseAutoencoder

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


def layer_folder(path: Path, layer: int) -> None:
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


def read_interplm(path: Path, layer: int, k: int | None) -> SparseAutoencoder:
    layer_folder(path, layer)
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
    t = read_sae_file(path)
    sizes = check_tensors(path, t, "interplm")
    sqrt_d = "normalize_to_sqrt_d" in t and bool(torch.as_tensor(t["normalize_to_sqrt_d"]).any())
    scale, unscaled = None, 0
    if "activation_rescale_factor" in t:
        scale, unscaled = per_feature_max(
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


def read_interprot(path: Path, layer: int, k: int | None) -> SparseAutoencoder:
    if path.is_dir():
        raise InputError(f"{path}: an InterProt SAE is one file (.safetensors, .pt or .ckpt), not a folder")
    data = read_sae_file(path)
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
    k = resolve_k(path, int(name_k[1]) if name_k else None, k, "the file name")
    tensors = (data["w_enc"], data["b_enc"], data["w_dec"], data["b_pre"])
    # trained on ESM-2 run without the token-dropout rescale of its embeddings (esm_wrapper.py)
    point = InputPoint(rescaled_embeddings=False)
    return zscored_topk(
        *tensors, layer, INTERPROT_DEFAULT_K if k is None else k, "interprot", path, None, point
    )


def read_esmc(path: Path, layer: int, k: int | None) -> SparseAutoencoder:
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
    t = read_sae_file(file)
    sizes = check_tensors(file, t, "esmc")
    if (sizes["d"], sizes["F"]) != (int(cfg["d_model"]), int(cfg["codebook_dim"])):
        raise InputError(
            f"{file}: tensors give d = {sizes['d']}, C = {sizes['F']}, but {config_path.name} says "
            f"d_model = {cfg['d_model']}, codebook_dim = {cfg['codebook_dim']}"
        )
    scale, unscaled = (None, 0) if "max" not in t else per_feature_max(file, "max", t["max"], sizes["F"])
    by_max = f"{MAX_SCALE} (activations divided by the file's max)"
    meta: dict[str, Any] = {ESMC_UPDATE_KEY: update, "features_unscaled": unscaled}
    if "idf" in t:
        idf = per_feature_max(file, "idf", t["idf"], sizes["F"])[0]
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
        k=resolve_k(file, int(cfg["k"]), k, config_path.name),
        zscore=True,
        format="esmc",
        source=str(file),
        relu_first=True,
        feature_scale=scale,
        activation_scale=OWN_UNITS if scale is None else by_max,
        input_point=InputPoint(update=update),
        meta=meta,
    )
