"""The scoring methods, one entry each: what the schema, ablation ranking, figures and jobs know of a method.

Torch-free, so that the config, ablation selection and figures (which run without torch) can read
it; the implementing class is named by its dotted path and imported only by ``MethodSpec.load``.
Adding a method means one ``MethodSpec`` here and one class with the ``ScoringMethod`` shape
(``kneurons.scoring.base``); the schema's ``score.methods`` enum is filled in from ``METHODS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MethodSpec:
    """One scoring method.

    ``attribution``: its scores share a unit across modules (attributions to one target), so
    ``ablate.normalise: auto`` ranks them without per-module normalisation.
    ``class_conditional``: it can write per-class rows (column ``label``).
    ``section``: the ``score`` config section holding its settings; ``settings_keys`` the keys of
    that section that determine its scores (``None``: all of them), in the order they are recorded,
    where ``fixed_settings`` (name, value) pairs supply constants recorded among them.
    ``implementation``: ``"module:Class"`` of the class implementing it.
    ``needs_reference``: it compares the model with the weights fine-tuning started from
    (``kneurons.model.reference``), so a model fine-tuned from random initialisation cannot be
    scored by it, and its job is given the reference (``kneurons.scoring.base.score_layer``).
    """

    name: str
    label: str
    colour: str
    marker: str
    linestyle: str | tuple[int, tuple[int, ...]]  # a matplotlib line style
    hatch: str
    attribution: bool
    class_conditional: bool
    section: str
    settings_keys: tuple[str, ...] | None
    implementation: str
    fixed_settings: tuple[tuple[str, Any], ...] = ()
    needs_reference: bool = False

    def settings(self, score_cfg: dict[str, Any]) -> dict[str, Any]:
        """The settings that determine this method's scores (recorded in the score-table metadata)."""
        section = score_cfg[self.section]
        fixed = dict(self.fixed_settings)
        if self.settings_keys is None:
            return {**fixed, **section}
        return {k: fixed[k] if k in fixed else _plain(section[k]) for k in self.settings_keys}

    def load(self) -> type:
        """The implementing class (imports torch)."""
        module, _, name = self.implementation.partition(":")
        return getattr(importlib.import_module(module), name)


def _plain(value: Any) -> Any:
    """Lists and tuples as plain lists (YAML and JSON round trips agree then)."""
    return list(value) if isinstance(value, list | tuple) else value


#: Every scoring method, in the order figures list them. Colours are Okabe-Ito (colour-blind-safe);
#: markers and dashes differ too, so that a grayscale print stays readable.
METHODS: dict[str, MethodSpec] = {
    s.name: s
    for s in (
        MethodSpec(
            name="activation",
            label="activation",
            colour="#0072B2",
            marker="o",
            linestyle="-",
            hatch="",
            attribution=False,
            class_conditional=True,
            section="activation",
            settings_keys=None,
            fixed_settings=(("tokens", "non-padding incl. BOS/EOS"),),
            implementation="kneurons.scoring.activation:Activation",
        ),
        MethodSpec(
            name="ig",
            label="integrated gradients",
            colour="#D55E00",
            marker="s",
            linestyle="--",
            hatch="///",
            attribution=True,
            class_conditional=True,
            section="ig",
            settings_keys=(
                "steps",
                "method",
                "target",
                "baseline",
                "class_conditional",
                "tolerance",
                "max_steps",
            ),
            fixed_settings=(("baseline", "zero"),),
            implementation="kneurons.scoring.ig:IntegratedGradients",
        ),
        MethodSpec(
            name="gradxact",
            label="gradient x activation",
            colour="#009E73",
            marker="^",
            linestyle="-.",
            hatch="...",
            attribution=True,
            class_conditional=True,
            section="ig",
            settings_keys=("target", "class_conditional"),
            implementation="kneurons.scoring.ig:GradientXActivation",
        ),
        MethodSpec(
            name="delta",
            label="weight change (delta)",
            colour="#E69F00",
            marker="D",
            linestyle=(0, (5, 1, 1, 1)),
            hatch="\\\\",
            attribution=False,
            class_conditional=True,
            section="delta",
            settings_keys=None,
            fixed_settings=(
                ("tokens", "non-padding incl. BOS/EOS"),
                ("form", "mean |(W - W_ref) x + (b - b_ref)|"),
            ),
            implementation="kneurons.scoring.delta:WeightChange",
            needs_reference=True,
        ),
        MethodSpec(
            name="random",
            label="random",
            colour="#555555",
            marker="",
            linestyle=":",
            hatch="xx",
            attribution=False,
            class_conditional=False,
            section="random",
            settings_keys=("seeds",),
            implementation="kneurons.scoring.random:RandomScores",
        ),
    )
}


def get(name: str) -> MethodSpec:
    """The spec of method ``name``; ``ValueError`` naming the known methods otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown scoring method {name!r}; one of {', '.join(METHODS)}") from None


def is_attribution(name: str) -> bool:
    """True for a known method whose scores are attributions (ranked without per-module normalisation)."""
    spec = METHODS.get(name)
    return spec is not None and spec.attribution


def needs_reference(name: str) -> bool:
    """True for a known method that compares the model with its reference weights (``delta``)."""
    spec = METHODS.get(name)
    return spec is not None and spec.needs_reference


def build(name: str, score_cfg: dict[str, Any]) -> Any:
    """An instance of method ``name`` with its settings from the validated ``score`` config section."""
    return get(name).load().from_config(score_cfg)
