"""A tiny name -> builder registry, one per family (datasets, backbones, models, losses, corruptions, ...).

Example::

    BACKBONES = Registry("backbone")

    @BACKBONES.register("resnet50")
    def resnet50(**kw): ...

    model = BACKBONES.build("resnet50", last_stride=1)
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


class Registry:
    """Maps names to callables. Names are case-insensitive; '-' and '_' are equivalent."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: Dict[str, Callable[..., Any]] = {}

    @staticmethod
    def _key(name: str) -> str:
        return name.strip().lower().replace("-", "_")

    def register(self, name: Optional[str] = None, *, override: bool = False) -> Callable[[T], T]:
        """Decorator registering ``fn`` under ``name`` (default: the function's own name)."""

        def deco(fn: T) -> T:
            self.add(name or fn.__name__, fn, override=override)
            return fn

        return deco

    def add(self, name: str, fn: Callable[..., Any], *, override: bool = False) -> None:
        key = self._key(name)
        if key in self._items and not override and self._items[key] is not fn:
            raise KeyError(f"{self.family} {name!r} is already registered; pass override=True to replace it")
        self._items[key] = fn

    def get(self, name: str) -> Callable[..., Any]:
        key = self._key(name)
        if key not in self._items:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise KeyError(f"unknown {self.family} {name!r}; known: {known}")
        return self._items[key]

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, {sorted(self._items)})"
