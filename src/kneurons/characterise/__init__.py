"""What do knowledge neurons know? Class-specific neurons and where neurons fire along sequences.

Two analyses, both on the fine-tuned classifier and the IG score table:

* **Class-specific knowledge neurons** (``classes``: each class's neuron set and their overlaps;
  ``suppression``: suppress a class's set, every class's recall change, and the specificity
  against random sets with the same number of neurons in every module).
* **Where neurons fire** (``neurons``: the top-N IG neurons' per-residue activations from
  ``activations``, oriented responses and best windows from ``windows``, and the site AUROC
  from ``sites``).

The package re-exports the public names of its modules.
"""

from kneurons.characterise.activations import residue_activations
from kneurons.characterise.classes import (
    as_mask,
    class_overlap,
    neuron_class_profile,
    random_matched_mask,
    ranked_neurons,
    select_class_neurons,
    split_ig_scores,
)
from kneurons.characterise.neurons import characterise_neurons, top_neurons
from kneurons.characterise.sites import (
    NO_ANNOTATION,
    SiteAnnotation,
    auroc,
    held_out_sites,
    site_enrichment,
    site_summary,
    site_tracks,
)
from kneurons.characterise.suppression import class_suppression, per_class_recall
from kneurons.characterise.windows import (
    AMINO_ACIDS,
    ORIENTATIONS,
    WINDOW_SOURCES,
    best_windows,
    consensus,
    motif_match,
    orient_responses,
    position_frequency_matrix,
    window_proteins,
    window_responses,
)
from kneurons.stats.multiple import bh_qvalues
from kneurons.vocabulary import NEURON_KEY

__all__ = [
    "AMINO_ACIDS",
    "NEURON_KEY",
    "NO_ANNOTATION",
    "ORIENTATIONS",
    "WINDOW_SOURCES",
    "SiteAnnotation",
    "as_mask",
    "auroc",
    "best_windows",
    "bh_qvalues",
    "characterise_neurons",
    "class_overlap",
    "class_suppression",
    "consensus",
    "held_out_sites",
    "motif_match",
    "neuron_class_profile",
    "orient_responses",
    "per_class_recall",
    "position_frequency_matrix",
    "random_matched_mask",
    "ranked_neurons",
    "residue_activations",
    "select_class_neurons",
    "site_enrichment",
    "site_summary",
    "site_tracks",
    "split_ig_scores",
    "top_neurons",
    "window_proteins",
    "window_responses",
]
