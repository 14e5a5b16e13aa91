"""The workflow's vocabulary (docs: DESIGN.md "Vocabulary"), defined once; torch-free.

Every stage names modules, scopes, modes and neuron keys with these constants, so a table
written by one stage reads the same in the next (and in the plots environment, without torch).
"""

from __future__ import annotations

#: The neuron-bearing modules of a layer, in fair-esm's names and in layout order.
MODULE_TYPES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
#: The unit name of sparse-autoencoder features (DESIGN.md, "Features"): feature ``i`` of the SAE
#: on the residual stream entering layer ``l`` is unit ``L{l}.sae.{i}`` (module ``sae``, layers
#: ``0..num_layers``, the last after the final layer norm). Not a module type: neurons stay six.
FEATURE_MODULE: str = "sae"
#: Every unit-bearing module name in layout order: the SAE features of a layer's incoming stream
#: come before its neurons (the stream enters the layer before its projections see it).
UNIT_MODULES: tuple[str, ...] = (FEATURE_MODULE, *MODULE_TYPES)
#: Selection scopes: all modules ranked together, one module type across layers, one module.
SCOPES: tuple[str, ...] = ("global", "module_type", "layer_module")
#: Ablation modes: keep the top f and fill the rest, or fill the top f.
MODES: tuple[str, ...] = ("preserve", "suppress")
#: Fills (``ablate.fills``): what a masked unit outputs (``kneurons.ablation.fill``).
FILLS: tuple[str, ...] = ("zero", "mean", "pretrained", "resample")
#: The fills that apply to SAE features (``pretrained`` needs a linear layer's weights to roll back).
FEATURE_FILLS: tuple[str, ...] = ("zero", "mean", "resample")
#: The bases of an SAE's stream compared in claim 6 (``kneurons.features.bases``), in the order the
#: tables and figures list them, and the ones the workflow builds itself (linear, ``units.bases``).
BASES: tuple[str, ...] = ("features", "dimensions", "pca", "random_basis")
LINEAR_BASES: tuple[str, ...] = ("dimensions", "pca", "random_basis")
#: The mode the same-site bases are ablated in: claim 6 reads the kept sets.
BASES_MODE: str = "preserve"
#: How the page, figures and claims name each basis.
BASIS_NAMES: dict[str, str] = {
    "features": "SAE features",
    "dimensions": "stream dimensions",
    "pca": "PCA components",
    "random_basis": "random orthogonal basis",
}
#: The columns that identify one neuron in every table (a list: pandas indexes with it).
NEURON_KEY: list[str] = ["layer", "module", "neuron"]


def unit_id(layer: int, module: str, index: int) -> str:
    """The name of one unit, e.g. ``L3.k_proj.17`` (a neuron) or ``L2.sae.288`` (an SAE feature)."""
    return f"L{int(layer)}.{module}.{int(index)}"
