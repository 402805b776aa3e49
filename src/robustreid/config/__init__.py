"""Typed configuration: dataclasses are the schema, YAML files are presets (with ``_base_``), the CLI adds
``key=value`` overrides. See :func:`load_config`."""

from .loader import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
    load_yaml,
    preset_path,
    to_dict,
)

__all__ = ["ConfigError", "apply_overrides", "from_dict", "load_config", "load_yaml", "preset_path", "to_dict"]
