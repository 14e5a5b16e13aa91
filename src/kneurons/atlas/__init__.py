"""The neuron atlas: one self-contained HTML page (``results/atlas/index.html``) to browse neurons offline.

``build_atlas`` gathers the result tables into one JSON object (``build``: which neurons go
in and their scores, ``neurons``: ranks and flags; SAE features, where the run has them, are
units beside the neurons, ``features``: the SAE section; each unit's concepts and the concept
section where the concept stage ran, ``concepts``); ``render_atlas`` puts it into the Jinja2
template with the figures as data URIs and a small vanilla-JS table, so the page opens from
``file://`` with no network and no server. Torch-free: it reads tables only.
"""

from kneurons.atlas.build import OVERVIEW_FIGURES, AtlasInputs, build_atlas
from kneurons.atlas.concepts import CONCEPT_FIGURES
from kneurons.atlas.features import FEATURE_FIGURES
from kneurons.atlas.page import render_atlas, write_atlas

__all__ = [
    "CONCEPT_FIGURES",
    "FEATURE_FIGURES",
    "OVERVIEW_FIGURES",
    "AtlasInputs",
    "build_atlas",
    "render_atlas",
    "write_atlas",
]
