"""The configuration schema and its defaults: what every key means and what it is when not given.

Imports nothing of the project (the bottom of the package): the settings seam, the config
validation (``kneurons.config.validate_config``, the one entry check), the command-line overrides
and library functions that take one config section all read the defaults from here. Library
code fills a section's defaults with ``with_defaults`` and nothing else.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema" / "config.schema.yaml"


def load_schema(path: str | Path | None = None) -> dict:
    """Read the configuration schema (YAML).

    ``score.methods``' enum repeats the scoring registry's methods (``kneurons.scoring.registry``)
    for readers of the schema; tests/test_scoring.py keeps the two equal.
    """
    with open(path or SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def defaults_filling(validator_class):
    """A jsonschema validator class that fills in ``default`` values before validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def section_defaults(section: str) -> Any:
    """Defaults of a top-level config section, read from the schema (nested objects filled too)."""

    def fill(schema: dict) -> Any:
        if schema.get("type") == "object" and "properties" in schema:
            out = copy.deepcopy(schema.get("default", {}))
            for key, sub in schema["properties"].items():
                if key not in out and ("default" in sub or sub.get("type") == "object"):
                    out[key] = fill(sub)
                elif isinstance(out.get(key), dict) and sub.get("type") == "object":
                    out[key] = {**fill(sub), **out[key]}
            return out
        return copy.deepcopy(schema.get("default"))

    return fill(load_schema()["properties"][section])


def with_defaults(section: str, given: dict[str, Any] | None) -> dict[str, Any]:
    """``given`` over the schema defaults of ``section`` (nested objects merged one level); not validated."""
    out = section_defaults(section)
    for key, value in (given or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
