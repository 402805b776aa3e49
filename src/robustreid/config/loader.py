"""YAML presets with ``_base_`` inheritance, ``key=value`` overrides and conversion to typed dataclasses.

Rules:
- ``_base_: other.yaml`` (or a list) names presets to start from, relative to the file or by preset name;
  later files override earlier ones, nested mappings merge key by key, lists are replaced.
- Overrides are ``a.b.c=value``; the value is parsed as YAML (``lr=3e-4``, ``steps=[40,70]``, ``amp=true``).
- :func:`from_dict` checks every key against the dataclass schema: an unknown key or a value of the wrong type is
  an error that names the field and what was expected.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Type, TypeVar, Union

import yaml

T = TypeVar("T")

#: folders searched for preset names, in order: the repository's configs/ and the packaged copy
_PRESET_DIRS = [Path(__file__).resolve().parents[3] / "configs", Path(__file__).resolve().parents[1] / "configs"]


class ConfigError(ValueError):
    """A configuration problem; the message names the file or field and what was expected."""


def preset_path(name: str) -> Path:
    """Resolve a preset name (``bot_r50``) or a path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    for d in _PRESET_DIRS:
        for cand in (d / name, d / f"{name}.yaml", d / f"{name}.yml"):
            if cand.is_file():
                return cand
    known = sorted({f.stem for d in _PRESET_DIRS if d.is_dir() for f in d.glob("*.yaml")})
    raise ConfigError(f"config {name!r} is neither a YAML file nor a preset; presets: {', '.join(known) or '(none)'}")


def _merge(base: Dict[str, Any], top: Mapping[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml(path: Union[str, Path], _seen: Optional[List[Path]] = None) -> Dict[str, Any]:
    """Load a YAML preset, resolving ``_base_`` recursively (cycles are an error)."""
    path = preset_path(str(path)) if not Path(path).is_file() else Path(path)
    path = path.resolve()
    seen = list(_seen or [])
    if path in seen:
        raise ConfigError(f"{path}: _base_ cycle: {' -> '.join(str(s) for s in seen + [path])}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: Dict[str, Any] = {}
    for b in bases:
        bp = (path.parent / b) if (path.parent / b).is_file() else preset_path(str(b))
        merged = _merge(merged, load_yaml(bp, seen + [path]))
    return _merge(merged, data)


def apply_overrides(cfg: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested dict; returns a new dict."""
    out = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. solver.lr=3e-4")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {p!r} is a value, not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, List, tuple, typing.Sequence):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            if origin is tuple or origin is list:
                raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        conv = [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(conv) if origin is tuple else conv
    if origin in (dict, Dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: Type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a nested mapping, checking keys and types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in data.items():
        if k not in fields:
            close = difflib.get_close_matches(k, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(fields)}"
            raise ConfigError(f"{where}: unknown key {k!r}{hint}")
        kwargs[k] = _convert(v, hints[k], f"{where}.{k}")
    try:
        return cls(**kwargs)  # type: ignore[call-arg]
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain nested dict/list (for saving the resolved config as YAML)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_config(cls: Type[T], name_or_path: Union[str, Path, None] = None, overrides: Iterable[str] = ()) -> T:
    """Preset or YAML file + overrides -> typed config ``cls``."""
    data = load_yaml(name_or_path) if name_or_path is not None else {}
    data = apply_overrides(data, overrides)
    return from_dict(cls, data, where=str(name_or_path or "config"))
