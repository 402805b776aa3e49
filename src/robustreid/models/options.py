"""``model.method_kwargs`` of the models whose options are a few positive integers (IGOAS, PCB)."""

from __future__ import annotations

from typing import Any, Dict, Mapping

from ..config.loader import ConfigError


def method_options(given: Mapping[str, Any], defaults: Mapping[str, int], model: str) -> Dict[str, int]:
    """``given`` checked against ``defaults`` (known keys, positive integers), defaults filled in."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"model.method_kwargs: unknown option(s) {unknown} for {model}; known: {', '.join(defaults)}")
    out = dict(defaults)
    for k, v in given.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"model.method_kwargs.{k}: expected a positive integer for {model}, got {v!r}")
        out[k] = v
    return out
