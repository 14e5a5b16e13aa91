"""How the workflow reads a configuration: the embedded default, then each ``--configfile`` merged
over it, then the ``--config`` values, then the schema; the Snakefile and ``kneurons plan`` share it.

Snakemake reads the Snakefile's ``configfile:`` (``EMBEDDED_DEFAULT``, relative to the working
directory), merges every ``--configfile`` over it key by key (``merge_config``: a mapping merges into
a mapping, anything else replaces; ``snakemake.utils.update_config``), then the ``--config KEY=VALUE``
values (``parse_config_values``), and ``--replace-workflow-config`` drops the default.
``workflow_config`` is what the workflow then does with the result (common.smk): the typing below and
``kneurons.config.validate_config``. ``read_workflow_config`` does all of it from the files, so
``kneurons plan --configfile config/paper.yaml`` plans the configuration that
``snakemake --configfile config/paper.yaml`` runs (tests/test_shipped_configs.py compares their job
counts for every shipped configuration).

Nested ``--config`` values arrive as strings: ``snakemake --config ablate='{max_sequences: 36,
random_seeds: [0, 1, 2]}'`` parses a nested value with YAML's BaseLoader, so every leaf arrives as a
string (``'36'``, ``['0', '1', '2']``) and the schema would refuse them ("'36' is not of type
'integer'"), although the user wrote what a config file would hold. ``typed_config_values`` reads such
a string as YAML wherever the schema refuses it and YAML gives something else than a string; every
value the schema accepts, and every string YAML leaves a string, stays as it is (the validation that
follows reports those).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from kneurons.config import prefer_user_fill, validate_config
from kneurons.errors import ConfigError
from kneurons.schema import load_schema

#: The embedded default: the Snakefile's ``configfile:``, relative to the working directory.
EMBEDDED_DEFAULT = "config/config.yaml"

#: Passes over the config: a value read from YAML holds no strings to read again, so two suffice.
_ROUNDS = 4
_UNREADABLE = object()


def _as_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return _UNREADABLE


def typed_config_values(config: dict[str, Any], schema: dict | None = None) -> dict[str, Any]:
    """A copy of ``config`` whose schema-refused strings are read as YAML values where YAML types them."""
    cfg = copy.deepcopy(config)
    validator = jsonschema.Draft202012Validator(schema or load_schema())
    for _ in range(_ROUNDS):
        fixes = []
        for error in validator.iter_errors(cfg):
            path = list(error.absolute_path)
            if path and isinstance(error.instance, str):
                value = _as_yaml(error.instance)
                if value is not _UNREADABLE and not isinstance(value, str):
                    fixes.append((path, value))
        if not fixes:
            break
        for path, value in fixes:
            parent = cfg
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
    return cfg


def merge_config(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base`` as Snakemake merges a configfile over the config
    (``snakemake.utils.update_config``): a mapping merges into the mapping under its key (an empty one
    changes nothing), any other value (a list, a number, None) replaces it."""
    out: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping):
            below = out.get(key)
            out[key] = merge_config(below if isinstance(below, Mapping) else {}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _base_yaml(text: str) -> Any:
    """``text`` read by YAML's BaseLoader (every leaf a string; nothing constructed)."""
    loader = yaml.BaseLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _bool(text: str) -> bool:
    # Snakemake's: only the Python spellings (``false`` stays a string, which the typing reads)
    if text == "True":
        return True
    if text == "False":
        return False
    raise ValueError(text)


def parse_config_values(entries: Sequence[str]) -> dict[str, Any]:
    """``--config KEY=VALUE ...`` as Snakemake reads them (``snakemake.cli.parse_config``): each value
    as an int, a float, a boolean, YAML read by the BaseLoader (nested values: their leaves stay
    strings, which ``typed_config_values`` types) or text; ``KEY=`` is None. Later entries merge over
    earlier ones."""
    out: dict[str, Any] = {}
    for entry in entries:
        key, sep, text = entry.partition("=")
        if not sep or not re.fullmatch(r"[a-zA-Z_][\w-]*\w", key.strip()):
            raise ConfigError(f"--config {entry!r}: give KEY=VALUE with KEY a name (results, ablate, ...)")
        value: Any = None
        if text != "":
            for parse in (int, float, _bool, _base_yaml, str):
                try:
                    value = parse(text)
                    break
                except (ValueError, yaml.YAMLError):
                    continue
        out = merge_config(out, {key.strip(): value})
    return out


def workflow_config(config: Mapping[str, Any], given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The validated configuration of a run from the merged one (what ``configfile:``, ``--configfile``
    and ``--config`` gave): nested ``--config`` strings typed, then ``validate_config`` (defaults
    filled in, every problem named by its key). common.smk and ``read_workflow_config`` both call it.

    ``given``: what the user's files and ``--config`` values set, without the embedded default: where
    they set the old one-value ``ablate.fill`` (and not ``ablate.fills``), it wins over the default's
    ``ablate.fills`` (``kneurons.config.prefer_user_fill``)."""
    return validate_config(typed_config_values(prefer_user_fill(dict(config), given or {})))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:  # its text gives the line and column
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file holds a mapping of keys (results, data, ...)")
    return data


def read_workflow_config(
    configfiles: Sequence[str | Path] = (),
    config_values: Sequence[str] = (),
    default: str | Path = EMBEDDED_DEFAULT,
    replace_default: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The configuration ``snakemake --configfile <configfiles> --config <config_values>`` runs, from
    the working directory, validated (``workflow_config``), and the files it came from, in merge order.

    ``default``: the Snakefile's ``configfile:`` (``EMBEDDED_DEFAULT``); as in Snakemake, a missing
    default is an error only when no ``configfiles`` are given, and ``replace_default``
    (``--replace-workflow-config``) leaves it out. Errors name the files merged.
    """
    default = Path(default)
    sources: list[str] = []
    merged: dict[str, Any] = {}
    given: dict[str, Any] = {}  # the user's files and values, without the default
    if not replace_default and (default.is_file() or not configfiles):
        if not default.is_file():
            raise ConfigError(
                f"{default}: the embedded default is not there (run from the repository root, or name a "
                "--configfile)"
            )
        merged = _read_yaml(default)
        sources.append(str(default))
    for path in configfiles:
        user = _read_yaml(Path(path))
        merged, given = merge_config(merged, user), merge_config(given, user)
        sources.append(str(path))
    if config_values:
        values = parse_config_values(config_values)
        merged, given = merge_config(merged, values), merge_config(given, values)
        sources.append("--config " + " ".join(config_values))
    try:
        return workflow_config(merged, given), sources
    except ConfigError as exc:
        raise ConfigError(f"{' + '.join(sources)}: {exc}") from None
