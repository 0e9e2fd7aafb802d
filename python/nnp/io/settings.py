"""Settings dataclasses read from YAML (TrainConfig, StudyConfig): the shared
reading and type checking, so every config file fails the same clear way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


def read_yaml_mapping(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """The mapping of settings in a YAML file (empty file: {}), and the name
    to use in error messages."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings, found {type(values).__name__}")
    return values, str(path)


def coerce(kind: type, value: Any, key: str, source: str) -> Any:
    """`value` as a `kind` scalar setting: ints are accepted for floats, and
    strings that parse as floats (YAML reads 1e-3 as a string); anything else
    of the wrong type is an error naming the setting and the source."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if type(value) is not kind:
        raise ValueError(f"{source}: {key} must be a {kind.__name__}, got {value!r}")
    return value
