"""Nested ``snakemake --config`` values arrive as strings; read them as YAML where the schema needs more.

``snakemake --config ablate='{max_sequences: 36, random_seeds: [0, 1, 2]}'`` parses a nested
value with YAML's BaseLoader, so every leaf arrives as a string (``'36'``, ``['0', '1', '2']``)
and the schema would refuse them ("'36' is not of type 'integer'"), although the user wrote
what a config file would hold. ``typed_config_values`` reads such a string as YAML wherever
the schema refuses it and YAML gives something else than a string; every value the schema
accepts, and every string YAML leaves a string, stays as it is (the validation that follows
reports those).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import yaml

from kneurons.schema import load_schema

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
